"""AppTest: unread messages and mentions on each page. Bob's browser is in rooms `a` and `b` (two tabs of
one identity); Alice mentions him in `b` while none of his pages shows `b`'s conversation."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from shared.messages import ReplyPolicy
from tests.pages import get_room, join, open_page, send, unescape

pytestmark = [pytest.mark.usefixtures("fresh_app"), pytest.mark.promise_unread_mentions]

BOB = "bob-browser"  # the identity Bob's browser cookie gives each of his tabs


def bob_in_a_and_b() -> tuple[AppTest, AppTest, AppTest]:
    """Bob's tab on `a`'s chat page, his tab that joined `b` and went on to the Rooms page, and Alice in `b`."""
    on_a = join("Bob", open_page(token=BOB, room="a"))
    on_b = join("Bob", open_page(token=BOB, room="b"))
    alice = join("Alice", room="b")
    get_room("b").set_reply_policy(alice.session_state["token"], ReplyPolicy.WHEN_MENTIONED)  # no reply
    on_b.switch_page("pages/rooms.py").run()  # still in `b`, no longer shown its messages
    on_a.run()  # Bob's page on `a` starts watching `b`
    return on_a, on_b, alice


def room_links(at: AppTest) -> dict[str, str]:
    """Room name -> the label of its link on the Rooms page."""
    return {link.label.split("**")[1]: unescape(link.label).replace("**", "") for link in at.get("page_link")}


def toasts(at: AppTest) -> list[str]:
    return [unescape(t.value).replace("**", "") for t in at.toast]


def test_the_rooms_page_shows_unread_and_a_mention_in_the_rooms_you_are_in():
    _, on_rooms, alice = bob_in_a_and_b()
    before = room_links(on_rooms.run())
    assert "you are in it · all read" in before["b"]
    assert "mentions you" not in before["b"]

    send(alice, "@bob look")
    send(alice, "and this, without a mention")
    links = room_links(on_rooms.run())
    assert "you are in it · 2 unread · mentions you" in links["b"]
    assert "you are in it · all read" in links["a"], "his page on a shows everything said there"
    [b_link] = [link for link in on_rooms.get("page_link") if "**b**" in link.label]
    assert b_link.proto.icon == ":material/alternate_email:", "a mention has its icon besides the words"

    stranger = open_page()  # another browser: in no room
    stranger.switch_page("pages/rooms.py").run()
    assert all("you are in it" not in label for label in room_links(stranger).values())


def test_the_chat_page_of_another_room_tells_of_a_mention_once():
    on_a, _, alice = bob_in_a_and_b()
    assert not toasts(on_a)

    send(alice, "@Bob look")
    on_a.run()
    assert toasts(on_a) == ["Alice mentioned you in b: @Bob look"]
    on_a.run()
    assert not toasts(on_a), "each mention is told once"

    send(alice, "@Bobby is someone else")
    assert not toasts(on_a.run())


@pytest.mark.parametrize("page", ["pages/about.py", "pages/room.py"])
def test_the_other_pages_tell_of_a_mention_too(page):
    _, on_rooms, alice = bob_in_a_and_b()
    send(alice, "Over here @BOB")
    assert toasts(on_rooms.run()) == ["Alice mentioned you in b: Over here @BOB"]
    on_rooms.switch_page(page).run()
    assert not toasts(on_rooms), "told once per tab, whatever page it shows"

    another_tab = open_page(token=BOB)
    another_tab.switch_page(page).run()
    assert toasts(another_tab) == ["Alice mentioned you in b: Over here @BOB"], "what no page showed him"
