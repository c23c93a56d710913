"""Reading another page of the app (This room, Rooms, About) is not leaving the room; closing the tab is."""

from __future__ import annotations

import time

import pytest

from tests.e2e.conftest import ARTIFACTS, DEADLINE_SECONDS, wait_until
from tests.e2e.test_two_people import SIDEBAR, in_room, join, main_text, sidebar_text

pytestmark = pytest.mark.e2e

GRACE, TIMEOUT = 1, 6  # LEAVE_GRACE_SECONDS, HEARTBEAT_TIMEOUT_SECONDS (its smallest allowed value)


def stay(seconds: float, bob) -> None:
    """Let time pass while Alice reads another page; Bob's people list names her throughout."""
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        assert "Alice" in sidebar_text(bob), "Bob's page lists Alice while she reads another page"
        time.sleep(0.5)


def test_alice_reads_every_other_page_and_stays_in_the_room_until_her_tab_closes(app_server, new_page):
    server = app_server(LEAVE_GRACE_SECONDS=str(GRACE), HEARTBEAT_TIMEOUT_SECONDS=str(TIMEOUT))
    alice, bob = new_page(), new_page()
    join(alice, server.url, "Alice")
    join(bob, server.url, "Bob")
    wait_until(lambda: "Alice" in sidebar_text(bob), DEADLINE_SECONDS, "Bob to see Alice")

    # Longer than the grace period and a third of the heartbeat timeout on each page; longer than the
    # whole timeout on the first.
    for page, heading, seconds in (
        ("This room", "Room lobby", TIMEOUT + 2),
        ("Rooms", "Rooms", 3),
        ("About", "About", 3),
    ):
        alice.locator(SIDEBAR).get_by_role("link", name=page).click()
        alice.get_by_role("heading", name=heading).first.wait_for(timeout=DEADLINE_SECONDS * 1000)
        stay(seconds, bob)
    alice.screenshot(path=ARTIFACTS / "other-pages-alice-about.png")
    alice.locator(SIDEBAR).get_by_role("link", name="Chat room").click()
    in_room(alice)
    stay(2, bob)

    said = main_text(bob)
    bob.screenshot(path=ARTIFACTS / "other-pages-bob.png")
    assert said.count("Alice joined.") == 1
    assert "Alice left." not in said
    assert "Alice" in sidebar_text(bob)

    alice.context.close()  # her only tab: she leaves once the grace period has passed
    wait_until(
        lambda: "Alice left." in main_text(bob), DEADLINE_SECONDS, "Alice to leave after her tab closed"
    )
    wait_until(lambda: "Alice" not in sidebar_text(bob), DEADLINE_SECONDS, "Bob's people list to drop Alice")


def test_through_redis_alice_reads_other_pages_on_one_process_and_bob_on_the_other_sees_her_stay(
    redis_apps, new_page
):
    a, b = redis_apps(2, LEAVE_GRACE_SECONDS=str(GRACE), HEARTBEAT_TIMEOUT_SECONDS=str(TIMEOUT))
    alice, bob = new_page(), new_page()
    join(alice, a.url, "Alice")
    join(bob, b.url, "Bob")
    wait_until(lambda: "Alice" in sidebar_text(bob), DEADLINE_SECONDS, "Bob to see Alice")

    alice.locator(SIDEBAR).get_by_role("link", name="This room").click()
    alice.get_by_role("heading", name="Room lobby").first.wait_for(timeout=DEADLINE_SECONDS * 1000)
    stay(TIMEOUT + 2, bob)  # longer than the heartbeat timeout, on the other process
    alice.locator(SIDEBAR).get_by_role("link", name="Chat room").click()
    in_room(alice)

    said = main_text(bob)
    assert said.count("Alice joined.") == 1 and "Alice left." not in said
    alice.context.close()
    wait_until(
        lambda: "Alice left." in main_text(bob), DEADLINE_SECONDS, "Alice to leave after her tab closed"
    )
