"""Issue 19 as pages show it (AppTest, several sessions in one process): the room's instructions, the third
reply policy, and the host's controls, which only the host sees."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from shared.hub import PRIVATE_ROOM
from shared.messages import ReplyPolicy
from shared.web.resources import get_hub
from tests.pages import APP, get_room, join, notices, send, sidebar_people, unescape, wait_until

pytestmark = pytest.mark.usefixtures("fresh_app")


def room_page(at):
    return at.switch_page("pages/room.py").run()


def chat_page(at):
    return at.switch_page("pages/chat.py").run()


def buttons(at, label: str):
    return [b for b in at.button if b.label == label]


CLUB = "book-club"  # a room someone opened: its first person hosts it (the lobby belongs to nobody)


@pytest.mark.promise_host
def test_in_the_default_room_nobody_is_host_nobody_sees_host_controls_and_nobody_can_lock_it():
    alice, bob = join("Alice"), join("Bob")
    assert [unescape(p) for p in sidebar_people(alice.run())] == [
        ":material/person: Alice (you)",
        ":material/person: Bob",
    ]
    for person in (alice, bob):
        room_page(person)
        assert not person.exception
        assert buttons(person, "Remove") == [] and [t for t in person.toggle if t.label == "Lock room"] == []
    carol = join("Carol")
    assert not carol.error and [p.nickname for p in get_room().view().participants] == [
        "Alice",
        "Bob",
        "Carol",
    ]


def test_instructions_written_on_the_room_page_show_under_the_chat_title_for_everyone():
    alice, bob = join("Alice"), join("Bob")
    room_page(alice)
    (area,) = [t for t in alice.text_area if t.label == "Room instructions"]
    assert "2,000 characters" in area.help and area.max_chars == 2_000
    area.input("Book club for *Dune*; be the facilitator")
    next(b for b in alice.button if b.label == "Save instructions").click().run()
    assert not alice.exception

    assert get_room().instructions == "Book club for *Dune*; be the facilitator"
    bob.run()
    line = next(c.value for c in bob.caption if "Room instructions" in c.value)
    assert r"Book club for \*Dune\*" in line  # escaped: people wrote it, it is not the app's Markdown
    assert any(n.startswith(":material/info: Alice changed the room's instructions.") for n in notices(bob))


@pytest.mark.promise_host
def test_only_the_host_sees_host_controls_and_is_marked_in_the_people_list():
    alice, bob = join("Alice", room=CLUB), join("Bob", room=CLUB)
    assert [unescape(p) for p in sidebar_people(bob)] == [
        ":material/person: Alice (host)",
        ":material/person: Bob (you)",
    ]
    room_page(bob)
    assert buttons(bob, "Remove") == [] and [t for t in bob.toggle if t.label == "Lock room"] == []
    room_page(alice)
    (remove,) = buttons(alice, "Remove")
    assert "cannot join again" in remove.help
    (lock,) = [t for t in alice.toggle if t.label == "Lock room"]
    assert "Nobody new may join" in lock.help


@pytest.mark.promise_room_instructions
def test_only_the_host_writes_and_locks_the_room_instructions_on_the_room_page():
    alice, bob = join("Alice", room=CLUB), join("Bob", room=CLUB)  # Alice opened the room: its host
    room_page(bob)
    assert not bob.text_area and not bob.checkbox
    assert any(c.value == "Only the room's host can change them." for c in bob.caption)
    room_page(alice)
    (area,) = [t for t in alice.text_area if t.label == "Room instructions"]
    (lock,) = [c for c in alice.checkbox if c.label == "Lock the room's instructions"]
    lock.check().run()
    assert not alice.exception and get_room(CLUB).view().status.instructions_locked
    assert not alice.text_area, "locked: not even the host's page offers to change them"
    assert any("The host locked them" in c.value for c in alice.caption)


@pytest.mark.promise_host
def test_the_host_removes_bob_whose_pages_then_show_one_sentence_and_no_nickname_form():
    alice, bob = join("Alice", room=CLUB), join("Bob", room=CLUB)
    room_page(alice)
    buttons(alice, "Remove")[0].click().run()
    assert not alice.exception
    assert [p.nickname for p in get_room(CLUB).view().participants] == ["Alice"]

    bob.run()
    assert [e.value for e in bob.error] == [
        "The host removed you from this room, so you cannot join it again while it is open."
    ]
    assert [t for t in bob.text_input if t.label == "Nickname"] == []
    room_page(bob)
    assert len(bob.error) == 1 and not bob.text_area  # the room page too: one sentence, nothing else


def test_the_host_locks_the_room_and_a_newcomer_is_refused():
    alice = join("Alice", room=CLUB)
    room_page(alice)
    next(t for t in alice.toggle if t.label == "Lock room").set_value(True).run()
    assert get_room(CLUB).locked
    carol = join("Carol", room=CLUB)
    assert any("locked by its host" in e.value for e in carol.error)
    assert [p.nickname for p in get_room(CLUB).view().participants] == ["Alice"]


def test_when_it_can_help_is_a_third_choice_and_the_room_page_counts_its_decisions():
    alice = join("Alice")
    radio = alice.sidebar.radio[0]
    assert list(radio.options) == ["Every message", "Only when mentioned", "When it can help"]
    assert "When it can help" in radio.help
    radio.set_value(ReplyPolicy.WHEN_HELPFUL).run()
    send(alice, "I liked chapter one.")
    wait_until(lambda: get_room().decisions() == (0, 1))
    send(alice, "Who is Paul's mother?")
    wait_until(lambda: get_room().decisions() == (1, 1) and not get_room().busy)
    room_page(alice)
    page = " ".join(m.value for m in alice.markdown)
    assert "When it can help: **1** batch answered, **1** let pass" in page


def open_private(room: str, secret: str, token: str | None = None):
    at = AppTest.from_file(APP, default_timeout=15)
    if token:
        at.session_state["token"] = token
    at.query_params["room"], at.query_params["invite"] = room, secret
    return at.run()


@pytest.mark.promise_host
@pytest.mark.promise_private_rooms
def test_a_removal_in_a_private_room_gives_the_people_inside_a_new_link_and_refuses_the_old_one():
    plans = get_hub().open_room("plans", private=True)
    old = plans.invite_secret
    alice, bob, carol = (join(name, open_private("plans", old)) for name in ("Alice", "Bob", "Carol"))
    room_page(alice)
    buttons(alice, "Remove")[0].click().run()  # the first person after Alice: Bob
    new = plans.invite_secret
    assert new != old

    for person in (alice, carol):
        chat_page(person)
        assert not person.exception and not person.error and person.chat_input, "still in the room"
        assert person.query_params["invite"] == new
        assert any(new in c.value and old not in c.value for c in person.caption), (
            "the page shows the new link"
        )
    stranger = open_private("plans", old)  # Bob in a private window: a new browser with the old link
    assert [e.value for e in stranger.error] == [PRIVATE_ROOM]
    assert [t for t in stranger.text_input if t.label == "Nickname"] == []
