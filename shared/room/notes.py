""" "Room notes": the room's decisions, action items and open questions, kept as people talk.

Three ways in, each a plain function over a `RoomChange`:
- the plain rule (`note_marked`, run in the change that posts a message, with or without a model): lines
  people mark go in the notes at once. A line starting "decided:" is a decision; "todo @Bob book the
  room" an action item (who: Bob, what: the rest); a line that ends in "?" followed by the tag "?open"
  (or starts with "?open" and ends in "?") an open question, without the tag.
- the assistant (only when it keeps notes with a model): the worker takes the messages said since it
  last did (`take_notes_batch`), asks one small stateless request, and settles what it proposed
  (`settle_notes`); "no change" leaves the notes as they are.
- people: anyone present may add, edit or remove an item by its id; everyone sees "Alice edited the notes".

Sizes are bounded (`MAX_NOTE_CHARS` an item, `MAX_NOTES_PER_LIST` a list): a person gets a clear refusal,
a marked line past a full list is left out and the room says so.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import replace
from datetime import datetime

from shared.errors import NoteRefused
from shared.messages import NOTE_LISTS, Message, NoteItem, NoteKind, Notes, NotesBatch, NotesUpdate, Role
from shared.store import RoomChange, turn_writable

MAX_NOTE_CHARS = 300  # of an item's text
MAX_WHO_CHARS = 40  # of an action item's "who"
MAX_NOTES_PER_LIST = 30
NOTES_BATCH_MESSAGES = 50  # the most new messages one notes request reads (the latest ones)
NOTES_HISTORY = 10  # earlier messages it reads, to understand the new ones
NOTES_PENDING_KEPT = 200  # messages kept waiting for the assistant's notes; older ones are not read
GONE = "You are no longer in the room, so the notes were not changed."
NO_SUCH_ITEM = "That item is no longer in the room's notes (someone removed it), so nothing changed."

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # an item is one line
_DECIDED = re.compile(r"^decided\s*:\s*(?P<text>.+)$", re.IGNORECASE)
_TODO = re.compile(r"^todo\s*:?\s*@(?P<who>[^\s,:;]+)[\s,:;]+(?P<text>.+)$", re.IGNORECASE)
_OPEN_AFTER = re.compile(r"^(?P<text>.+\?)\s*\?open$", re.IGNORECASE)
_OPEN_BEFORE = re.compile(r"^\?open\s+(?P<text>.+\?)$", re.IGNORECASE)


def _one_line(text: str) -> str:
    return " ".join(_CONTROL.sub(" ", unicodedata.normalize("NFC", text)).split())


def _shortened(text: str, limit: int) -> str:
    text = _one_line(text)
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def clean_note(text: str, who: str = "", *, kind: NoteKind) -> tuple[str, str]:
    """An item as a person wrote it, as kept (one line, trimmed); `NoteRefused` if empty or too long."""
    text, who = _one_line(text), _one_line(who).lstrip("@")
    if not text:
        raise NoteRefused("A note needs some text, so nothing changed.")
    if len(text) > MAX_NOTE_CHARS:
        raise NoteRefused(
            f"That note has {len(text):,} characters; the limit is {MAX_NOTE_CHARS}. Nothing changed."
        )
    if kind is NoteKind.ACTION and not who:
        raise NoteRefused("An action item needs someone to do it (who), so nothing changed.")
    if len(who) > MAX_WHO_CHARS:
        raise NoteRefused(f'"Who" has more than {MAX_WHO_CHARS} characters, so nothing changed.')
    return text, who if kind is NoteKind.ACTION else ""


def marked_lines(text: str) -> list[tuple[NoteKind, str, str]]:
    """The lines of a message marked for the notes, as (kind, who, text), in the order written."""
    found: list[tuple[NoteKind, str, str]] = []
    for line in text.splitlines():
        line = line.strip()
        if match := _DECIDED.match(line):
            found.append((NoteKind.DECISION, "", match["text"]))
        elif match := _TODO.match(line):
            found.append((NoteKind.ACTION, match["who"], match["text"]))
        elif match := _OPEN_AFTER.match(line) or _OPEN_BEFORE.match(line):
            found.append((NoteKind.QUESTION, "", match["text"]))
    return [
        (kind, _shortened(who, MAX_WHO_CHARS), _shortened(what, MAX_NOTE_CHARS))
        for kind, who, what in found
        if _one_line(what)
    ]


def _noted(notes: Notes, kind: NoteKind, who: str, text: str) -> bool:
    return any(
        i.kind is kind and i.text.casefold() == text.casefold() and i.who.casefold() == who.casefold()
        for i in notes.items
    )


def _add(change: RoomChange, kind: NoteKind, who: str, text: str, by: str) -> bool | None:
    """Add one item unless the same is noted already; None if its list is full."""
    state = change.state
    notes = state.notes
    if _noted(notes, kind, who, text):
        return False
    if len(notes.of(kind)) >= MAX_NOTES_PER_LIST:
        return None
    item = NoteItem(id=notes.next_id, kind=kind, text=text, who=who, by=by)
    state.notes = Notes(items=(*notes.items, item), next_id=notes.next_id + 1)
    return True


def _changed(change: RoomChange) -> None:
    change.state.notes_changes += 1
    change.growth_only = False  # every page shows the notes: they wake for it


def _full_line(kind: NoteKind) -> str:
    return (
        f"The room's notes were not changed: {NOTE_LISTS[kind]} already has {MAX_NOTES_PER_LIST} items. "
        "Remove some on the This room page to add more."
    )


def note_marked(change: RoomChange, message: Message, now: datetime) -> None:
    """The plain rule, in the change that posts `message`: its marked lines go in the notes."""
    full: list[NoteKind] = []
    added = False
    for kind, who, text in marked_lines(message.text):
        outcome = _add(change, kind, who, text, message.author)
        if outcome is None and kind not in full:
            full.append(kind)
        added = added or bool(outcome)
    if added:
        _changed(change)
    for kind in full:
        change.add(Role.SYSTEM, _full_line(kind), now)


def wait_for_notes(change: RoomChange, message_id: int) -> None:
    """The assistant keeps the notes: this message goes with its next notes request."""
    pending = change.state.notes_pending
    pending.append(message_id)
    del pending[:-NOTES_PENDING_KEPT]


# --- people ---------------------------------------------------------------------------------------


def _person(change: RoomChange, participant_id: str) -> str:
    participant = change.state.participants.get(participant_id)
    if participant is None or change.state.closed:
        raise NoteRefused(GONE)
    return participant.nickname


def _edited(change: RoomChange, nickname: str, now: datetime) -> None:
    _changed(change)
    change.add(Role.SYSTEM, f"{nickname} edited the notes.", now)


def add_note(
    change: RoomChange, participant_id: str, kind: NoteKind, text: str, who: str, now: datetime
) -> None:
    """Anyone present adds an item (already cleaned: `clean_note`); `NoteRefused` if its list is full."""
    nickname = _person(change, participant_id)
    outcome = _add(change, kind, who, text, nickname)
    if outcome is None:
        raise NoteRefused(
            f"{NOTE_LISTS[kind]} already has {MAX_NOTES_PER_LIST} items; remove one first. Nothing changed."
        )
    if not outcome:
        change.nothing()  # the same item is there already (pressed twice)
        return
    _edited(change, nickname, now)


def edit_note(
    change: RoomChange, participant_id: str, item_id: int, text: str, who: str, now: datetime
) -> None:
    """Anyone present changes an item's text (and an action item's who), as written (`clean_note`)."""
    nickname = _person(change, participant_id)
    notes = change.state.notes
    item = notes.item(item_id)
    if item is None:
        raise NoteRefused(NO_SUCH_ITEM)
    text, who = clean_note(text, who, kind=item.kind)
    edited = replace(item, text=text, who=who if item.kind is NoteKind.ACTION else "")
    if edited == item:
        change.nothing()
        return
    change.state.notes = replace(notes, items=tuple(edited if i.id == item_id else i for i in notes.items))
    _edited(change, nickname, now)


def remove_note(change: RoomChange, participant_id: str, item_id: int, now: datetime) -> None:
    """Anyone present removes an item; one already gone changes nothing (pressed in two tabs)."""
    nickname = _person(change, participant_id)
    notes = change.state.notes
    if notes.item(item_id) is None:
        change.nothing()
        return
    change.state.notes = replace(notes, items=tuple(i for i in notes.items if i.id != item_id))
    _edited(change, nickname, now)


# --- the assistant (the reply worker, holding the room's lease) -------------------------------------


def take_notes_batch(change: RoomChange, fence: int | None, room: str) -> NotesBatch | None:
    """The messages said since the assistant last kept the notes, if this worker may keep them now (no
    turn in progress); changes nothing."""
    state = change.state
    change.nothing()
    if not turn_writable(state, fence) or not state.notes_pending or state.turn is not None:
        return None
    ids = state.notes_pending[-NOTES_BATCH_MESSAGES:]
    messages = tuple(m for m in change.messages(ids) if not m.deleted)
    return NotesBatch(
        room=room,
        messages=messages,
        history=change.history(ids[0], NOTES_HISTORY),
        notes=state.notes,
        through=ids[-1],
    )


def settle_notes(
    change: RoomChange, fence: int | None, batch: NotesBatch, update: NotesUpdate, author: str
) -> bool:
    """The batch is done (its messages leave `notes_pending`); what the assistant proposed goes in the
    notes: new items (past a full list, left out) and the open questions it found answered, removed.
    False if this worker no longer writes the room's turns (nothing changes)."""
    state = change.state
    if not turn_writable(state, fence):
        change.nothing()
        return False
    # Ids grow: what was said after the batch was taken waits for the next one.
    state.notes_pending = [i for i in state.notes_pending if i > batch.through]
    added = False
    wanted = [(NoteKind.DECISION, "", t) for t in update.decisions]
    wanted += [(NoteKind.ACTION, who, what) for who, what in update.action_items]
    wanted += [(NoteKind.QUESTION, "", t) for t in update.open_questions]
    for kind, who, text in wanted:
        text, who = _shortened(text, MAX_NOTE_CHARS), _shortened(who, MAX_WHO_CHARS).lstrip("@")
        if text and (kind is not NoteKind.ACTION or who):
            added = bool(_add(change, kind, who, text, author)) or added
    answered = {
        i for i in update.answered if (item := state.notes.item(i)) and item.kind is NoteKind.QUESTION
    }
    if answered:
        state.notes = replace(state.notes, items=tuple(i for i in state.notes.items if i.id not in answered))
    if added or answered:
        _changed(change)
    return True
