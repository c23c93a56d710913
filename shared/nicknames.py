"""The rules a nickname must follow, each broken rule with its own message.

Uniqueness among the people present is checked by the room, under its lock.
"""

from __future__ import annotations

import unicodedata

from shared.errors import JoinRefused

MAX_NICKNAME_CHARS = 32
RESERVED = ("system",)


def nickname_key(nickname: str) -> str:
    """What two nicknames must not share: `Ａlice`, ` alice ` and `ALICE` are one name."""
    return unicodedata.normalize("NFKC", nickname).strip().casefold()


def clean_nickname(raw: str, assistant_name: str) -> str:
    """The nickname as it will be shown, or JoinRefused saying which rule it breaks."""
    nickname = unicodedata.normalize("NFKC", raw or "").strip()
    if not nickname:
        raise JoinRefused("Please enter a nickname.")
    if len(nickname) > MAX_NICKNAME_CHARS:
        raise JoinRefused(
            f"A nickname can have at most {MAX_NICKNAME_CHARS} characters; this one has {len(nickname)}."
        )
    # Cc are control characters; Cf are invisible ones (zero-width, text-direction overrides) that
    # would let two different-looking names collide or one name impersonate another.
    if any(unicodedata.category(c) in ("Cc", "Cf") for c in nickname):
        raise JoinRefused("A nickname cannot contain control or invisible characters.")
    if any(c in "[]" for c in nickname):
        # The assistant reads each message as "[nickname] text": a bracket could forge another author.
        raise JoinRefused("A nickname cannot contain square brackets.")
    if nickname_key(nickname) == nickname_key(assistant_name):
        raise JoinRefused(f"{assistant_name} is the assistant's name. Please pick another nickname.")
    if nickname_key(nickname) in RESERVED:
        raise JoinRefused(
            f"“{nickname}” is reserved for the app's own notices. Please pick another nickname."
        )
    return nickname
