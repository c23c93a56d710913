"""What people say and decide: the rules for posting (with its limits), when the assistant speaks, and Stop.

Each rule is a plain function over a `RoomChange` (testable without a room); `Room` runs them.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from shared.errors import MessageRefused
from shared.messages import Attachment, Message, ReplyPolicy, Role, Status
from shared.room.turns import end_turn
from shared.store import RoomChange

# Control characters other than newline and tab would garble the page or the model's input.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
GONE = "You are no longer in the room. Join again to send messages."


def mentions(text: str, name: str) -> bool:
    """Whether `text` calls on `name` as @name (any case), not as part of a longer word."""
    return re.search(rf"(?<![\w@])@{re.escape(name)}(?!\w)", text, re.IGNORECASE) is not None


def clean_message(text: str, limit: int, *, attached: bool) -> str:
    """The message's text as kept (NFC, no control characters but newlines and tabs, trimmed); refused
    when empty (and nothing is attached) or longer than `limit` characters."""
    text = _CONTROL.sub("", unicodedata.normalize("NFC", text.replace("\r\n", "\n"))).strip()
    if not text and not attached:
        raise MessageRefused("Your message is empty, so nothing was sent.")
    if len(text) > limit:
        raise MessageRefused(
            f"Your message has {len(text):,} characters; the limit is {limit:,}. Nothing was sent."
        )
    return text


def check_rate(change: RoomChange, participant_id: str, limit: int, window: float, clock: float) -> None:
    """One person may not drown the room: at most `limit` messages (or catch-ups) in any `window` seconds."""
    recent = [t for t in change.state.recent_posts.get(participant_id, []) if clock - t < window]
    if len(recent) >= limit:
        wait = max(1, round(window - (clock - recent[0])))
        raise MessageRefused(
            f"Slow down a little: you can send {limit} messages every {window:g} seconds. "
            f"Try again in {wait} second{'s' if wait != 1 else ''}. Nothing was sent."
        )
    change.state.recent_posts[participant_id] = [*recent, clock]


def mark_dropped(change: RoomChange, dropped: Sequence[str]) -> None:
    """Older files were dropped to make room for new ones: their messages say so, for everyone."""
    owners = change.state.attachment_messages
    for message_id in sorted({owners.pop(a) for a in dropped if a in owners}):
        older = change.message(message_id)
        marked = tuple(replace(a, dropped=True) if a.id in dropped else a for a in older.attachments)
        change.put(replace(older, attachments=marked))


def post(
    change: RoomChange,
    participant_id: str,
    text: str,
    attachments: Sequence[Attachment],
    dropped: Sequence[str],
    *,
    assistant_name: str,
    rate: tuple[int, float],
    clock: float,
    now: datetime,
) -> Message:
    """Add a person's message: queued for the assistant, or kept as what the next turn hears, or left for
    the assistant to decide about, by the room's reply policy. `rate`: (messages, seconds) allowed;
    `dropped`: attachments whose bytes went to make room for these."""
    state = change.state
    participant = state.participants.get(participant_id)
    if participant is None or state.closed:
        raise MessageRefused(GONE)
    check_rate(change, participant_id, *rate, clock)
    asks = state.policy is ReplyPolicy.EVERY_MESSAGE or mentions(text, assistant_name)
    deciding = state.policy is ReplyPolicy.WHEN_HELPFUL and not asks
    message = change.add(
        Role.USER,
        text,
        now,
        author=participant.nickname,
        participant_id=participant_id,
        status=Status.QUEUED if asks else Status.COMPLETE,
        attachments=tuple(attachments),
    )
    for attachment in attachments:
        state.attachment_messages[attachment.id] = message.id
    mark_dropped(change, dropped)
    if asks and state.undecided:  # a mention answers now: what was said before it goes along
        state.context.extend(state.undecided)
        state.undecided = []
    (state.queue if asks else state.undecided if deciding else state.context).append(message.id)
    return message


def set_policy(
    change: RoomChange, participant_id: str, policy: ReplyPolicy, assistant_name: str, now: datetime
) -> None:
    """Anyone present may change when the assistant speaks; everyone is told."""
    state = change.state
    participant = state.participants.get(participant_id)
    if participant is None or policy is state.policy:
        change.nothing()
        return
    state.policy = policy
    state.policy_changes += 1
    # Messages not yet decided about were said without asking: the next turn hears them.
    state.context.extend(state.undecided)
    state.undecided = []
    name = assistant_name
    when = {
        ReplyPolicy.EVERY_MESSAGE: "every message",
        ReplyPolicy.WHEN_MENTIONED: f"only when mentioned as @{name}",
        ReplyPolicy.WHEN_HELPFUL: f"when it can help (and when mentioned as @{name})",
    }[policy]
    change.add(Role.SYSTEM, f"{participant.nickname} set {name} to reply to {when}.", now)


def stop(change: RoomChange, participant_id: str, turn_number: int | None, now: datetime) -> None:
    """Someone present stops the reply being written: the turn ends, its text so far stays. With
    `turn_number`, only that turn (a Stop pressed just as the next reply started must not stop that one)."""
    state = change.state
    participant = state.participants.get(participant_id)
    if participant is None or state.turn is None or turn_number not in (None, state.turns):
        change.nothing()
        return
    end_turn(change, now, stopped_by=participant.nickname)
