"""Replies and deleted messages as the model sees them: the real `openai` SDK over loopback HTTP to
`tests/openai_server.py`. A reply says what it answers; a message its author took back leaves the
conversation (`conversations.items.delete`), or in local mode the history sent."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from shared.assistant.openai import OpenAIAssistant, message_item
from shared.attachments import check_upload
from shared.config import Settings
from shared.messages import Message, Quote, Role
from shared.room import Room
from tests.fakes import wait_until
from tests.openai_server import API_KEY, OpenAIServer

NOW = datetime(2026, 3, 3, 14, 5, tzinfo=UTC)
PDF = b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n"


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as server:
        yield server


@pytest.fixture
def open_room(server: OpenAIServer) -> Iterator[Callable[..., Room]]:
    rooms: list[Room] = []

    def make(*people: str, **overrides) -> Room:
        settings = Settings(
            openai_api_key=API_KEY,
            openai_base_url=server.base_url,
            word_delay_ms=0,
            request_timeout_seconds=5.0,
            # The notes' request after a turn (tests/test_openai_notes.py) would otherwise be, at times,
            # the last request these tests read as the turn's.
            **{"room_notes_by_assistant": False, **overrides},
        )
        room = Room("lobby", settings, OpenAIAssistant(settings), now=lambda: NOW)
        rooms.append(room)
        for nickname in people:
            room.join(f"id-{nickname}", nickname, f"tab-{nickname}")
        return room

    yield make
    for room in rooms:
        room.close()


def say(room: Room, nickname: str, text: str, *files, **kwargs) -> Message:
    message = room.post(f"id-{nickname}", text, *files, **kwargs)
    wait_until(lambda: not room.busy, "the reply to finish")
    return message


def item_texts(server: OpenAIServer, conversation: str) -> list[str]:
    texts = []
    for item in server.items(conversation):
        content = item.get("content")
        if isinstance(content, list):
            content = "".join(
                p.get("text", "") for p in content if p.get("type") in ("input_text", "output_text")
            )
        texts.append(content or "")
    return texts


def user_inputs(request_body: dict) -> list[str]:
    return [
        item["content"] if isinstance(item["content"], str) else item["content"][0]["text"]
        for item in request_body["input"]
        if item.get("role") == "user"
    ]


def test_a_reply_tells_the_model_whom_it_answers_with_the_quote_bounded():
    said = Message(7, Role.USER, "Sure", NOW, author="Bob", quote=Quote(3, "Alice", 'Pizza "tonight"?'))
    assert message_item(said)["content"] == '[Bob, replying to Alice: "Pizza \\"tonight\\"?"] "Sure"'
    long = replace(said, quote=Quote(3, "Alice", "x" * 500))
    assert message_item(long)["content"] == f'[Bob, replying to Alice: "{"x" * 120}"] "Sure"'
    gone = replace(said, quote=Quote(3, "", ""))
    assert message_item(gone)["content"] == '[Bob, replying to a deleted message] "Sure"'
    reacted = replace(said, reactions=(("👍", ("Alice",)),))
    assert message_item(reacted) == message_item(said), "reactions change nothing the model sees"


def test_a_reply_reaches_the_model_with_what_it_answers(open_room, server):
    room = open_room("Alice", "Bob")
    question = say(room, "Alice", "Who brings the cake?\nI can't.")
    say(room, "Bob", "Me!", replying_to=question.id)
    assert user_inputs(server.response_requests()[-1]) == [
        '[Bob, replying to Alice: "Who brings the cake?"] "Me!"'
    ]


def test_a_deleted_message_the_model_saw_is_deleted_from_the_conversation(open_room, server):
    room = open_room("Alice", "Bob")
    secret = say(room, "Alice", "my password is hunter2")
    say(room, "Bob", "don't post that!", replying_to=secret.id)
    conversation = room.conversation()
    assert conversation is not None and '[Alice] "my password is hunter2"' in item_texts(server, conversation)

    room.delete_message("id-Alice", secret.id)

    wait_until(lambda: server.deleted_items, "the worker to delete the item (the room is idle)")
    [(where, item)] = server.deleted_items
    assert (where, item["content"]) == (conversation, '[Alice] "my password is hunter2"')
    assert not any(
        "hunter2" in text and text.startswith("[Alice]") for text in item_texts(server, conversation)
    )
    assert '[Bob, replying to Alice: "my password is hunter2"] "don\'t post that!"' in item_texts(
        server, conversation
    ), "only the deleted message's own item goes: a reply sent before keeps the quote it was sent with"
    wait_until(lambda: not room.to_forget(), "the room to drop its record of the job")

    say(room, "Bob", "sorry", replying_to=secret.id)
    assert user_inputs(server.response_requests()[-1]) == ['[Bob, replying to a deleted message] "sorry"']
    assert len(server.deleted_items) == 1


def test_a_deleted_message_goes_with_its_file_and_a_reply_is_found_after_its_quote_was_blanked(
    open_room, server
):
    room = open_room("Alice", "Bob")
    first = say(room, "Alice", "look at this")
    attachment = check_upload("notes.pdf", PDF, max_mb=10)
    with_file = say(room, "Bob", "here it is", [(attachment, PDF)], replying_to=first.id)
    room.delete_message("id-Alice", first.id)  # Bob's quote of it is blanked in the room, not on the server
    wait_until(lambda: len(server.deleted_items) == 1, "Alice's item to go")
    room.delete_message("id-Bob", with_file.id)

    wait_until(lambda: len(server.deleted_items) == 2, "Bob's item to go too")
    item = server.deleted_items[1][1]
    assert item["content"][0]["text"].startswith('[Bob, replying to Alice: "look at this"] "here it is"\n')
    assert [part["type"] for part in item["content"]] == ["input_text", "input_file"], "the file went with it"
    assert [
        text for text in item_texts(server, room.conversation()) if "[Alice]" in text or "[Bob" in text
    ] == []


def test_local_mode_leaves_a_deleted_message_out_of_the_history_sent(open_room, server):
    room = open_room("Alice", conversation_mode="local")
    secret = say(room, "Alice", "my password is hunter2")
    room.delete_message("id-Alice", secret.id)
    say(room, "Alice", "what did I say?")

    # What the assistant answered to it is its own words, and stays (the test server echoes the message).
    assert user_inputs(server.response_requests()[-1]) == ['[Alice] "what did I say?"']
    assert server.sent("DELETE", "/v1/conversations/") == [] and server.conversations == {}
