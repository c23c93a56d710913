"""Who you are and who gets in, in real Chromium: identity lives in a cookie, not the address; private rooms
open only with their invite link; MAX_ROOMS caps how many rooms are open.

Two browser contexts are two browsers (separate cookie jars); two pages of one context are two tabs.
"""

from __future__ import annotations

import re

import pytest

from tests.e2e.conftest import ARTIFACTS, DEADLINE_SECONDS, wait_until
from tests.e2e.test_two_people import (
    SIDEBAR,
    bubble_texts,
    in_room,
    join,
    main_text,
    send,
    sidebar_text,
    turn_over,
)

pytestmark = pytest.mark.e2e

COOKIE = "chatroom_browser"


def asked_for_nickname(page) -> None:
    page.get_by_role("textbox", name="Nickname").wait_for(timeout=DEADLINE_SECONDS * 1000)


@pytest.mark.promise_identity
def test_the_address_names_nobody_but_a_reload_or_another_tab_keeps_you(app_server, new_page):
    server = app_server()
    alice = new_page()
    join(alice, server.url + "?room=lobby", "Alice")
    wait_until(lambda: "Alice (you)" in sidebar_text(alice), DEADLINE_SECONDS, "Alice to be in the room")
    assert "me=" not in alice.url, alice.url
    cookies = {c["name"]: c for c in alice.context.cookies()}
    assert cookies[COOKIE]["httpOnly"] and cookies[COOKIE]["sameSite"] == "Lax"

    alice.reload()  # the same person, without being asked again
    in_room(alice)
    wait_until(lambda: "Alice (you)" in sidebar_text(alice), DEADLINE_SECONDS, "Alice back after a reload")

    second_tab = alice.context.new_page()  # another tab of the same browser
    second_tab.goto(server.url + "?room=lobby")
    in_room(second_tab)
    wait_until(lambda: "Alice (you)" in sidebar_text(second_tab), DEADLINE_SECONDS, "Alice's second tab")

    # The exact address, pasted into another browser, is a new person who must pick a nickname.
    stranger = new_page()
    stranger.goto(alice.url)
    asked_for_nickname(stranger)
    assert stranger.get_by_placeholder("Send message").count() == 0
    stranger.screenshot(path=str(ARTIFACTS / "identity-copied-address.png"))

    # An old `?me=` link is ignored and taken out of the address.
    old_link = new_page()
    old_link.goto(server.url + "?room=lobby&me=" + "0" * 32)
    asked_for_nickname(old_link)
    wait_until(lambda: "me=" not in old_link.url, DEADLINE_SECONDS, "the old token to leave the address")
    assert main_text(alice).count("Alice joined.") == 1
    assert "(you)" not in sidebar_text(old_link)


def invite_link(page) -> str:
    match = re.search(r"(http\S+invite=[\w-]+)", main_text(page))
    assert match, main_text(page)
    return match[1]


@pytest.mark.promise_private_rooms
def test_a_private_room_is_unlisted_its_name_lets_nobody_in_and_its_invite_link_does(app_server, new_page):
    server = app_server()
    alice = new_page()
    alice.goto(server.url + "rooms")
    alice.get_by_role("textbox", name="Room name").fill("plans")
    alice.get_by_text("Private room").click()
    alice.screenshot(path=str(ARTIFACTS / "private-rooms-page.png"))
    alice.get_by_role("button", name="Open room").click()
    asked_for_nickname(alice)
    join(alice, None, "Alice")
    send(alice, "the surprise party is on Friday")
    wait_until(lambda: any("Hi Alice" in t for t in bubble_texts(alice)), DEADLINE_SECONDS, "the reply")
    wait_until(lambda: turn_over(alice), DEADLINE_SECONDS, "the turn to end")
    link = invite_link(alice)
    assert "Private room" in main_text(alice)
    alice.screenshot(path=str(ARTIFACTS / "private-room-invite-link.png"))

    bob = new_page()
    bob.goto(server.url + "rooms")
    bob.get_by_role("button", name="Open room").wait_for(timeout=DEADLINE_SECONDS * 1000)
    assert "plans" not in main_text(bob), "a private room is listed nowhere"

    bob.goto(server.url + "?room=plans")  # the name alone
    bob.get_by_text("This room is private").wait_for(timeout=DEADLINE_SECONDS * 1000)
    assert "surprise party" not in bob.content()
    assert bob.get_by_role("textbox", name="Nickname").count() == 0
    bob.screenshot(path=str(ARTIFACTS / "private-room-name-refused.png"))

    join(bob, link, "Bob")
    wait_until(
        lambda: any("the surprise party is on Friday" in t for t in bubble_texts(bob)),
        DEADLINE_SECONDS,
        "Bob to see the room's history",
    )
    wait_until(lambda: "Bob" in sidebar_text(alice), DEADLINE_SECONDS, "Alice to see Bob arrive")
    bob.reload()  # the invite stays in the address, so a reload keeps working
    in_room(bob)
    # The sidebar's pages drop the address, but this tab keeps the invite it came with.
    bob.locator(SIDEBAR).get_by_role("link", name="This room").click()
    bob.get_by_text("Room plans").wait_for(timeout=DEADLINE_SECONDS * 1000)
    bob.locator(SIDEBAR).get_by_role("link", name="Chat room").click()
    in_room(bob)


@pytest.mark.promise_max_rooms
def test_max_rooms_refuses_a_new_room_keeps_open_ones_and_frees_a_place_when_one_closes(app_server, new_page):
    server = app_server(MAX_ROOMS="2", ROOM_EMPTY_GRACE_SECONDS="2", LEAVE_GRACE_SECONDS="0")
    alice = new_page()
    join(alice, server.url + "?room=lobby", "Alice")
    bob = new_page()
    join(bob, server.url + "?room=one", "Bob")

    carol = new_page()
    carol.goto(server.url + "?room=two")  # looking opens nothing: the join is refused
    limit = "the app's limit of 2 open rooms is reached"
    carol.get_by_role("textbox", name="Nickname").fill("Carol")
    carol.get_by_role("button", name="Join").click()
    carol.get_by_text(limit).wait_for(timeout=DEADLINE_SECONDS * 1000)
    carol.screenshot(path=str(ARTIFACTS / "max-rooms-refused.png"))
    carol.goto(server.url + "rooms")
    carol.get_by_role("textbox", name="Room name").fill("three")
    carol.get_by_role("button", name="Open room").click()  # a public room opens at its first join
    carol.get_by_role("textbox", name="Nickname").fill("Carol")
    carol.get_by_role("button", name="Join").click()
    carol.get_by_text(limit).wait_for(timeout=DEADLINE_SECONDS * 1000)

    send(alice, "still working?")  # the open rooms keep working
    wait_until(lambda: any("Hi Alice" in t for t in bubble_texts(alice)), DEADLINE_SECONDS, "Alice's reply")

    bob.get_by_role("button", name="Leave the room").click()  # room one empties and closes
    asked_for_nickname(bob)

    def two_opens() -> bool:
        carol.goto(server.url + "?room=two")
        carol.get_by_role("textbox", name="Nickname").fill("Carol")
        carol.get_by_role("button", name="Join").click()
        box = carol.get_by_placeholder("Send message")
        box.or_(carol.get_by_text(limit)).first.wait_for(timeout=DEADLINE_SECONDS * 1000)
        return box.count() > 0

    wait_until(two_opens, DEADLINE_SECONDS, "room two to open at Carol's join once room one closed")
