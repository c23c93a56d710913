"""Two people in two real Chromium pages chat with each other and the offline assistant."""

from __future__ import annotations

import time

import pytest

from shared.web.conversation import PAGE_OF_MESSAGES
from tests.e2e.conftest import ARTIFACTS, DEADLINE_SECONDS, wait_until

pytestmark = pytest.mark.e2e

MESSAGE = '[data-testid="stChatMessage"]'
ACTIONS = '[data-testid="stPopover"]'  # under a message: the button that opens its row of actions
MAIN = '[data-testid="stMainBlockContainer"]'
SIDEBAR = '[data-testid="stSidebar"]'


def in_room(page) -> None:
    """Wait until the page shows the chat box: its person is in the room."""
    page.get_by_placeholder("Send message").wait_for(timeout=DEADLINE_SECONDS * 1000)


def join(page, url: str | None, nickname: str) -> None:
    """Join as `nickname`, at `url` or (None) on the page as it is now, and wait to be in the room."""
    if url is not None:
        page.goto(url)
    page.get_by_role("textbox", name="Nickname").fill(nickname)
    page.get_by_role("button", name="Join").click()
    in_room(page)


def send(page, text: str) -> None:
    box = page.get_by_placeholder("Send message")
    box.fill(text)
    box.press("Enter")


def main_text(page) -> str:
    return page.locator(MAIN).inner_text()


def sidebar_text(page) -> str:
    return page.locator(SIDEBAR).inner_text()


def bubble_texts(page) -> list[str]:
    return page.locator(MESSAGE).all_inner_texts()


def turn_over(page) -> bool:
    """No reply is being written and no message waits for one."""
    text = page.locator('[data-testid="stMainBlockContainer"]').inner_text()
    return "is replying to" not in text and "waiting for" not in text


def reply_text(page) -> str:
    """The text of the newest assistant bubble ('' if none yet)."""
    texts = [t for t in bubble_texts(page) if "CatGPT ·" in t]
    return texts[-1] if texts else ""


def test_two_people_chat_and_the_reply_streams_in_both(app_server, new_page):
    server = app_server()
    alice, bob = new_page(), new_page()
    join(alice, server.url, "Alice")
    join(bob, server.url, "Bob")
    wait_until(
        lambda: "Bob" in alice.locator('[data-testid="stSidebar"]').inner_text(),
        DEADLINE_SECONDS,
        "Alice to see Bob",
    )

    sent = time.monotonic()
    send(alice, "Hello Bob, what time is it?")
    wait_until(
        lambda: any("Hello Bob, what time is it?" in t for t in bubble_texts(bob)),
        DEADLINE_SECONDS,
        "Bob to see it",
    )
    print(f"\nAlice's message reached Bob's page after {time.monotonic() - sent:.2f} s")

    # While the reply is being written, both pages show it growing word by word.
    growth = {}
    for name, page in (("Alice", alice), ("Bob", bob)):
        wait_until(
            lambda page=page: "writing…" in reply_text(page),
            DEADLINE_SECONDS,
            f"{name} to see the reply start",
        )
        first = reply_text(page)
        wait_until(
            lambda page=page, first=first: len(reply_text(page)) > len(first),
            DEADLINE_SECONDS,
            f"{name}'s reply to grow",
        )
        growth[name] = (first, reply_text(page))
    alice.screenshot(path=str(ARTIFACTS / "streaming-alice.png"))
    bob.screenshot(path=str(ARTIFACTS / "streaming-bob.png"))
    assert all("Hi Alice!" in later for _, later in growth.values())

    for name, page in (("Alice", alice), ("Bob", bob)):
        wait_until(
            lambda page=page: "to talk to a real model." in reply_text(page),
            DEADLINE_SECONDS,
            f"{name}'s reply to end",
        )
        wait_until(
            lambda page=page: turn_over(page), DEADLINE_SECONDS, f"{name}'s page to show the turn over"
        )
        assert page.get_by_placeholder("Send message").is_enabled()
    final = reply_text(bob)
    assert "It is " in final and "Alice, you said" in final
    assert reply_text(alice) == final

    send(bob, "Nice to meet you, **Alice**")
    wait_until(
        lambda: any("Nice to meet you, Alice" in t for t in bubble_texts(alice)),
        DEADLINE_SECONDS,
        "Alice to see Bob",
    )
    alice.screenshot(path=str(ARTIFACTS / "two-people-alice.png"), full_page=True)
    assert "Traceback" not in server.log()


@pytest.mark.promise_reloads
def test_closed_tab_leaves_the_room_but_a_reload_does_not(app_server, new_page):
    server = app_server(LEAVE_GRACE_SECONDS="2")
    alice, bob = new_page(), new_page()
    join(alice, server.url, "Alice")
    join(bob, server.url, "Bob")
    sidebar = alice.locator('[data-testid="stSidebar"]')
    wait_until(lambda: "Bob" in sidebar.inner_text(), DEADLINE_SECONDS, "Alice to see Bob")

    bob.reload()
    in_room(bob)  # back in, no nickname asked
    assert "Bob (you)" in bob.locator('[data-testid="stSidebar"]').inner_text()

    closed = time.monotonic()
    bob.close()
    wait_until(
        lambda: "Bob left." in alice.locator("body").inner_text(), DEADLINE_SECONDS, "Alice to see Bob leave"
    )
    print(f"\nBob's closed tab left the room after {time.monotonic() - closed:.2f} s (grace 2 s)")
    notices = alice.locator("body").inner_text()
    assert notices.count("Bob joined.") == 1 and notices.count("Bob left.") == 1
    # The conversation shows it first; the sidebar follows with the page's next full run.
    wait_until(lambda: "Bob" not in sidebar.inner_text(), DEADLINE_SECONDS, "Bob to leave Alice's sidebar")


def test_the_live_page_survives_a_network_blip_and_comes_back_after_streamlits_stop(app_server, new_page):
    # Our config's minimal toolbar shows no Stop at all; with the full one it is there, hidden by our style.
    server = app_server(WORD_DELAY_MS="0", STREAMLIT_CLIENT_TOOLBAR_MODE="auto")
    alice, bob = new_page(), new_page()
    join(alice, server.url, "Alice")
    join(bob, server.url, "Bob")

    alice.context.set_offline(True)
    alice.wait_for_timeout(2_000)  # a short outage, as on a train
    alice.context.set_offline(False)
    send(bob, "after the blip")
    wait_until(
        lambda: any("after the blip" in t for t in bubble_texts(alice)), DEADLINE_SECONDS, "Alice to catch up"
    )

    # Streamlit's own Stop (its button is hidden on this page, but a script can still press it).
    stops = alice.locator('[data-testid="stStatusWidget"] button')
    # The live page is a running script, so Streamlit offers its Stop (shown a moment after a run starts).
    wait_until(lambda: stops.count() >= 1, DEADLINE_SECONDS, "Streamlit's Stop button to exist")
    stops.first.evaluate("button => button.click()")
    # Stopped, the page follows the room again with its person's next action (no periodic tick restarts
    # it: a tick can make Streamlit drop a message on its way).
    send(alice, "back after the stop")
    send(bob, "after the stop")
    wait_until(
        lambda: any("after the stop" in t for t in bubble_texts(alice)),
        DEADLINE_SECONDS,
        "the live page to follow the room again",
    )
    assert alice.locator('[data-testid="stStatusWidget"]').evaluate_all(
        "els => els.every(e => getComputedStyle(e).visibility === 'hidden')"
    ), "the always-running page does not look busy"


def test_a_long_room_leaves_no_ghost_of_a_finished_reply(app_server, new_page):
    """Past a page of messages the page shows a moving window; a full run must not leave an old bubble behind."""
    server = app_server(WORD_DELAY_MS="0", RATE_LIMIT_MESSAGES="1000")
    alice, bob = new_page(), new_page()
    join(alice, server.url, "Alice")
    join(bob, server.url, "Bob")
    for n in range(PAGE_OF_MESSAGES // 2 + 2):  # each message and its answer: the room passes a page of them
        send(alice, f"filler {n}")
        wait_until(
            lambda n=n: f"filler {n}" in reply_text(bob), DEADLINE_SECONDS, f"the answer to filler {n}"
        )
        wait_until(lambda: turn_over(alice), DEADLINE_SECONDS, "the turn to end")
    wait_until(
        lambda: (
            "writing…" not in bob.locator('[data-testid="stMainBlockContainer"]').inner_text()
            and bob.locator(MESSAGE).count() == bob.locator(f"{MESSAGE} {ACTIONS}").count()
        ),  # a new message's button of actions comes 0.5 s later
        DEADLINE_SECONDS,
        "the last reply to settle",
    )
    # Bob did nothing, so his page kept everything since he came. His own next action (the toggle) is a
    # full run: it offers the earlier messages and redraws the same ones in place, none left over.
    before = bubble_texts(bob)
    assert any("filler 0" in t for t in before)
    bob.get_by_text("Stream replies").click()
    wait_until(lambda: bob.get_by_text("Show earlier messages").count() == 1, DEADLINE_SECONDS, "the button")
    bob.screenshot(path=str(ARTIFACTS / "long-room-bob.png"))
    after = bubble_texts(bob)
    assert after == before and len(after) == len(set(after)), "a bubble moved, vanished or shows twice"
    # Pressed, it brings the rest of the room; with nothing earlier left, it stays greyed, and no faded
    # copy of the pressed one lingers (the browser keeps a replaced widget while a run goes on).
    bob.get_by_role("button", name="Show earlier messages").click()
    pressed = bob.get_by_role("button", name="Show earlier messages")
    wait_until(lambda: pressed.count() == 1 and pressed.is_disabled(), DEADLINE_SECONDS, "a greyed button")
    assert bob.locator('[data-stale="true"]').get_by_text("Show earlier messages").count() == 0
    assert bubble_texts(bob) == before, "every message was already on Bob's page, in the same order"
