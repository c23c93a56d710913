"""Rooms, reply policy, Stop and the transcript, in real Chromium pages (screenshots for the README)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.conftest import ARTIFACTS, DEADLINE_SECONDS, wait_until
from tests.e2e.test_two_people import bubble_texts, join, reply_text, send, turn_over

pytestmark = pytest.mark.e2e


def sidebar(page):
    return page.locator('[data-testid="stSidebar"]')


def body(page) -> str:
    return page.locator("body").inner_text()


def test_two_rooms_side_by_side_share_nothing(app_server, new_page):
    server = app_server(WORD_DELAY_MS="0")
    alice, bob = new_page(), new_page()
    join(alice, server.url + "?room=book-club", "Alice")
    join(bob, server.url + "?room=chess", "Bob")
    send(alice, "Chapter three was great")
    send(bob, "e4 or d4?")
    wait_until(lambda: "Hi Alice!" in reply_text(alice), DEADLINE_SECONDS, "Alice's answer")
    wait_until(lambda: "Hi Bob!" in reply_text(bob), DEADLINE_SECONDS, "Bob's answer")
    assert "Chapter three" not in body(bob) and "e4 or d4" not in body(alice)
    assert "Bob" not in sidebar(alice).inner_text() and "Alice" not in sidebar(bob).inner_text()
    alice.screenshot(path=str(ARTIFACTS / "room-book-club.png"))
    bob.screenshot(path=str(ARTIFACTS / "room-chess.png"))

    bob.get_by_role("link", name="Rooms").click()
    wait_until(
        lambda: "book-club · 1 person" in body(bob) and "chess · 1 person" in body(bob),
        DEADLINE_SECONDS,
        "the rooms list",
    )
    bob.screenshot(path=str(ARTIFACTS / "rooms-page.png"))


def test_mention_mode_answers_only_when_asked_knowing_what_was_said(app_server, new_page):
    server = app_server(WORD_DELAY_MS="0")
    alice, bob = new_page(), new_page()
    join(alice, server.url, "Alice")
    join(bob, server.url, "Bob")
    sidebar(alice).get_by_text("Only when mentioned").click()
    wait_until(
        lambda: "set CatGPT to reply to only when mentioned" in body(bob), DEADLINE_SECONDS, "Bob to be told"
    )
    wait_until(
        lambda: sidebar(bob).get_by_role("radio", name="Only when mentioned").is_checked(),
        DEADLINE_SECONDS,
        "Bob's control",
    )

    send(bob, "I love tuna")
    wait_until(
        lambda: any("I love tuna" in t for t in bubble_texts(alice)),
        DEADLINE_SECONDS,
        "Alice to see Bob's message",
    )
    send(alice, "@CatGPT what did Bob say?")
    wait_until(
        lambda: "Hi Alice!" in reply_text(bob), DEADLINE_SECONDS, "the mentioned message to be answered"
    )
    assert "Bob said I love tuna" in reply_text(bob)
    assert sum("CatGPT ·" in t for t in bubble_texts(bob)) == 1  # the un-mentioned message got no reply
    bob.screenshot(path=str(ARTIFACTS / "mention-mode.png"))


@pytest.mark.promise_stop_and_leave
def test_stop_in_one_page_stops_the_reply_in_both(app_server, new_page):
    server = app_server(WORD_DELAY_MS="300")
    alice, bob = new_page(), new_page()
    join(alice, server.url, "Alice")
    join(bob, server.url, "Bob")
    send(alice, "Tell me everything, what time is it and who is here?")
    wait_until(lambda: "writing…" in reply_text(bob), DEADLINE_SECONDS, "the reply to start in Bob's page")
    bob.get_by_role("button", name="Stop").click()
    for name, page in (("Alice", alice), ("Bob", bob)):
        wait_until(
            lambda page=page: "Stopped by Bob." in reply_text(page),
            DEADLINE_SECONDS,
            f"{name} to see it stopped",
        )
    assert "to talk to a real model" not in reply_text(alice)  # it really ended early
    wait_until(lambda: turn_over(alice), DEADLINE_SECONDS, "the turn to end")
    alice.screenshot(path=str(ARTIFACTS / "stopped.png"))


def test_transcript_downloads_hold_every_message_once(app_server, new_page):
    server = app_server(WORD_DELAY_MS="0")
    alice, bob = new_page(), new_page()
    join(alice, server.url, "Alice")
    join(bob, server.url, "Bob")
    for page, text in ((alice, "first from Alice"), (bob, "second from Bob")):
        send(page, text)
        wait_until(lambda text=text: text in reply_text(alice), DEADLINE_SECONDS, "its answer")
    with alice.expect_download() as markdown_download:
        sidebar(alice).get_by_role("button", name="Download Markdown").click()
    with alice.expect_download() as json_download:
        sidebar(alice).get_by_role("button", name="Download JSON").click()
    markdown = Path(markdown_download.value.path()).read_text(encoding="utf-8")
    exported = json.loads(Path(json_download.value.path()).read_text(encoding="utf-8"))
    texts = [m["text"] for m in exported["messages"]]
    for text in ("first from Alice", "second from Bob"):
        assert texts.count(text) == 1 and markdown.count(f"> {text}") == 1
    assert [m["author"] for m in exported["messages"] if m["role"] == "assistant"] == ["CatGPT", "CatGPT"]
    assert [m["id"] for m in exported["messages"]] == sorted({m["id"] for m in exported["messages"]})
