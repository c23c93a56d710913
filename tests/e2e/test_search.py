"""Search in real Chromium: Bob finds a message of Alice's that is pages back, chooses it, and his page
brings it in and scrolls to it; on one process, and on two sharing the room through Redis (Alice on one,
Bob on the other)."""

from __future__ import annotations

import asyncio
import re
import threading

import pytest

from bench.emulator import EmulatedSession
from shared.web.window import PAGE_OF_MESSAGES
from tests.e2e.conftest import ARTIFACTS, DEADLINE_SECONDS, wait_until
from tests.e2e.test_two_people import MESSAGE, SIDEBAR, join, main_text, send

pytestmark = [pytest.mark.e2e, pytest.mark.promise_search]

ROOM = "search"
EARLY = "The Zürich offsite is on Tuesday"
FILLERS = PAGE_OF_MESSAGES // 2 + 3  # each answered: the early message is more than a page back


def fill(url: str) -> None:
    """Carol, an emulated tab (the websocket a page speaks), posts one message after another, each once
    its reply is done: the room grows fast, and nobody's Chromium draws it. In a thread of its own: the
    test's thread runs Playwright's event loop."""
    failed: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(_fill(url))
        except BaseException as error:  # reported by the test's thread
            failed.append(error)

    filler = threading.Thread(target=run, name="filler", daemon=True)
    filler.start()
    filler.join(DEADLINE_SECONDS * 2)
    assert not filler.is_alive() and not failed, f"the filler stopped: {failed!r}"


async def _fill(url: str) -> None:
    carol = EmulatedSession(url, "Carol", f"room={ROOM}", assistant="CatGPT", seed=3)
    await carol.connect()
    try:
        await carol.join("Carol", DEADLINE_SECONDS)
        for number in range(FILLERS):
            token = f"bm{number:06d}"  # the emulator follows tokens of this form
            await carol.wait_for(lambda: carol.progress.input_enabled, DEADLINE_SECONDS, "the box")
            await carol.post(f"filler {token}")
            await carol.wait_for(
                lambda t=token: t in carol.progress.done, DEADLINE_SECONDS, f"{token}'s reply"
            )
    finally:
        await carol.close()


def early_bubble(page):
    return page.locator(MESSAGE).filter(has_text=EARLY).filter(has_not_text="CatGPT")


def in_view(page, locator) -> bool:
    """The element is inside the window, not above or below it (scrolled to)."""
    box = locator.evaluate("e => { const r = e.getBoundingClientRect(); return [r.top, r.bottom]; }")
    height = page.evaluate("window.innerHeight")
    return 0 <= box[0] < height and box[1] > 0


@pytest.mark.parametrize("how", ["one process", "two processes and Redis"])
def test_bob_searches_finds_an_early_message_and_his_page_shows_it(how, request, app_server, new_page):
    quick = {"WORD_DELAY_MS": "0", "RATE_LIMIT_MESSAGES": "1000", "RATE_LIMIT_SECONDS": "1"}
    if how == "one process":
        first = second = app_server(**quick)
    else:
        first, second = request.getfixturevalue("redis_apps")(2, **quick)
    alice, bob = new_page(), new_page()
    join(alice, f"{first.url}?room={ROOM}", "Alice")
    send(alice, EARLY)
    wait_until(lambda: early_bubble(alice).count() == 1, DEADLINE_SECONDS, "Alice's message")
    fill(first.url)
    join(bob, f"{second.url}?room={ROOM}", "Bob")
    last = f"bm{FILLERS - 1:06d}"
    wait_until(lambda: main_text(bob).count(last) >= 2, DEADLINE_SECONDS, "the last filler and its reply")
    assert early_bubble(bob).count() == 0, "Alice's message is not on Bob's first page"
    bob.locator(MESSAGE).last.scroll_into_view_if_needed()  # he reads the latest, at the bottom

    sidebar = bob.locator(SIDEBAR)
    sidebar.get_by_role("textbox", name="Search this room").fill("zurich TUESDAY")
    sidebar.get_by_role("button", name="Search", exact=True).click()
    # Hers, and the offline assistant's reply, which quotes her: each with its author and time.
    hers = sidebar.get_by_role("button", name=re.compile(r"^Alice · \d\d:\d\d.* · The Zürich offsite"))
    hers.wait_for(timeout=DEADLINE_SECONDS * 1000)
    assert "2 messages found" in sidebar.inner_text()
    bob.screenshot(path=str(ARTIFACTS / f"search-results-{how.replace(' ', '-')}.png"))

    hers.click()
    wait_until(lambda: early_bubble(bob).count() == 1, DEADLINE_SECONDS, "her message on Bob's page")
    anchor = early_bubble(bob).locator(".m-anchor")
    assert re.fullmatch(r"m-\d+", anchor.get_attribute("id") or ""), "it holds its #m-ID anchor"
    wait_until(lambda: in_view(bob, early_bubble(bob)), DEADLINE_SECONDS, "the page scrolled to her message")
    assert main_text(bob).count(last) >= 2, "the latest messages are still on the page, below it"

    # The room goes on for both, and Bob's view stays on her message while it does.
    send(alice, "found it?")
    for page in (alice, bob):
        wait_until(lambda page=page: "found it?" in main_text(page), DEADLINE_SECONDS, "the next message")
    # Streamlit's chat layout pulls a growing page to its bottom; the app's script puts the view back at
    # once (on the scroll itself), so at most a moment passes out of view.
    wait_until(lambda: in_view(bob, early_bubble(bob)), 3, "Bob's view kept on her message")
    bob.screenshot(path=str(ARTIFACTS / f"search-shown-{how.replace(' ', '-')}.png"))
    for server in {first, second}:
        assert "Traceback" not in server.log()
