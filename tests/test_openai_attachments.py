"""Attached files and catch-ups on the OpenAI path: the real SDK over HTTP to `tests/openai_server.py`."""

from __future__ import annotations

import base64

import pytest

from shared.attachments import check_upload
from shared.messages import Role
from tests import test_openai_assistant as openai_tests
from tests.openai_server import Say
from tests.test_attachments import PDF, picture
from tests.test_openai_assistant import conversation_of, messages, person, wait_until

# The OpenAI tests' fixtures, by name: a test server and rooms on it.
server, open_room = openai_tests.server, openai_tests.open_room


def post_files(room, nickname: str, text: str, *files: tuple[str, bytes]) -> None:
    room.post(person(nickname), text, [(check_upload(name, data, 10), data) for name, data in files])
    wait_until(lambda: not room.busy, "the reply to finish")


@pytest.mark.parametrize("mode", ["server", "local"])
@pytest.mark.promise_attachments
def test_a_picture_goes_as_input_image_and_a_pdf_as_input_file(open_room, server, mode):
    room = open_room("Alice", conversation_mode=mode)
    png = picture()
    post_files(room, "Alice", "what is this?", ("cat.png", png), ("notes.pdf", PDF))

    [image] = server.input_parts("input_image")
    assert image["image_url"] == "data:image/png;base64," + base64.b64encode(png).decode()
    [file] = server.input_parts("input_file")
    assert file["filename"] == "notes.pdf"
    assert file["file_data"] == "data:application/pdf;base64," + base64.b64encode(PDF).decode()
    [text] = server.input_parts("input_text")
    assert text["text"].startswith('[Alice] "what is this?"\n(attached "cat.png": PNG picture, ')
    assert messages(room, Role.ASSISTANT)[-1].text.startswith("Hello Alice! You said: what is this?")


@pytest.mark.promise_attachments
def test_in_local_mode_earlier_files_are_named_not_sent_again(open_room, server):
    room = open_room("Alice", conversation_mode="local")
    post_files(room, "Alice", "look", ("cat.png", picture()))
    post_files(room, "Alice", "and now?")
    assert len(server.input_parts("input_image")) == 1, "the picture went once, with its own turn"
    history = server.response_requests()[-1]["input"][0]
    assert history["role"] == "user" and history["content"][0]["text"].startswith(
        '[Alice] "look"\n(attached '
    )
    assert "; not sent again)" in history["content"][0]["text"]


@pytest.mark.parametrize("mode", ["server", "local"])
@pytest.mark.promise_attachments
def test_a_server_that_refuses_pictures_gets_the_text_and_everyone_one_sentence(open_room, server, mode):
    server.refuse_files = True
    room = open_room("Alice", conversation_mode=mode)
    post_files(room, "Alice", "what is this?", ("cat.png", picture()))

    first, second = server.response_requests()
    assert "input_image" in str(first["input"]) and "input_image" not in str(second["input"])
    assert '[Alice] "what is this?"' in second["input"][0]["content"][0]["text"]
    reply = messages(room, Role.ASSISTANT)[-1].text
    assert reply.startswith(
        f"*The server at 127.0.0.1:{server.url.rsplit(':', 1)[1]} did not take the attached pictures or "
        "files, so CatGPT read only the text.*\n\nHello Alice! You said: what is this?"
    )
    assert not [m for m in messages(room, Role.SYSTEM) if "could not reply" in m.text]


@pytest.mark.promise_catch_up
def test_a_catch_up_is_a_stateless_request_the_conversation_never_sees(open_room, server):
    room = open_room("Alice", "Bob")
    room.post(person("Alice"), "shall we meet at noon?")
    wait_until(lambda: not room.busy, "the reply")
    conversation = conversation_of(server, "lobby")
    items_before, view_before = server.items(conversation), room.view()
    server.script(Say("Alice asked to meet at noon."))

    summary = room.assistant.summarize(view_before.messages, "Bob")

    assert summary == "Alice asked to meet at noon."
    request = server.response_requests()[-1]
    assert "conversation" not in request and request["store"] is False and not request.get("stream")
    assert '"Bob"' in request["instructions"]
    assert '[Alice] "shall we meet at noon?"' in request["input"][0]["content"]
    assert server.items(conversation) == items_before
    assert room.view() == view_before
