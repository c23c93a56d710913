"""OpenAI's hosted tools (WEB_SEARCH, IMAGE_GENERATION) over the real `openai` SDK and loopback HTTP to
`tests/openai_server.py`: what is offered, what the assistant yields, and what everyone sees in the room."""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Callable, Iterator

import pytest
from PIL import Image

from shared.assistant.openai import DRAWING, SEARCHING, OpenAIAssistant
from shared.attachments import MB
from shared.hub import Hub
from shared.messages import Activity, Message, Picture, Role, Source, Status, Turn
from shared.room import Room
from shared.room.dress import dress_reply
from shared.room.turns import COMPLETE, end_turn
from shared.store.redis import RedisStore
from tests.fakes import wait_for_workers_to_end, wait_until
from tests.openai_server import Draw, OpenAIServer, Search
from tests.test_openai_assistant import NOW, make_assistant, person, settings_for
from tests.test_room_rules import FENCE, HeldRoom

pytestmark = pytest.mark.promise_hosted_tools

SOURCES = (
    ("https://example.org/cats", "All about *cats*"),
    ("https://example.com/whiskers", "Whiskers [and] more"),
)


def png(width: int = 8, height: int = 8, *, noise: bool = False) -> bytes:
    """A real PNG; `noise` makes one that hardly compresses (about 3 bytes a pixel)."""
    if noise:
        picture = Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))
    else:
        picture = Image.new("RGB", (width, height), (200, 120, 40))
    out = io.BytesIO()
    picture.save(out, format="PNG")
    return out.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as server:
        yield server


@pytest.fixture
def open_room(server: OpenAIServer) -> Iterator[Callable[..., Room]]:
    """A room on the test server with Alice in it, both hosted tools on unless told otherwise."""
    rooms: list[Room] = []

    def make(**overrides) -> Room:
        settings = settings_for(server, **{"web_search": True, "image_generation": True, **overrides})
        room = Room("lobby", settings, make_assistant(settings), now=lambda: NOW)
        rooms.append(room)
        room.join(person("Alice"), "Alice", "tab-Alice")
        return room

    yield make
    for room in rooms:
        room.close()


def ask(room: Room, text: str) -> Message:
    """Alice asks; the assistant's reply once the turn is over."""
    room.post(person("Alice"), text)
    wait_until(lambda: not room.busy, "the reply to finish")
    return [m for m in room.view().messages if m.role is Role.ASSISTANT][-1]


def system_lines(room: Room) -> list[str]:
    return [m.text for m in room.view().messages if m.role is Role.SYSTEM]


def pieces_of_one_reply(server: OpenAIServer, text: str, **settings) -> list:
    assistant = OpenAIAssistant(settings_for(server, web_search=True, image_generation=True, **settings))
    conversation = assistant.open_conversation("lobby")
    said = Message(1, Role.USER, text, NOW, author="Alice", participant_id=person("Alice"))
    turn = Turn(room="lobby", messages=(said,), history=(), present=("Alice",), now=NOW)
    return list(assistant.reply(conversation, turn))


def hosted_tools(server: OpenAIServer) -> list[dict]:
    return [tool for tool in server.response_requests()[-1]["tools"] if tool["type"] != "function"]


# --- what is offered ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("web_search", "image_generation", "mode", "offered"),
    [
        (False, False, "server", []),
        (True, False, "server", [{"type": "web_search"}]),
        (False, True, "server", [{"type": "image_generation"}]),
        (True, True, "server", [{"type": "web_search"}, {"type": "image_generation"}]),
        (True, True, "local", []),
    ],
)
def test_hosted_tools_are_offered_only_when_switched_on_and_never_in_local_mode(
    open_room, server, web_search, image_generation, mode, offered
):
    room = open_room(web_search=web_search, image_generation=image_generation, conversation_mode=mode)
    ask(room, "hello")

    assert hosted_tools(server) == offered
    assert any(tool["type"] == "function" for tool in server.response_requests()[-1]["tools"])


# --- what the assistant yields --------------------------------------------------------------------


def test_a_web_search_yields_its_activity_then_the_text_then_each_cited_source_once(server):
    server.script(Search("Cats purr at 25 Hz.", SOURCES))

    pieces = pieces_of_one_reply(server, "why do cats purr?")

    assert pieces[:2] == [Activity(SEARCHING), Activity("")]
    text = [p for p in pieces if isinstance(p, str)]
    assert "".join(text) == "Cats purr at 25 Hz."
    last_text = max(i for i, p in enumerate(pieces) if isinstance(p, str))
    assert pieces[last_text + 1 :] == [Source(url, title) for url, title in SOURCES]
    request = server.response_requests()[-1]
    assert {"type": "web_search"} in request["tools"]
    assert not [i for i in request["input"] if i.get("type") == "web_search_call"], "nothing is answered"


def test_a_drawing_yields_its_activity_then_the_picture(server):
    drawn = png()
    server.script(Draw(b64(drawn), "Here is your cat."))

    pieces = pieces_of_one_reply(server, "draw a cat")

    assert pieces[:3] == [Activity(DRAWING), Activity(""), Picture(drawn, "image/png", "drawing-1.png")]
    assert "".join(p for p in pieces if isinstance(p, str)) == "Here is your cat."


# --- what the room shows --------------------------------------------------------------------------


def test_the_reply_carries_its_sources_and_no_activity_once_finished(open_room, server):
    room = open_room()
    server.script(Search("Cats purr at 25 Hz.", SOURCES))

    reply = ask(room, "why do cats purr?")

    assert reply.text == "Cats purr at 25 Hz."
    assert reply.sources == tuple(Source(url, title) for url, title in SOURCES)
    assert reply.activity == ""
    assert reply.status is Status.COMPLETE
    assert room.view().status.activity == ""


def test_everyone_sees_searching_the_web_while_it_runs(open_room, server):
    room = open_room()
    server.script(Search("Found it.", SOURCES[:1], seconds=1.0))

    room.post(person("Alice"), "look it up")
    wait_until(lambda: room.view().status.activity == SEARCHING, "the room to say it searches the web")
    reply = room.view().reply
    assert reply is not None and reply.activity == SEARCHING and reply.text == ""
    wait_until(lambda: not room.busy, "the reply to finish")

    assert room.view().status.activity == ""
    assert [m for m in room.view().messages if m.role is Role.ASSISTANT][-1].text == "Found it."


def test_stop_while_searching_ends_the_turn_and_clears_what_the_assistant_was_doing(open_room, server):
    room = open_room()
    server.script(Search("Too late.", SOURCES, seconds=30.0))

    room.post(person("Alice"), "look it up")
    wait_until(lambda: room.view().status.activity == SEARCHING, "the search to start")
    room.stop_reply(person("Alice"))

    reply = [m for m in room.view().messages if m.role is Role.ASSISTANT][-1]
    assert (reply.status, reply.activity, reply.stopped_by) == (Status.STOPPED, "", "Alice")
    assert room.view().status.activity == "" and not room.busy


def test_a_drawn_picture_is_kept_like_an_attachment_on_the_reply(open_room, server):
    room = open_room()
    drawn = png(32, 16)
    server.script(Draw(b64(drawn), "Here is your cat."))

    reply = ask(room, "draw a cat")

    [picture] = reply.attachments
    assert (picture.name, picture.mime, picture.size) == ("drawing-1.png", "image/png", len(drawn))
    assert (picture.width, picture.height) == (32, 16)
    assert room.attachments.get(picture.id) == drawn
    assert reply.text == "Here is your cat."


def test_drawn_pictures_count_under_the_rooms_attachment_limit(open_room, server):
    room = open_room(max_room_attachments_mb=1)
    first, second = png(440, 440, noise=True), png(440, 440, noise=True)  # about 0.55 MB each
    assert len(first) + len(second) > 1024 * 1024
    server.script(Draw(b64(first)), Draw(b64(second)))

    ask(room, "draw one")
    ask(room, "draw another")

    replies = [m for m in room.view().messages if m.role is Role.ASSISTANT]
    [older], [newer] = replies[-2].attachments, replies[-1].attachments
    assert older.dropped and room.attachments.get(older.id) is None
    assert not newer.dropped and room.attachments.get(newer.id) == second
    assert room.attachments.size <= 1024 * 1024


@pytest.mark.parametrize(
    ("result", "sentence"),
    [
        ("this is not base64!", "arrived unreadable (not base64)"),
        (b64(b"<svg xmlns='http://www.w3.org/2000/svg'/>"), "was not a PNG, JPEG, GIF or WebP picture"),
        (b64(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40), "drawing-1.png was not attached: it looks like a PNG"),
    ],
)
def test_a_drawing_that_is_no_picture_is_refused_with_a_sentence_and_the_room_goes_on(
    open_room, server, result, sentence
):
    room = open_room()
    server.script(Draw(result))

    reply = ask(room, "draw a cat")

    assert system_lines(room)[-1].startswith("CatGPT could not reply: ")
    assert sentence in system_lines(room)[-1]
    assert not reply.attachments
    assert room.attachments.size == 0
    assert ask(room, "still there?").text == "Hello Alice! You said: still there?"


def test_through_redis_both_processes_see_the_sources_and_the_picture(shared_redis, server):
    url = shared_redis.fresh_url()
    settings = settings_for(server, redis_url=url, web_search=True, image_generation=True)
    hubs = [Hub(settings, make_assistant, store=RedisStore(url)) for _ in range(2)]
    try:
        room_a, alice = hubs[0].join("lobby", person("Alice"), "Alice", "tab-a")
        room_b, _ = hubs[1].join("lobby", person("Bob"), "Bob", "tab-b")
        drawn = png()
        server.script(Search("Found it.", SOURCES), Draw(b64(drawn), "Drawn."))

        for question in ("look it up", "draw it"):
            room_a.post(alice.id, question)
            wait_until(lambda: not room_a.busy and not room_b.busy, "the reply to finish everywhere")

        for room in (room_a, room_b):
            wait_until(
                lambda room=room: (
                    [m.text for m in room.view().messages if m.role is Role.ASSISTANT]
                    == ["Found it.", "Drawn."]
                ),
                "both replies on both processes",
            )
            search, drawing = [m for m in room.view().messages if m.role is Role.ASSISTANT]
            assert search.sources == tuple(Source(url, title) for url, title in SOURCES)
            assert (search.activity, drawing.activity) == ("", "")
            [picture] = drawing.attachments
            assert room.attachments.get(picture.id) == drawn
    finally:
        for hub in hubs:
            hub.shutdown()
        wait_for_workers_to_end(*(hub.store for hub in hubs))


# --- how the page and the transcript show them ------------------------------------------------------


def test_sources_are_links_only_for_web_addresses_and_their_titles_are_never_markup():
    from shared.web.messages import sources_line

    line = sources_line(
        [
            Source("https://example.org/a (b)?q=<x>", "All about *cats* [here](javascript:x)"),
            Source("javascript:alert(1)", "click me"),
            Source("https://example.com/", ""),
        ]
    )

    assert (
        "[All about \\*cats\\* \\[here\\]\\(javascript\\:x\\)](https://example.org/a%20%28b%29?q=%3Cx%3E)"
        in line
    )
    assert "click me" in line and "](javascript" not in line
    assert "(https://example.com/)" in line


def test_the_transcript_names_the_drawn_picture_and_lists_the_sources(open_room, server):
    from shared.transcript import to_json, to_markdown

    room = open_room()
    server.script(Search("Found it.", SOURCES[:1]), Draw(b64(png())))
    ask(room, "look it up")
    ask(room, "draw it")

    markdown, data = to_markdown(room.view()), to_json(room.view())
    assert "- source: `All about *cats*` <https://example.org/cats>" in markdown
    assert "- attached `drawing-1.png` (PNG picture" in markdown
    assert '"url": "https://example.org/cats"' in data and '"name": "drawing-1.png"' in data


# --- the rule alone (no room, store or worker behind it) -----------------------------------------


def held_turn() -> tuple[HeldRoom, Turn]:
    held = HeldRoom()
    held.state.fence = FENCE
    held.join("Alice")
    held.post("Alice", "look it up")
    turn = held.start_turn()
    assert turn is not None
    return held, turn


def dress(held: HeldRoom, turn: Turn, fence: int | None = FENCE, **dressing) -> tuple[bool, int | None]:
    dressing = {"activity": None, "sources": (), "pictures": (), "files_limit": 100 * MB, **dressing}
    return held.run(dress_reply, turn, fence, author="CatGPT", now=NOW, **dressing)


def test_an_activity_before_any_words_makes_the_reply_and_each_source_is_kept_once():
    held, turn = held_turn()

    writing, reply_id = dress(held, turn, activity=SEARCHING)
    dress(held, turn, sources=[Source("https://a.example/", "A")])
    dress(held, turn, sources=[Source("https://a.example/", "A again"), Source("https://b.example/")])

    reply = held.messages[reply_id]
    assert writing and reply_id == held.state.reply_id
    assert (reply.text, reply.status, reply.activity) == ("", Status.STREAMING, SEARCHING)
    assert [s.url for s in reply.sources] == ["https://a.example/", "https://b.example/"]
    held.run(end_turn, NOW, COMPLETE)
    assert held.messages[reply_id].activity == ""


def test_a_worker_that_no_longer_writes_the_turn_dresses_nothing():
    held, turn = held_turn()

    assert dress(held, turn, FENCE + 1, activity=DRAWING) == (False, None)
    assert held.last.skip and held.state.reply_id is None
