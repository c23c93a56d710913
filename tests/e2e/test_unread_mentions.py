"""Bob's browser is in rooms `a` and `b`: one tab follows `a`'s conversation, the other joined `b` and went
on to the Rooms page. Alice mentions him in `b`: his page on `a` shows a notice naming `b` (without
rerunning) and carries the count in the tab's title, and his Rooms page marks `b` with 1 unread and a
mention. On one process, and on two sharing the rooms through Redis (Bob's tab on `a` on one process,
everything of `b` on the other)."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import ARTIFACTS, DEADLINE_SECONDS, wait_until
from tests.e2e.test_two_people import SIDEBAR, join, main_text, send

pytestmark = [pytest.mark.e2e, pytest.mark.promise_unread_mentions]

TOAST = '[data-testid="stToast"]'


def toasts(page) -> list[str]:
    return page.locator(TOAST).all_inner_texts()


def link_to(page, room: str) -> str:
    """The Rooms page's link to `room`, as read ('' if it has none)."""
    for text in page.locator('[data-testid="stPageLink"]').all_inner_texts():
        if text.split(" · ")[0].strip().endswith(room):
            return text
    return ""


@pytest.mark.parametrize("processes", [1, 2], ids=["one-process", "redis-two-processes"])
def test_bob_on_room_a_is_told_of_a_mention_in_room_b(processes, request, app_server, new_page):
    servers = [app_server()] if processes == 1 else request.getfixturevalue("redis_apps")(2)
    here, there = servers[0].url, servers[-1].url  # `b` lives on the other process, with Redis

    bob_on_a = new_page()
    join(bob_on_a, here + "?room=a", "Bob")
    bob_on_b = bob_on_a.context.new_page()  # his second tab: the same browser, so the same person
    join(bob_on_b, there + "?room=b", "Bob")
    alice = new_page()
    join(alice, there + "?room=b", "Alice")
    alice.locator(SIDEBAR).get_by_text("Only when mentioned").click()  # the assistant keeps quiet
    wait_until(  # the room's line, not the radio: the sidebar draws the control afresh after a change
        lambda: "to reply to only when mentioned" in main_text(alice),
        DEADLINE_SECONDS,
        "the policy to change",
    )
    bob_on_b.locator(SIDEBAR).get_by_role("link", name="Rooms").click()  # still in `b`, not reading it
    bob_on_b.get_by_role("heading", name="Rooms").first.wait_for(timeout=DEADLINE_SECONDS * 1000)
    wait_until(lambda: "all read" in link_to(bob_on_b, "b"), DEADLINE_SECONDS, "the Rooms page to list b")
    assert bob_on_a.title() == "Shared chat room"

    send(alice, "@Bob look")

    wait_until(
        lambda: any("Alice mentioned you in b" in t for t in toasts(bob_on_a)),
        DEADLINE_SECONDS,
        "Bob's page on a to tell of the mention in b",
    )
    bob_on_a.screenshot(path=ARTIFACTS / f"unread-bob-on-a-{processes}.png")
    [told] = [t for t in toasts(bob_on_a) if "mentioned you" in t]
    assert "@Bob look" in told
    wait_until(lambda: bob_on_a.title() == "(1) Shared chat room", DEADLINE_SECONDS, "the count in the title")

    wait_until(
        lambda: "1 unread" in link_to(bob_on_b, "b") and "mentions you" in link_to(bob_on_b, "b"),
        DEADLINE_SECONDS,
        "Bob's Rooms page to mark b",
    )
    bob_on_b.screenshot(path=ARTIFACTS / f"unread-bob-rooms-{processes}.png")
    assert any("Alice mentioned you in b" in t for t in toasts(bob_on_b)), "the Rooms page tells of it too"
    wait_until(lambda: bob_on_b.title() == "(1) Shared chat room", DEADLINE_SECONDS, "the count in its title")
    assert "all read" in link_to(bob_on_b, "a"), "his page on a shows everything said there"
