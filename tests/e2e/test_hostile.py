"""What a public room must withstand, checked in real Chromium: markup that tries to run, a reload
storm, and the server stopped in the middle of a reply."""

from __future__ import annotations

import signal

import pytest

from tests.e2e.conftest import ARTIFACTS, DEADLINE_SECONDS, wait_until
from tests.e2e.test_two_people import bubble_texts, join, reply_text, send, turn_over
from tests.openai_server import API_KEY, Hang, OpenAIServer

pytestmark = pytest.mark.e2e

HOSTILE = [
    "<script>window.__pwned = 'script'</script>",
    "<img src=x onerror=\"window.__pwned = 'img'\">",
    "[click me](javascript:window.__pwned='link')",
    "![picture](javascript:window.__pwned='image')",
    "<style>body{display:none}</style>",
    "```\nan unclosed fence",
    "x" * 400,
]


@pytest.mark.promise_markup
def test_markup_in_messages_and_nicknames_is_shown_as_text_and_never_runs(app_server, new_page):
    server = app_server(WORD_DELAY_MS="0", RATE_LIMIT_MESSAGES="50")
    attacker, victim = new_page(), new_page()
    join(attacker, server.url, "<img src=y onerror=__pwned=1>")
    join(victim, server.url, "Victim")
    for number, text in enumerate(HOSTILE, start=1):
        send(attacker, text)
        answered = lambda n=number: sum("CatGPT ·" in t for t in bubble_texts(victim)) == n  # noqa: E731
        wait_until(answered, DEADLINE_SECONDS, f"the answer to message {number}")
        wait_until(lambda: turn_over(attacker), DEADLINE_SECONDS, "the turn to end")

    page = victim.locator('[data-testid="stMainBlockContainer"]')
    shown = page.inner_text()
    assert "<script>window.__pwned = 'script'</script>" in shown
    assert "<img src=x onerror=" in shown and "<style>body{display:none}</style>" in shown
    assert "<img src=y onerror=__pwned=1>" in victim.locator('[data-testid="stSidebar"]').inner_text()
    assert page.locator("script, img[onerror], [onerror], a[href^='javascript']").count() == 0
    styles = victim.evaluate("Array.from(document.querySelectorAll('style')).map(s => s.textContent).join()")
    assert "body{display:none}" not in styles
    victim.get_by_role("link", name="click me").click()
    victim.get_by_role("link", name="picture").click(force=True)  # a picture is shown as a link to it
    assert victim.evaluate("window.__pwned") is None and attacker.evaluate("window.__pwned") is None
    width = victim.evaluate("document.documentElement.scrollWidth")
    assert width <= victim.viewport_size["width"], "a long word must not widen the page"
    victim.screenshot(path=str(ARTIFACTS / "hostile-input.png"), full_page=True)


@pytest.mark.promise_reloads
def test_a_reload_storm_leaves_one_person_and_no_join_or_leave_lines(app_server, new_page):
    server = app_server(LEAVE_GRACE_SECONDS="3")
    alice, bob = new_page(), new_page()
    join(alice, server.url, "Alice")
    join(bob, server.url, "Bob")
    for _ in range(10):
        alice.reload()
    alice.get_by_placeholder("Send message").wait_for(timeout=DEADLINE_SECONDS * 1000)
    send(alice, "still me")
    wait_until(
        lambda: any("still me" in t for t in bubble_texts(bob)),
        DEADLINE_SECONDS,
        "Bob to see Alice after the storm",
    )
    wait_until(lambda: "Hi Alice!" in reply_text(bob), DEADLINE_SECONDS, "the reply")
    text = bob.locator('[data-testid="stMainBlockContainer"]').inner_text()
    assert text.count("Alice joined.") == 1 and "Alice left." not in text
    assert bob.locator('[data-testid="stSidebar"]').inner_text().count("Alice") == 1


@pytest.mark.promise_worker_and_shutdown
def test_sigterm_in_the_middle_of_a_reply_still_deletes_the_conversation(app_server, new_page):
    with OpenAIServer() as openai:
        openai.script(Hang(30))
        server = app_server(OPENAI_API_KEY=API_KEY, OPENAI_BASE_URL=openai.base_url)
        alice = new_page()
        join(alice, server.url, "Alice")
        send(alice, "a question that takes a while")
        wait_until(
            lambda: openai.sent("POST", "/v1/responses"), DEADLINE_SECONDS, "the reply to be asked for"
        )
        (conversation,) = openai.conversations
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(30)
        assert [r.path for r in openai.sent("DELETE", "/v1/conversations/")] == [
            f"/v1/conversations/{conversation}"
        ]
