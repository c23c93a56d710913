"""Beyond the sample, as people use it: separate rooms, when the assistant speaks, Stop, the transcript."""

from __future__ import annotations

import json
import re
import threading

import pytest

from shared.messages import ReplyPolicy, Role, Status
from shared.transcript import to_json, to_markdown
from shared.web.resources import get_hub
from tests.pages import (
    button,
    conversation,
    errors,
    get_room,
    join,
    notices,
    open_page,
    send,
    sidebar_people,
    stream_off,
    unescape,
    wait_until,
)

pytestmark = pytest.mark.usefixtures("fresh_app")


def test_rooms_are_separate_people_and_conversations():
    alice = join("Alice", room="book-club")
    bob = join("Bob", room="chess")
    carol = join("Alice")  # the same nickname is free in another room
    send(alice, "Chapter three was great")
    wait_until(lambda: not get_room("book-club").busy)
    bob.run()
    assert sidebar_people(bob) == [":material/person: Bob (host) (you)"]
    assert all("Chapter three" not in text for _, text in conversation(bob))
    assert sidebar_people(carol) == [":material/person: Alice (you)"]  # the lobby: nobody hosts
    assert [m.text for m in get_room("chess").view().messages if m.role is Role.USER] == []
    assert get_room("book-club").view().participants[0].nickname == "Alice"


def test_a_link_with_a_bad_room_name_is_explained():
    at = open_page(room="no spaces!")
    assert errors(at) == [
        "A room name has 1 to 40 characters: letters a-z, digits, “-” and “_”. “no spaces!” is not one."
    ]
    assert not at.exception


def test_rooms_page_lists_open_rooms_with_their_people():
    join("Alice", room="book-club")
    join("Bob", room="book-club")
    join("Carol", room="chess")
    at = open_page()
    at.switch_page("pages/rooms.py").run()
    links = [link.label for link in at.get("page_link")]
    assert "**book-club** · 2 people" in links and "**chess** · 1 person" in links


def test_mention_mode_waits_to_be_asked_then_knows_what_was_said():
    alice = join("Alice")
    bob = join("Bob")
    alice.sidebar.radio[0].set_value(ReplyPolicy.WHEN_MENTIONED).run()
    assert any("Alice set CatGPT to reply to only when mentioned as @CatGPT." in n for n in notices(alice))
    bob.run()
    assert bob.sidebar.radio[0].value is ReplyPolicy.WHEN_MENTIONED  # everyone's control follows

    send(bob, "I love tuna")
    room = get_room()
    assert not room.busy
    assert not [m for m in room.view().messages if m.role is Role.ASSISTANT]

    send(alice, "@catgpt what did Bob say?")
    wait_until(lambda: not room.busy)
    replies = [m for m in room.view().messages if m.role is Role.ASSISTANT]
    assert len(replies) == 1 and replies[0].reply_to == ("Alice",)
    assert "Bob said `I love tuna`" in replies[0].text


@pytest.mark.promise_stop_and_leave
def test_stop_ends_the_reply_for_everyone_and_the_next_message_goes_on(gated):
    alice = stream_off(join("Alice"))
    bob = stream_off(join("Bob"))  # his box is still open: he writes as the reply starts
    send(alice, "tell me a long story")
    wait_until(lambda: get_room().view().reply is not None)
    send(bob, "and then one for me")
    bob.run()
    button(bob, "Stop").click().run()
    alice.run()
    assert any("Bob stopped the reply" in c.value for c in alice.caption)  # shown while it stops
    gated[0].gate.set()
    wait_until(lambda: not get_room().busy)
    replies = [m for m in get_room().view().messages if m.role is Role.ASSISTANT]
    assert [(r.status, r.stopped_by, r.reply_to) for r in replies] == [
        (Status.STOPPED, "Bob", ("Alice",)),
        (Status.COMPLETE, "", ("Bob",)),
    ]
    assert replies[0].text == "Hi"  # what was written before Stop stays
    alice.run()
    assert any("Bob stopped the reply." in n for n in notices(alice))
    assert ":material/stop_circle: Stopped by Bob." in [unescape(c.value) for c in alice.caption]


def test_transcript_holds_every_message_exactly_once():
    alice = join("Alice")
    bob = join("Bob")
    for who, text in ((alice, "one"), (bob, "two *bold* <b>x</b>"), (alice, "three\n\nlines")):
        send(who.run(), text)
        wait_until(lambda: not get_room().busy)
    view = get_room().view()
    exported = json.loads(to_json(view))["messages"]
    assert [m["id"] for m in exported] == [m.id for m in view.messages]
    assert [(m["role"], m["author"], m["text"]) for m in exported] == [
        (m.role.value, m.author, m.text) for m in view.messages
    ]
    markdown = to_markdown(view)
    for text in ("one", "two *bold* <b>x</b>", "three"):
        assert markdown.count(f"> {text}") == 1
    assert markdown.count("**CatGPT**") == 3
    labels = [b.label for b in alice.sidebar.get("download_button")]
    assert labels == ["Download Markdown", "Download JSON"]


def test_room_page_shows_people_assistant_policy_and_counts():
    alice = join("Alice")
    join("Bob")
    send(alice, "hello")
    wait_until(lambda: not get_room().busy)
    alice.switch_page("pages/room.py").run()
    assert not alice.exception
    metrics = {m.label: m.value for m in alice.get("metric")}
    assert metrics["People here"] == "2" and metrics["Messages"] == "2"
    # How many tokens is the assistant's to say (the offline one uses none); the page shows a count.
    assert re.fullmatch(r"\d{1,3}(,\d{3})*", metrics["Tokens used"]), metrics["Tokens used"]
    page = " ".join(m.value for m in alice.markdown)
    assert "Alice" in page and "Bob" in page and "Offline demo assistant" in page
    assert "every message" in page
    assert [b.label for b in alice.get("download_button")] == ["Download Markdown", "Download JSON"]


# --- looking at a room opens nothing ------------------------------------------------------------------


@pytest.fixture(params=["memory", "redis"])
def rooms_in(request, monkeypatch) -> str:
    """Where the app keeps its rooms for the test: this process's memory, or a real Redis."""
    if request.param == "redis":
        monkeypatch.setenv("REDIS_URL", request.getfixturevalue("shared_redis").fresh_url())
    return request.param


def reply_workers(prefix: str) -> list[str]:
    """The reply workers running in this process for rooms whose names start with `prefix`."""
    return sorted(t.name for t in threading.enumerate() if t.name.startswith(f"reply-worker-{prefix}"))


@pytest.mark.promise_max_rooms
def test_looking_at_room_addresses_opens_no_room_and_fills_no_place_under_max_rooms(rooms_in, monkeypatch):
    monkeypatch.setenv("MAX_ROOMS", "3")
    stranger = open_page(room="peek-1")
    said = []
    for n in range(1, 6):  # more addresses than MAX_ROOMS, each on both of a room's pages
        stranger.query_params["room"] = f"peek-{n}"
        stranger.switch_page("pages/chat.py").run()
        assert not stranger.exception and not errors(stranger)
        assert [t.label for t in stranger.text_input] == ["Nickname"]  # the join form
        said += [c.value for c in stranger.caption]
        stranger.switch_page("pages/room.py").run()
        assert not stranger.exception and not errors(stranger)
    hub = get_hub()
    assert hub.store.room_names() == [] and hub.rooms() == []
    assert "Nobody is in room **peek-5** yet: it opens when someone joins." in " ".join(said)
    assert reply_workers("peek-") == [], "no room, so no reply worker in this process"

    people = [join(name, room=room) for name, room in (("Ann", "one"), ("Ben", "two"), ("Cy", "three"))]
    assert all(not errors(at) and at.chat_input for at in people), "the first join opens each room"
    assert sorted(hub.store.room_names()) == ["one", "three", "two"]
    late = join("Dee", room="four")  # the limit counts rooms that people opened by joining
    assert any("limit of 3 open rooms" in e for e in errors(late)) and not late.chat_input
    assert sorted(hub.store.room_names()) == ["one", "three", "two"]
