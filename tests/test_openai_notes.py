"""Room notes on the OpenAI path: the real `openai` SDK over loopback HTTP to `tests/openai_server.py`.

After each batch the reply worker makes one small stateless request (`store: false`, no conversation)
whose answer is held to the notes' JSON schema; its tokens count like every call, and none is made once
a daily budget is spent. The notes then go to the model with the next turn, below the app's rules.
"""

from __future__ import annotations

import json

import pytest

import tests.test_openai_assistant as openai_tests
from shared.assistant.openai_notes import NOTES_FORMAT, ROOM_NOTES_RULE, room_notes_item
from shared.messages import NoteKind, ReplyPolicy
from tests.test_openai_assistant import person, wait_until

server, open_room = openai_tests.server, openai_tests.open_room  # the OpenAI tests' fixtures, by name
pytestmark = pytest.mark.promise_room_notes


def notes_requests(server) -> list[dict]:
    return [
        r
        for r in server.response_requests()
        if (r.get("text") or {}).get("format", {}).get("name") == "room_notes"
    ]


def turn_requests(server) -> list[dict]:
    return [r for r in server.response_requests() if r.get("stream")]


def settled(room) -> bool:
    return not room.busy and not room._read(lambda state: state.notes_pending)


def test_the_notes_are_kept_by_one_stateless_structured_request_and_its_tokens_count(open_room, server):
    room = open_room("Alice", room_notes_by_assistant=True)
    room.post(person("Alice"), "Let's meet on Friday")
    wait_until(lambda: room.notes.items and settled(room), "the notes")

    [request] = notes_requests(server)
    assert request["store"] is False and "conversation" not in request and not request.get("stream")
    assert request["text"] == NOTES_FORMAT  # strict JSON schema
    assert '[Alice] \\"Let\'s meet on Friday\\"' in json.dumps(request["input"])
    assert [(i.text, i.by) for i in room.notes.of(NoteKind.DECISION)] == [("Let's meet on Friday", "CatGPT")]
    # Every token the server reported, the turn's and the notes', is in the room's count and its budget.
    reported = sum(r["usage"]["total_tokens"] for r in server.finished)
    wait_until(lambda: room.token_usage().get("total_tokens") == reported, "the tokens counted")
    assert room.tokens_today() == reported


def test_no_change_changes_nothing_and_the_next_turn_reads_the_notes_below_the_rules(open_room, server):
    room = open_room("Alice", room_notes_by_assistant=True)
    room.set_reply_policy(person("Alice"), ReplyPolicy.WHEN_MENTIONED)
    room.post(person("Alice"), "decided: we meet Friday")  # marked: the plain rule notes it at once
    room.post(person("Alice"), "nice weather today")
    wait_until(lambda: len(notes_requests(server)) >= 1 and settled(room), "the notes request")
    assert [i.text for i in room.notes.items] == ["we meet Friday"]
    assert json.loads(server.finished[-1]["output"][0]["content"][0]["text"])["change"] is False

    given = room_notes_item(room.notes)
    room.post(person("Alice"), "@CatGPT what did we decide?")
    wait_until(lambda: turn_requests(server) and settled(room), "the turn")
    turn = turn_requests(server)[0]
    assert given in turn["input"]  # a labelled user item, not the app's rules
    assert "we meet Friday" not in turn["instructions"] and ROOM_NOTES_RULE in turn["instructions"]


def test_an_answered_open_question_leaves_the_notes(open_room, server):
    room = open_room("Alice", room_notes_by_assistant=True)
    room.set_reply_policy(person("Alice"), ReplyPolicy.WHEN_MENTIONED)
    room.post(person("Alice"), "Who books the room?")
    wait_until(lambda: room.notes.of(NoteKind.QUESTION) and settled(room), "the open question")
    room.post(person("Alice"), "answer: Bob does")
    wait_until(lambda: not room.notes.of(NoteKind.QUESTION) and settled(room), "the question answered")
    assert len(notes_requests(server)) == 2
    # The model read the question with its id, which its answer named.
    assert (
        '"open_questions": [{"id": 1, "text": "Who books the room?"}]'
        in notes_requests(server)[1]["input"][0]["content"]
    )


def test_no_notes_request_once_the_budget_is_spent(open_room, server):
    room = open_room("Alice", room_notes_by_assistant=True, daily_token_budget=100)
    room.set_reply_policy(person("Alice"), ReplyPolicy.WHEN_MENTIONED)
    with room.purse.spend(100) as bill:  # the day's budget, spent
        bill.report(100)
    room.post(person("Alice"), "Let's meet on Friday")
    wait_until(lambda: settled(room), "the batch dropped")
    assert server.response_requests() == []
    assert room.notes.items == ()
