"""The rules a nickname must follow, each broken rule with its own message.

Uniqueness among the people present is checked by the room, under its lock, by `nickname_key`.
Look-alikes are Unicode's (UTS #39, "Unicode Security Mechanisms"), through ICU's spoof checker: two
names are one if they share a confusable skeleton, and a name may not mix alphabets in a way UTS #39
calls suspicious (Latin with Cyrillic, say).
"""

from __future__ import annotations

import unicodedata

import icu

from shared.errors import JoinRefused

MAX_NICKNAME_CHARS = 32
RESERVED = ("system",)

# Moderately restrictive (UTS #39 section 5.2): one script, or Latin with Han and Japanese or Korean,
# or Latin with one other script that has no letters confusable with Latin's (so "Ali علي" is fine,
# "Alice Иванова" and a Cyrillic "а" in "Paypal" are not). Configured once, then only read: ICU's
# checker is safe to share between threads once set up.
_SPOOF_CHECKER = icu.SpoofChecker()
_SPOOF_CHECKER.setRestrictionLevel(icu.URestrictionLevel.MODERATELY_RESTRICTIVE)
_SPOOF_CHECKER.setChecks(icu.USpoofChecks.RESTRICTION_LEVEL)


def nickname_key(nickname: str) -> str:
    """What two nicknames must not share: `Ａlice`, ` alice `, `ALICE` and `Аlice` (a Cyrillic А) are
    one name. Case folded first, then Unicode's confusable skeleton, as UTS #39 advises for names that
    ignore case."""
    folded = unicodedata.normalize("NFKC", nickname).strip().casefold()
    return _SPOOF_CHECKER.getSkeleton(0, folded)


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
    if _SPOOF_CHECKER.check(nickname) & icu.USpoofChecks.RESTRICTION_LEVEL:
        raise JoinRefused(
            "A nickname cannot mix alphabets that look alike, such as Latin and Cyrillic letters. "
            "Please write it in one alphabet."
        )
    if nickname_key(nickname) == nickname_key(assistant_name):
        raise JoinRefused(f"{assistant_name} is the assistant's name. Please pick another nickname.")
    if nickname_key(nickname) in {nickname_key(name) for name in RESERVED}:
        raise JoinRefused(
            f"“{nickname}” is reserved for the app's own notices. Please pick another nickname."
        )
    return nickname
