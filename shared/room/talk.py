"""What people say and decide: the rules for posting (with its limits), replying to a message, reacting to
one, taking one's own back, when the assistant speaks, and Stop.

Each rule is a plain function over a `RoomChange` (testable without a room); `Room` runs them.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from shared.errors import MessageRefused
from shared.messages import (
    QUOTE_CHARS,
    REACTIONS,
    Attachment,
    Message,
    Quote,
    ReplyPolicy,
    Role,
    Status,
    is_reactor,
)
from shared.room.notes import note_marked, wait_for_notes
from shared.room.turns import end_turn, stopped
from shared.store import RoomChange, RoomState

# Control characters other than newline and tab would garble the page or the model's input.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
GONE = "You are no longer in the room. Join again to send messages."
# {outcome}: "nothing changed", or for a reply "nothing was sent".
NO_SUCH_MESSAGE = "That message is not in this room, so {outcome}."
ROOM_NOTE = "That is a note from the room, not a message someone sent, so {outcome}."
NOT_A_REACTION = f"Reactions are {' '.join(REACTIONS)}; that is not one of them, so nothing changed."
DELETED = "That message was deleted, so nothing changed."
ONLY_AUTHOR = "Only the person who sent a message can delete it, so nothing changed."


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


def keep_files(change: RoomChange, message_id: int, files: Sequence[Attachment], limit: int) -> None:
    """The room keeps the bytes of `files` (on message `message_id`). Past `limit` bytes in all, the oldest
    files go in this same change: their messages say so, and their bytes are let go of once it commits
    (`RoomChange.files_let_go`). So a message that is refused lets nothing go. The newest file stays,
    whatever its size."""
    state = change.state
    for file in files:
        state.attachment_messages[file.id] = message_id
        state.kept_files[file.id] = file.size
    total = sum(state.kept_files.values())
    going: list[str] = []
    while total > limit and len(state.kept_files) > 1:
        oldest = next(iter(state.kept_files))
        total -= state.kept_files.pop(oldest)
        going.append(oldest)
    mark_dropped(change, going)
    change.files_let_go.extend(going)


def mark_dropped(change: RoomChange, dropped: Sequence[str]) -> None:
    """Older files were let go of to make room for new ones: their messages say so, for everyone."""
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
    *,
    files_limit: int,
    assistant_name: str,
    rate: tuple[int, float],
    clock: float,
    now: datetime,
    replying_to: int | None = None,
    keeps_notes: bool = False,
) -> Message:
    """Add a person's message: queued for the assistant, or kept as what the next turn hears, or left for
    the assistant to decide about, by the room's reply policy. `rate`: (messages, seconds) allowed;
    `files_limit`: the bytes of files the room keeps (older files go past it); `replying_to`: the id of the message
    it replies to, quoted as it is now (a deleted one as "a deleted message"). Its marked lines go in the
    room's notes at once; `keeps_notes`: the assistant also reads it for the notes after this batch."""
    state = change.state
    participant = state.participants.get(participant_id)
    if participant is None or state.closed:
        raise MessageRefused(GONE)
    quote = None if replying_to is None else quote_of(_said_message(change, replying_to, "nothing was sent"))
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
        quote=quote,
    )
    keep_files(change, message.id, attachments, files_limit)
    if asks and state.undecided:  # a mention answers now: what was said before it goes along
        state.context.extend(state.undecided)
        state.undecided = []
    (state.queue if asks else state.undecided if deciding else state.context).append(message.id)
    note_marked(change, message, now)
    if keeps_notes:
        wait_for_notes(change, message.id)
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
    end_turn(change, now, stopped(participant.nickname))


# --- replies, reactions and taking a message back ----------------------------------------------------


def quote_of(message: Message) -> Quote:
    """What a reply shows of the message it answers: its author and first line, at most QUOTE_CHARS."""
    if message.deleted:
        return Quote(message.id, "", "")
    lines = message.text.strip().splitlines()
    first = lines[0].strip() if lines else ""
    if len(first) > QUOTE_CHARS:
        first = first[: QUOTE_CHARS - 1].rstrip() + "…"
    return Quote(message.id, message.author, first)


def _said_message(change: RoomChange, message_id: int, outcome: str = "nothing changed") -> Message:
    """The message a person points at (to reply, react or delete): one a person or the assistant said."""
    if not isinstance(message_id, int) or not 1 <= message_id <= change.state.message_count:
        raise MessageRefused(NO_SUCH_MESSAGE.format(outcome=outcome))
    message = change.message(message_id)
    if message.role is Role.SYSTEM:
        raise MessageRefused(ROOM_NOTE.format(outcome=outcome))
    return message


def toggled(message: Message, emoji: str, participant_id: str, nickname: str) -> Message:
    """`message` with the person's `emoji` added, or taken away if it was theirs; in REACTIONS order, none
    empty. A reaction is the person's by their participant id (shown by the nickname they had): someone who
    comes later with the same nickname is someone else."""
    people = {e: message.reactors(e) for e, _ in message.reactions}
    theirs = [who for who in people.get(emoji, []) if is_reactor(who, participant_id, nickname)]
    if theirs:
        people[emoji] = [who for who in people[emoji] if who not in theirs]
    else:
        people[emoji] = [*people.get(emoji, []), (participant_id, nickname)]
    kept = [e for e in REACTIONS if people.get(e)]
    return replace(
        message,
        reactions=tuple((e, tuple(name for _, name in people[e])) for e in kept),
        reacted_by=tuple((e, tuple(who for who, _ in people[e])) for e in kept),
    )


def react(
    change: RoomChange,
    participant_id: str,
    message_id: int,
    emoji: str,
    *,
    rate: tuple[int, float],
    clock: float,
) -> None:
    """A person puts a reaction on a message, or takes theirs away (one of each per person). The model
    never sees reactions; they count against the person's flood limit like messages."""
    state = change.state
    participant = state.participants.get(participant_id)
    if participant is None or state.closed:
        raise MessageRefused(GONE)
    if emoji not in REACTIONS:
        raise MessageRefused(NOT_A_REACTION)
    message = _said_message(change, message_id)
    if message.deleted:
        raise MessageRefused(DELETED)
    check_rate(change, participant_id, *rate, clock)
    change.put(toggled(message, emoji, participant_id, participant.nickname))


def delete(
    change: RoomChange,
    participant_id: str,
    message_id: int,
    *,
    rate: tuple[int, float],
    clock: float,
    quoted_in: Sequence[int] = (),
    known: int = 0,
) -> tuple[str, ...]:
    """A person takes back their own message: everyone sees "message deleted" in its place; its text,
    files, quote and reactions go, and replies quoting it show "a deleted message". Still waiting, it
    leaves the queue; already seen by the assistant (or being answered), it is kept in `to_forget` for
    the worker to take out of the conversation. Returns the ids of its files, whose bytes the room drops.

    `quoted_in`: the replies quoting it in the caller's copy of the room, which holds messages up to id
    `known`; any later ones are read here. The room keeps no index of quotes: one would grow with every
    reply, in a state rewritten by every change (given nothing, every later message is read)."""
    state = change.state
    if participant_id not in state.participants or state.closed:
        raise MessageRefused(GONE)
    message = _said_message(change, message_id)
    if message.participant_id != participant_id:
        raise MessageRefused(ONLY_AUTHOR)
    if message.deleted:  # pressed twice, or in two tabs: it is gone already
        change.nothing()
        return ()
    check_rate(change, participant_id, *rate, clock)
    change.put(
        replace(
            message,
            text="",
            attachments=(),
            quote=None,
            reactions=(),
            reacted_by=(),
            deleted=True,
            status=Status.COMPLETE,
        )
    )
    _unquote(change, message, quoted_in, known)
    for attachment in message.attachments:
        state.attachment_messages.pop(attachment.id, None)
        state.kept_files.pop(attachment.id, None)
    if not _unqueue(state, message_id):
        state.to_forget.append(message)
    return tuple(a.id for a in message.attachments)


def _unquote(change: RoomChange, message: Message, quoted_in: Sequence[int], known: int) -> None:
    """Replies quoting the message show "a deleted message": those the caller's copy names, and any said
    after the newest message that copy held (a reply can only come after what it quotes)."""
    blank = Quote(message.id, "", "")
    newest = change.state.message_count  # a copy ahead of the store (it lost writes) names ids past it
    later = range(max(known, message.id) + 1, newest + 1)
    ids = sorted({i for i in quoted_in if message.id < i <= newest}.union(later))
    for reply in change.messages(ids):
        if reply.quote is not None and reply.quote.id == message.id and reply.quote != blank:
            change.put(replace(reply, quote=blank))


def _unqueue(state: RoomState, message_id: int) -> bool:
    """Take the message out of whatever waits for the assistant; True if it was waiting there, never
    sent. One in the turn being answered went to the model: it leaves the turn (a failed turn must not
    send it again), and it is not "waiting"."""
    waiting = False
    for ids in (state.queue, state.undecided, state.context, state.carried_over):
        if message_id in ids:
            ids.remove(message_id)
            waiting = True
    turn = state.turn
    if turn is not None:
        for ids in (turn.message_ids, turn.context_ids):
            if message_id in ids:
                ids.remove(message_id)
                waiting = False
    return waiting
