"""Issue 19 on the OpenAI path: the real `openai` SDK over loopback HTTP to `tests/openai_server.py`.

What the model receives: each room's own instructions after the app's, and for "When it can help" one
small stateless decision request per batch (`store: false`, no conversation, a structured yes/no).
"""

from __future__ import annotations

import json

import pytest

import tests.test_openai_assistant as openai_tests
from shared.messages import ReplyPolicy, Role
from shared.room import Room
from tests.openai_server import Say
from tests.test_openai_assistant import messages, person, say, wait_until

server, open_room = openai_tests.server, openai_tests.open_room  # the OpenAI tests' fixtures, by name


def decision_requests(server) -> list[dict]:
    return [r for r in server.response_requests() if not r.get("stream")]


def wish(text: str) -> dict:
    """The item the room's instructions are sent as (imported here: it is what these tests prove)."""
    from shared.assistant.openai import room_instructions_item

    return room_instructions_item(text)


def turn_requests(server) -> list[dict]:
    return [r for r in server.response_requests() if r.get("stream")]


@pytest.mark.promise_room_instructions
def test_two_rooms_with_different_instructions_send_the_model_each_rooms_own(open_room, server):
    book_club, garden = open_room("Alice", name="book-club"), open_room("Bob", name="garden")
    book_club.set_instructions(person("Alice"), "Book club for Dune; ask one question at a time")
    garden.set_instructions(person("Bob"), "Gardening tips only")
    for room, nickname in ((book_club, "Alice"), (garden, "Bob")):
        room.post(person(nickname), "Hello")
        wait_until(lambda room=room: messages(room, Role.ASSISTANT) and not room.busy, "the reply")

    # Alice is in the book club alone, Bob in the garden.
    by_room = {
        "book-club" if "[Alice]" in json.dumps(r["input"]) else "garden": r for r in turn_requests(server)
    }
    assert len(turn_requests(server)) == 2
    # Each room's own, as the first item, a quoted wish from its people; never in the app's instructions.
    assert by_room["book-club"]["input"][0] == wish("Book club for Dune; ask one question at a time")
    assert by_room["garden"]["input"][0] == wish("Gardening tips only")
    for request in by_room.values():
        assert "Dune" not in request["instructions"] and "Gardening" not in request["instructions"]


@pytest.mark.promise_room_instructions
def test_a_conversation_gets_the_room_instructions_again_only_when_they_change(open_room, server):
    room = open_room("Alice")
    room.set_instructions(person("Alice"), "Answer in haiku")
    for text in ("one", "two"):
        say(room, "Alice", text)
    room.set_instructions(person("Alice"), "")
    say(room, "Alice", "three")

    wishes = [
        [i["content"] for i in r["input"] if i["content"].startswith("Room instructions")]
        for r in turn_requests(server)
    ]
    assert wishes == [[wish("Answer in haiku")["content"]], [], [wish("")["content"]]]


def helpful_room(open_room) -> Room:
    room = open_room("Alice")
    room.set_reply_policy(person("Alice"), ReplyPolicy.WHEN_HELPFUL)
    room.set_instructions(person("Alice"), "Book club for Dune")
    return room


def test_when_it_can_help_asks_one_stateless_structured_question_per_batch(open_room, server):
    room = helpful_room(open_room)
    room.post(person("Alice"), "I liked chapter one.")
    wait_until(lambda: room.decisions() == (0, 1), "the statement to be let pass")
    assert turn_requests(server) == [] and server.conversations == {}  # no turn, not even a conversation

    room.post(person("Alice"), "Who is Paul's mother?")
    wait_until(
        lambda: room.decisions() == (1, 1) and messages(room, Role.ASSISTANT) and not room.busy, "a reply"
    )

    first, second = decision_requests(server)
    for decision in (first, second):
        assert decision["store"] is False and "conversation" not in decision and "tools" not in decision
        assert decision["text"]["format"]["type"] == "json_schema"
        assert decision["text"]["format"]["schema"]["required"] == ["answer", "reason"]
        # The room's instructions cannot change when to answer: a decision never reads them.
        assert "Book club" not in json.dumps(decision)
    assert '[Alice] "Who is Paul\'s mother?"' in second["input"][0]["content"].split("New:\n")[1]
    (turn,) = turn_requests(server)
    # What was let pass still reaches the conversation, with the next turn, before the question.
    assert [item["content"] for item in turn["input"]] == [
        wish("Book club for Dune")["content"],
        '[Alice] "I liked chapter one."',
        '[Alice] "Who is Paul\'s mother?"',
    ]
    # Decisions count like turns (DAILY_TOKEN_BUDGET): every response's tokens are in the room's total.
    assert room.token_usage()["total_tokens"] == sum(r["usage"]["total_tokens"] for r in server.finished)


def test_an_answer_that_is_not_a_yes_or_no_is_one_sentence_and_nothing_is_answered(open_room, server):
    room = helpful_room(open_room)
    server.script(Say("Sure, I could help!"))
    room.post(person("Alice"), "Anyone?")
    wait_until(lambda: room.decisions() == (0, 1), "the batch to be let pass")
    assert "was not the yes or no it was asked for" in messages(room, Role.SYSTEM)[-1].text
    assert turn_requests(server) == []
