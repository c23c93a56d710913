"""Room notes (issue 36): decisions, action items and open questions kept for the room.

The rules run on both stores (memory and a real Redis), on real threads, with the scripted assistant;
the plain rule (marked lines) needs no model, the assistant's notes come from its `keep_notes`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

import tests.test_redis_rooms as redis_tests
from shared.errors import AssistantError, NoteRefused
from shared.messages import NoteKind, Notes, NotesUpdate, ReplyPolicy
from shared.room import notes
from shared.store import RoomState
from shared.transcript import to_json, to_markdown
from tests.fakes import wait_until
from tests.test_room import join, system_lines

pytestmark = pytest.mark.promise_room_notes
make_hub = redis_tests.make_hub  # a hub per "process", on one Redis

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def listed(room, kind: NoteKind) -> list[tuple[str, str]]:
    return [(item.who, item.text) for item in room.notes.of(kind)]


# --- the plain rule: what a line must look like ----------------------------------------------------


def test_marked_lines_are_read_by_one_exact_rule():
    text = "\n".join(
        [
            "Decided: we meet Friday",
            "  todo @Bob book the room",
            "TODO: @Carol, bring snacks",
            "Who brings the projector? ?open",
            "?open Which floor?",
            "we decided nothing",  # "decided:" must start the line
            "todo book it",  # an action item needs @someone
            "Is it late?open",  # the tag needs its own word after the question mark
            "?open not a question",  # an open question ends in "?"
            "decided:   ",  # nothing decided
        ]
    )
    assert notes.marked_lines(text) == [
        (NoteKind.DECISION, "", "we meet Friday"),
        (NoteKind.ACTION, "Bob", "book the room"),
        (NoteKind.ACTION, "Carol", "bring snacks"),
        (NoteKind.QUESTION, "", "Who brings the projector?"),
        (NoteKind.QUESTION, "", "Which floor?"),
    ]


def test_an_older_stored_room_has_empty_notes():
    from pydantic import TypeAdapter

    stored = TypeAdapter(RoomState).dump_python(RoomState.fresh(NOW), mode="json")
    for name in ("notes", "notes_changes", "notes_pending"):
        del stored[name]
    state = TypeAdapter(RoomState).validate_python(stored)
    assert state.notes == Notes() and state.notes_pending == []


# --- the room, on both stores ----------------------------------------------------------------------


def test_marked_lines_go_in_the_notes_as_they_are_posted(room):
    alice = join(room, "Alice")
    room.set_reply_policy(alice.id, ReplyPolicy.WHEN_MENTIONED)  # no model, no turn: the rule alone
    room.post(alice.id, "decided: we meet Friday\ntodo @Bob book the room\nWho brings food? ?open")

    assert listed(room, NoteKind.DECISION) == [("", "we meet Friday")]
    assert listed(room, NoteKind.ACTION) == [("Bob", "book the room")]
    assert listed(room, NoteKind.QUESTION) == [("", "Who brings food?")]
    assert {item.by for item in room.notes.items} == {"Alice"}
    assert room.view().status.notes == room.notes  # pages read them with the status
    room.post(alice.id, "DECIDED: We meet Friday")  # the same decision again is not noted twice
    assert len(room.notes.of(NoteKind.DECISION)) == 1


def test_anyone_present_edits_or_removes_an_item_and_everyone_is_told(room):
    alice, bob = join(room, "Alice"), join(room, "Bob")
    room.set_reply_policy(alice.id, ReplyPolicy.WHEN_MENTIONED)
    room.post(alice.id, "decided: we meet Friday\ntodo @Bob book the room")
    decision, action = room.notes.items

    with pytest.raises(NoteRefused, match="the limit is 300"):
        room.edit_note(bob.id, decision.id, "x" * 301)
    with pytest.raises(NoteRefused, match="needs someone"):
        room.edit_note(bob.id, action.id, "book the room", who="  ")
    room.edit_note(bob.id, decision.id, "we meet Saturday")
    assert system_lines(room)[-1] == "Bob edited the notes."
    assert listed(room, NoteKind.DECISION) == [("", "we meet Saturday")]
    room.edit_note(alice.id, action.id, "book room 4", who="@Carol")
    assert listed(room, NoteKind.ACTION) == [("Carol", "book room 4")]
    assert system_lines(room)[-1] == "Alice edited the notes."

    room.remove_note(alice.id, decision.id)
    assert room.notes.of(NoteKind.DECISION) == ()
    lines = len(system_lines(room))
    room.remove_note(bob.id, decision.id)  # pressed again, in another tab: nothing more happens
    assert len(system_lines(room)) == lines
    with pytest.raises(NoteRefused, match="no longer in the room's notes"):
        room.edit_note(bob.id, decision.id, "we meet Sunday")

    room.add_note(bob.id, NoteKind.QUESTION, "Which floor?")
    assert listed(room, NoteKind.QUESTION) == [("", "Which floor?")]
    assert [i.id for i in room.notes.items] == [action.id, action.id + 1]  # ids are never reused


def test_notes_are_bounded_with_clear_refusals(room):
    alice = join(room, "Alice")
    room.set_reply_policy(alice.id, ReplyPolicy.WHEN_MENTIONED)
    with pytest.raises(NoteRefused, match="the limit is 300"):
        room.add_note(alice.id, NoteKind.DECISION, "x" * 301)
    with pytest.raises(NoteRefused, match="needs some text"):
        room.add_note(alice.id, NoteKind.DECISION, "   ")
    with pytest.raises(NoteRefused, match="needs someone"):
        room.add_note(alice.id, NoteKind.ACTION, "book it")
    assert room.notes == Notes()

    for number in range(notes.MAX_NOTES_PER_LIST):
        room.add_note(alice.id, NoteKind.DECISION, f"decision {number}")
    with pytest.raises(NoteRefused, match="already has 30 items"):
        room.add_note(alice.id, NoteKind.DECISION, "one too many")
    room.post(alice.id, "decided: one more\ntodo @Bob still fits")  # the message goes; the room says why
    assert system_lines(room)[-1].startswith("The room's notes were not changed: Decisions already has 30")
    assert listed(room, NoteKind.ACTION) == [("Bob", "still fits")]
    room.post(alice.id, "decided: " + "y" * 1_000)  # a long marked line is shortened, not refused
    assert len(room.notes.of(NoteKind.DECISION)) == notes.MAX_NOTES_PER_LIST


def test_someone_who_left_cannot_change_the_notes(room):
    alice, bob = join(room, "Alice"), join(room, "Bob")
    room.add_note(alice.id, NoteKind.DECISION, "we meet Friday")
    room.leave(bob.id)
    with pytest.raises(NoteRefused, match="no longer in the room"):
        room.remove_note(bob.id, room.notes.items[0].id)
    assert len(room.notes.items) == 1


def test_notes_are_in_both_transcripts_and_go_with_the_next_turn(room, assistant):
    alice = join(room, "Alice")
    room.post(alice.id, "decided: we meet *Friday*\ntodo @Bob book the room")
    wait_until(lambda: assistant.turns and not room.busy, "the turn")
    room.post(alice.id, "Anything else?")
    wait_until(lambda: len(assistant.turns) == 2 and not room.busy, "the second turn")
    assert [i.text for i in assistant.turns[-1].room_notes.items] == ["we meet *Friday*", "book the room"]

    view = room.view()
    markdown = to_markdown(view)
    assert "## Room notes" in markdown
    assert "- we meet \\*Friday\\*" in markdown
    assert "- Bob: book the room" in markdown
    kept = json.loads(to_json(view))["notes"]
    assert kept["decisions"] == [{"id": 1, "text": "we meet *Friday*", "by": "Alice"}]
    assert kept["action_items"] == [{"id": 2, "who": "Bob", "what": "book the room", "by": "Alice"}]
    assert kept["open_questions"] == []


# --- the assistant's notes (a model keeps them after each batch) ------------------------------------


def test_the_assistant_keeps_the_notes_after_a_batch_one_request_at_a_time(room, assistant):
    assistant.keeps_notes = True
    alice = join(room, "Alice")
    room.set_reply_policy(alice.id, ReplyPolicy.WHEN_MENTIONED)  # no turns: the notes alone
    room.add_note(alice.id, NoteKind.QUESTION, "Which day?")
    question = room.notes.items[0].id
    assistant.will_keep_notes(
        NotesUpdate(decisions=("Friday it is",), action_items=(("Bob", "book"),), answered=(question,))
    )
    room.post(alice.id, "Friday suits everyone, Bob books")
    wait_until(lambda: room.notes.of(NoteKind.DECISION), "the assistant's notes")

    assert listed(room, NoteKind.DECISION) == [("", "Friday it is")]
    assert listed(room, NoteKind.ACTION) == [("Bob", "book")]
    assert room.notes.of(NoteKind.QUESTION) == ()  # answered: it left the list
    assert {i.by for i in room.notes.items} == {"CatGPT"}
    assert "CatGPT edited the notes." not in system_lines(room)  # only people's edits are announced
    batch = assistant.notes_batches[0]
    assert [m.text for m in batch.messages] == ["Friday suits everyone, Bob books"]
    assert batch.notes.items[0].text == "Which day?"
    wait_until(lambda: not room._read(lambda s: s.notes_pending), "the batch settled")
    assert len(assistant.notes_batches) == 1  # settled once, not asked again


def test_a_failed_notes_request_leaves_the_notes_and_the_room_as_they_are(room, assistant):
    assistant.keeps_notes = True
    alice = join(room, "Alice")
    room.set_reply_policy(alice.id, ReplyPolicy.WHEN_MENTIONED)
    assistant.will_keep_notes(AssistantError("The server had an error (500)."))
    room.post(alice.id, "decided: we meet Friday")  # the plain rule notes it anyway
    wait_until(lambda: assistant.notes_batches and not room._read(lambda s: s.notes_pending), "the batch")
    assert listed(room, NoteKind.DECISION) == [("", "we meet Friday")]
    assert not any("could not" in line for line in system_lines(room))


def test_no_notes_request_once_the_budget_is_spent(make_room, assistant):
    room = make_room(daily_token_budget=10)
    assistant.keeps_notes = True
    alice = join(room, "Alice")
    room.set_reply_policy(alice.id, ReplyPolicy.WHEN_MENTIONED)
    with room.purse.spend(10) as bill:  # the day's budget, spent
        bill.report(10)
    room.post(alice.id, "Friday suits everyone")
    wait_until(lambda: not room._read(lambda s: s.notes_pending), "the batch dropped")
    assert assistant.notes_batches == []


def test_on_two_processes_each_message_goes_in_one_notes_request_one_at_a_time(
    shared_redis, make_hub, assistant
):
    import threading
    import time

    assistant.keeps_notes = True
    asked, active, most = [], [0], [0]
    lock = threading.Lock()
    keep_notes = assistant.keep_notes

    def slow_keep_notes(batch, usage=None, *, purse=None):
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
            asked.extend(m.id for m in batch.messages)
        time.sleep(0.05)  # long enough for the other process's worker to try
        try:
            return keep_notes(batch, usage, purse=purse)
        finally:
            with lock:
                active[0] -= 1

    assistant.keep_notes = slow_keep_notes
    url = shared_redis.fresh_url()
    a, b = make_hub(url), make_hub(url)
    room_a, alice = a.join("lobby", "id-alice", "Alice", "tab-a")
    room_b, bob = b.join("lobby", "id-bob", "Bob", "tab-b")
    room_a.set_reply_policy(alice.id, ReplyPolicy.WHEN_MENTIONED)
    posted = []
    for number in range(6):
        room, person = (room_a, alice) if number % 2 == 0 else (room_b, bob)
        posted.append(room.post(person.id, f"decided: point {number}").id)
    wait_until(lambda: sorted(asked) == posted, "every message in a notes request")
    assert most[0] == 1 and len(asked) == len(set(asked))  # one at a time, each message once
    wait_until(lambda: len(room_b.notes.of(NoteKind.DECISION)) == 6, "B's copy to show every decision")
    assert room_a.notes == room_b.notes
