"""Reply to a message, react to it, delete your own: two people on two Chromium pages, in one process and
in two processes that share the room through a real Redis (Alice's page on one, Bob's on the other)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Error as PlaywrightError

from tests.e2e.conftest import ARTIFACTS, DEADLINE_SECONDS, wait_until
from tests.e2e.test_two_people import ACTIONS, MESSAGE, SIDEBAR, bubble_texts, join, send

pytestmark = pytest.mark.e2e

POPOVER_BUTTON = f"{ACTIONS} button"
POPOVER_BODY = '[data-testid="stPopoverBody"]'  # the open row, drawn over the page


def bubble(page, text: str):
    """The one message bubble on the page holding `text`, not a reply whose quote holds it (the quote's
    link, above the reply's text, says what it replies to)."""
    quoting = page.locator("a[href^='#m-']", has_text=text)
    return page.locator(MESSAGE).filter(has_text=text).filter(has_not=quoting)


class Pills:
    """The pills (reactions, Reply, Delete) of one message whose label ends with `name` ("👍 1", "Reply"),
    in the row its button (under the message holding `text`) opens: Streamlit draws a leading emoji or
    icon apart from the rest of the label. A message nobody may act on has no button, and so no pills."""

    def __init__(self, page, text: str, name: str):
        self.opener = bubble(page, text).locator(POPOVER_BUTTON)
        self.buttons = page.locator(POPOVER_BODY).get_by_role("button")
        self.name = re.sub(r"\s+", "", name)

    def matching(self) -> list[int]:
        """The indexes of the pills that match (read at once: the row may be redrawn meanwhile)."""
        if self.opener.count() != 1:
            return []
        if self.opener.get_attribute("aria-expanded") != "true":
            try:
                self.opener.click(timeout=2000)
                self.buttons.first.wait_for(timeout=2000)
            except PlaywrightError:  # the message was redrawn meanwhile: asked again
                return []
        texts = self.buttons.evaluate_all("buttons => buttons.map(b => b.innerText)")
        return [i for i, text in enumerate(texts) if re.sub(r"\s+", "", text).endswith(self.name)]

    def count(self) -> int:
        return len(self.matching())

    def click(self) -> None:
        """Click the pill, opening the row again if a redraw of the message closed it meanwhile."""

        def clicked() -> bool:
            found = self.matching()
            if len(found) != 1:
                return False
            try:
                self.buttons.nth(found[0]).click(timeout=2000)
            except PlaywrightError:  # the row closed under the pointer: a redraw of its message
                return False
            return True

        wait_until(clicked, DEADLINE_SECONDS, f"the pill {self.name}")


def pill(page, text: str, name: str) -> Pills:
    """The pill labelled `name` under the message holding `text`."""
    return Pills(page, text, name)


def only_when_mentioned(alice, bob) -> None:
    """The assistant keeps out of it (its replies would quote what people said)."""
    alice.locator(SIDEBAR).get_by_text("Only when mentioned").click()
    for page in (alice, bob):
        wait_until(
            lambda page=page: (
                page.locator(SIDEBAR).get_by_role("radio", name="Only when mentioned").is_checked()
            ),
            DEADLINE_SECONDS,
            "the policy on both pages",
        )


@pytest.fixture(params=["one process", "two processes through Redis"])
def two_pages(request, app_server, new_page):
    """Alice's and Bob's pages, both in the lobby: on one app process, or on two sharing a Redis."""
    if request.param == "one process":
        server = app_server(WORD_DELAY_MS="0")
        urls = (server.url, server.url)
    else:
        a, b = request.getfixturevalue("redis_apps")(2, WORD_DELAY_MS="0")
        urls = (a.url, b.url)
    alice, bob = new_page(), new_page()
    join(alice, urls[0], "Alice")
    join(bob, urls[1], "Bob")
    return request.param, alice, bob


def test_reply_react_and_delete_reach_the_other_page(two_pages):
    how, alice, bob = two_pages
    shot = how.replace(" ", "-")
    only_when_mentioned(alice, bob)
    first = "Lunch at noon on Friday?"
    send(alice, first)
    for page in (alice, bob):
        wait_until(lambda page=page: bubble(page, first).count() == 1, DEADLINE_SECONDS, "Alice's message")

    # A reaction: Bob's thumbs up shows on Alice's page with a count and who; clicked again, it goes.
    pill(bob, first, "👍").click()
    for page in (alice, bob):
        wait_until(
            lambda page=page: (
                pill(page, first, "👍 1").count() == 1 and "👍 Bob" in bubble(page, first).inner_text()
            ),
            DEADLINE_SECONDS,
            "Bob's 👍 with its count and his name",
        )
    pill(alice, first, "🎉").click()
    wait_until(lambda: pill(bob, first, "🎉 1").count() == 1, DEADLINE_SECONDS, "Alice's 🎉 on Bob's page")
    bob.screenshot(path=str(ARTIFACTS / f"actions-reaction-{shot}.png"), full_page=True)
    pill(bob, first, "👍 1").click()  # toggled off
    wait_until(lambda: pill(alice, first, "👍").count() == 1, DEADLINE_SECONDS, "Bob's 👍 taken back")
    wait_until(lambda: pill(alice, first, "🎉 1").count() == 1, DEADLINE_SECONDS, "her 🎉 still there")

    # Only the author may delete: Bob has no Delete under Alice's message, Alice has.
    wait_until(lambda: pill(bob, first, "Reply").count() == 1, DEADLINE_SECONDS, "Bob's row of actions")
    assert pill(bob, first, "Delete").count() == 0
    wait_until(lambda: pill(alice, first, "Delete").count() == 1, DEADLINE_SECONDS, "Delete under her own")

    # A reply: Bob replies to Alice's message; both pages show the quote linked to her message.
    pill(bob, first, "Reply").click()
    bob.get_by_text("Replying to Alice").wait_for(timeout=DEADLINE_SECONDS * 1000)
    bob.screenshot(path=str(ARTIFACTS / f"actions-replying-{shot}.png"))
    answer = "Yes, noon works for me"
    send(bob, answer)
    for page in (alice, bob):
        wait_until(lambda page=page: bubble(page, answer).count() == 1, DEADLINE_SECONDS, "Bob's reply")
        link = bubble(page, answer).locator("a[href^='#m-']")
        assert link.count() == 1 and "Alice" in link.inner_text() and first in link.inner_text()
        target = link.get_attribute("href")
        assert page.locator(target).count() == 1, "the quote links to a message on the page"
    assert bob.get_by_text("Replying to Alice").count() == 0, "the box no longer replies once it is sent"
    alice.screenshot(path=str(ARTIFACTS / f"actions-reply-{shot}.png"), full_page=True)

    # A delete: Alice takes her message back, after saying yes; everyone sees "message deleted", the
    # reply's quote says "a deleted message", and her words are gone from both pages.
    pill(alice, first, "Delete").click()
    confirm = alice.get_by_text("for everyone?")
    confirm.wait_for(timeout=DEADLINE_SECONDS * 1000)
    # The confirmation's button, not the pill of the row, which stays open over the page.
    alice.locator(f"button:not({POPOVER_BODY} button)").filter(has_text=re.compile(r"^\s*Delete\s*$")).click()
    for page in (alice, bob):
        wait_until(
            lambda page=page: (
                not any(first in text for text in bubble_texts(page))
                and bubble(page, "message deleted").count() == 1
                and "a deleted message" in bubble(page, answer).inner_text()
            ),
            DEADLINE_SECONDS,
            "the message deleted on every page",
        )
    assert pill(bob, "message deleted", "👍").count() == 0, "a deleted message takes no reactions"
    alice.screenshot(path=str(ARTIFACTS / f"actions-delete-{shot}.png"), full_page=True)
