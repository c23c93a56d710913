"""A nickname that is Markdown ("# Huge") stays text in the offline assistant's reply, and a message typed
on two lines shows on two lines, in real Chromium."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import ARTIFACTS, DEADLINE_SECONDS, wait_until
from tests.e2e.test_two_people import MESSAGE, join, main_text, reply_text, send, turn_over

pytestmark = pytest.mark.e2e

HEADINGS = "h1, h2, h3, h4, h5, h6"


@pytest.mark.promise_markup
def test_a_nickname_written_as_a_heading_is_text_in_the_assistants_reply(app_server, new_page):
    server = app_server(WORD_DELAY_MS="0")
    page = new_page()
    join(page, server.url, "# Huge")

    send(page, "hello")
    wait_until(lambda: "you said hello" in reply_text(page), DEADLINE_SECONDS, "the reply")
    wait_until(lambda: turn_over(page), DEADLINE_SECONDS, "the turn to end")

    reply = page.locator(MESSAGE).filter(has_text="you said hello").last
    assert "Hi # Huge!" in reply.inner_text()
    assert reply.locator(HEADINGS).count() == 0, "the nickname became a heading"
    said = reply.locator("p").filter(has_text="you said hello")
    assert said.count() == 1 and said.inner_text().startswith("# Huge, you said hello")
    page.screenshot(path=str(ARTIFACTS / "markdown-nickname.png"))
    assert "Traceback" not in server.log()


@pytest.mark.promise_markup
def test_a_message_typed_on_two_lines_shows_on_two_lines_on_the_other_page(app_server, new_page):
    server = app_server(WORD_DELAY_MS="0")
    alice, bob = new_page(), new_page()
    join(alice, server.url, "Alice")
    join(bob, server.url, "Bob")

    send(alice, "todo @Bob book a table\nCan we bring the kids? ?open")  # Shift+Enter between them
    wait_until(lambda: "book a table" in main_text(bob), DEADLINE_SECONDS, "Bob to see Alice's message")
    said = (
        bob.locator(MESSAGE)
        .filter(has_text="book a table")
        .first.locator("p")
        .filter(has_text="book a table")
    )
    assert said.inner_text() == "todo @Bob book a table\nCan we bring the kids? ?open", "joined into one line"
    assert said.locator("br").count() == 1
