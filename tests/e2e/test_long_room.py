"""A page left open while a room grows past a thousand messages holds a bounded number of them.

One person's Chromium page stays open; another person, an emulated browser tab (bench/emulator.py, the
websocket protocol a page speaks), fills the room: each message, and the offline assistant's reply to it.
"""

from __future__ import annotations

import asyncio
import math
import re
import threading

import pytest

from bench.emulator import EmulatedSession
from shared.web.window import MARGIN_OF_MESSAGES, PAGE_OF_MESSAGES
from tests.e2e.conftest import DEADLINE_SECONDS, wait_until
from tests.e2e.test_two_people import MESSAGE, join, main_text

pytestmark = pytest.mark.e2e

ROOM = "long"
POSTS = 510  # each answered: with the welcome line and two joins, the room passes 1,020 messages
BOUND = PAGE_OF_MESSAGES + MARGIN_OF_MESSAGES  # the most a page left open holds
CHECK_EVERY = 30  # posts between two counts of the open page's bubbles
# Now and then the page draws its messages afresh in a new container and then empties the old one: for a
# moment it shows both. A count is taken again until it is within the bound, for at most this long.
SETTLE_SECONDS = 10


class Filler:
    """Bob, an emulated tab, posts one message after another, each once its reply is done."""

    def __init__(self, url: str):
        self.url = url
        self.posted = 0
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="filler", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        try:
            asyncio.run(self._fill())
        except BaseException as error:  # reported by the test's thread
            self.error = error

    async def _fill(self) -> None:
        bob = EmulatedSession(self.url, "Bob", f"room={ROOM}", assistant="CatGPT", seed=1)
        await bob.connect()
        try:
            await bob.join("Bob", DEADLINE_SECONDS)
            for number in range(POSTS):
                token = f"bm{number:06d}"
                await bob.wait_for(lambda: bob.progress.input_enabled, DEADLINE_SECONDS, "the box")
                await bob.post(f"filler {token}")
                await bob.wait_for(
                    lambda t=token: t in bob.progress.done, DEADLINE_SECONDS, f"{token}'s reply"
                )
                self.posted = number + 1
        finally:
            await bob.close()


def bubbles(page) -> int:
    return page.locator(MESSAGE).count()


def top_of(page, token: str) -> float | None:
    """Where the message with `token` is in the window (pixels from its top), None once it left the page."""
    tops = the_message(page, token).evaluate_all("all => all.map(b => b.getBoundingClientRect().top)")
    # Two: the page is drawing its messages afresh, and shows the old drawing for a moment (no place yet).
    return None if not tops else tops[0] if len(tops) == 1 else math.nan


def the_message(page, token: str):
    return page.locator(MESSAGE).filter(has_text=f"filler {token}").filter(has_not_text="CatGPT")


def test_a_page_left_open_through_a_thousand_messages_holds_at_most_its_bound(app_server, new_page):
    server = app_server(WORD_DELAY_MS="0", RATE_LIMIT_MESSAGES="1000", RATE_LIMIT_SECONDS="1")
    alice = new_page()
    join(alice, f"{server.url}?room={ROOM}", "Alice")
    filler = Filler(server.url)
    filler.start()
    checked, reading, read_at = 0, None, 0.0
    while filler.thread.is_alive():
        filler.thread.join(0.5)
        if filler.posted >= checked + CHECK_EVERY:  # the page is counted while the room grows
            checked = filler.posted
            wait_until(lambda: bubbles(alice) <= BOUND, SETTLE_SECONDS, f"at most {BOUND} messages")
        if reading is None and checked >= 2 * CHECK_EVERY:
            # Alice scrolls up to read a message from a few posts ago: older ones leave above it.
            reading = f"bm{filler.posted - 8:06d}"
            message = the_message(alice, reading)
            wait_until(lambda m=message: m.count() == 1, SETTLE_SECONDS, f"{reading} on the page, once")
            message.evaluate("b => b.scrollIntoView({block: 'center'})")
            read_at = top_of(alice, reading)
        elif reading is not None and (top := top_of(alice, reading)) is not None and top == top:
            wait_until(
                lambda token=reading, at=read_at: (now := top_of(alice, token)) is None or abs(now - at) < 10,
                SETTLE_SECONDS,
                f"the message Alice reads to stay where it was ({read_at:.0f} px), not at {top:.0f} px",
            )
    assert filler.error is None, f"the filler stopped: {filler.error!r}"
    last = f"bm{POSTS - 1:06d}"
    # Every new message and its reply still reach the page, and it holds no more than the bound.
    wait_until(lambda: main_text(alice).count(last) >= 2, DEADLINE_SECONDS, "the last message and its reply")
    assert bubbles(alice) <= BOUND
    texts = alice.locator(MESSAGE).all_inner_texts()
    tokens = [token for text in texts for token in re.findall(r"\bbm\d{6}\b", text)]
    wanted = {f"bm{n:06d}" for n in range(POSTS - BOUND // 2 + 2, POSTS)}
    assert wanted <= set(tokens), "the latest messages and their replies are all on the page"
    # What left the page left the browser too: nothing of it is kept, faded or hidden, in the DOM.
    assert "bm000000" not in alice.locator("body").inner_html()
    elements = alice.locator('[data-testid="stMain"] [data-testid="stElementContainer"]').count()
    assert elements < 10 * BOUND, f"the page keeps {elements} elements for {BOUND} messages"
    # "Show earlier messages" brings older ones back on demand, a page more.
    alice.get_by_role("button", name="Show earlier messages").click()
    older = f"bm{POSTS - BOUND // 2 - PAGE_OF_MESSAGES // 2 + 1:06d}"
    wait_until(lambda: older in main_text(alice), DEADLINE_SECONDS, "a page of earlier messages")
    # The new run draws the messages in place of the old run's, then empties what is left of it.
    wait_until(lambda: bubbles(alice) <= BOUND + PAGE_OF_MESSAGES, SETTLE_SECONDS, "a page more, no more")
