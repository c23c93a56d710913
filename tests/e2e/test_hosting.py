"""Issue 19 in Chromium: room instructions, "When it can help" and a host, on one process and through Redis.

The OpenAI path is checked on what `tests/openai_server.py` recorded: what the model received is the proof.
"""

from __future__ import annotations

import pytest

from shared.assistant.openai import room_instructions_item
from tests.e2e.conftest import ARTIFACTS, DEADLINE_SECONDS, wait_until
from tests.e2e.test_two_people import (
    SIDEBAR,
    bubble_texts,
    in_room,
    join,
    main_text,
    reply_text,
    send,
    sidebar_text,
    turn_over,
)
from tests.openai_server import API_KEY

pytestmark = pytest.mark.e2e

REMOVED = "The host removed you from this room"


def go(page, name: str, heading: str) -> None:
    """Follow the sidebar's link to another page of the app, and wait for its heading."""
    page.locator(SIDEBAR).get_by_role("link", name=name).click()
    page.get_by_role("heading", name=heading).first.wait_for(timeout=DEADLINE_SECONDS * 1000)


def write_instructions(page, room: str, text: str) -> None:
    """On the This room page: write the room's instructions, save them, and come back to the chat."""
    go(page, "This room", f"Room {room}")
    page.get_by_role("textbox", name="Room instructions").fill(text)
    page.get_by_role("button", name="Save instructions").click()
    page.get_by_text("Saved. Everyone in the room was told").wait_for(timeout=DEADLINE_SECONDS * 1000)
    go(page, "Chat room", "Shared chat room")
    in_room(page)
    page.get_by_text("changed the room's instructions.").first.wait_for(timeout=DEADLINE_SECONDS * 1000)


def keep(page, name: str, last: str, *, settled: bool = False, **options) -> None:
    """A screenshot in test-results/ (the README's pictures in docs/ are made by `python -m scripts.pictures`), once
    the page shows `last`; `settled`: and nothing on it is left from an earlier run (Streamlit's stale,
    faded elements; for a page whose run ends, not the chat page, whose live run never does)."""
    page.get_by_text(last).first.wait_for(timeout=DEADLINE_SECONDS * 1000)
    if settled:
        wait_until(
            lambda: page.locator('[data-stale="true"]').count() == 0, DEADLINE_SECONDS, f"{name}: settled"
        )
    page.screenshot(path=str(ARTIFACTS / name), **options)


@pytest.mark.promise_room_instructions
def test_two_rooms_with_different_instructions_get_different_replies(app_server, new_page, openai_server):
    server = app_server(
        OPENAI_API_KEY=API_KEY, OPENAI_BASE_URL=openai_server.base_url, OPENAI_MODEL="test-model"
    )
    alice, bob = new_page(), new_page()
    join(alice, server.url + "?room=book-club", "Alice")
    join(bob, server.url + "?room=garden", "Bob")
    write_instructions(
        alice, "book-club", "Book club for *Dune*; be the facilitator, ask one question at a time"
    )
    write_instructions(bob, "garden", "Gardening tips only, in one sentence")
    wait_until(
        lambda: "Room instructions: Book club for *Dune*" in main_text(alice),
        DEADLINE_SECONDS,
        "the instructions under Alice's title",
    )

    send(alice, "Where do we start?")
    send(bob, "When do I plant tulips?")
    for page, said in ((alice, "Where do we start?"), (bob, "When do I plant tulips?")):
        wait_until(
            lambda page=page, said=said: f"You said: {said}" in reply_text(page) and turn_over(page),
            DEADLINE_SECONDS,
            f"the reply to {said}",
        )
    keep(alice, "room-instructions.png", "You said: Where do we start?")

    turns = {str(r["input"]): r for r in openai_server.response_requests()}
    book_club = next(r for said, r in turns.items() if '[Alice] "Where do we start?"' in said)
    garden = next(r for said, r in turns.items() if '[Bob] "When do I plant tulips?"' in said)
    # Each room's own, as its people's quoted wish (a user item), never in the app's instructions.
    assert book_club["input"][0] == room_instructions_item(
        "Book club for *Dune*; be the facilitator, ask one question at a time"
    )
    assert garden["input"][0] == room_instructions_item("Gardening tips only, in one sentence")
    assert "Dune" not in str(garden) and "Gardening" not in str(book_club)
    assert "Dune" not in book_club["instructions"] and "Gardening" not in garden["instructions"]


def test_when_it_can_help_answers_a_question_and_lets_a_statement_pass(app_server, new_page, openai_server):
    server = app_server(OPENAI_API_KEY=API_KEY, OPENAI_BASE_URL=openai_server.base_url)
    alice, bob = new_page(), new_page()
    join(alice, server.url, "Alice")
    join(bob, server.url, "Bob")
    alice.locator(SIDEBAR).get_by_text("When it can help").click()
    wait_until(
        lambda: bob.locator(SIDEBAR).get_by_role("radio", name="When it can help").is_checked(),
        DEADLINE_SECONDS,
        "Bob's control to follow",
    )

    def decisions() -> list[dict]:
        return [r for r in openai_server.response_requests() if not r.get("stream")]

    send(alice, "I liked the first chapter.")
    wait_until(
        lambda: len(decisions()) == 1 and len(openai_server.finished) == 1, DEADLINE_SECONDS, "a decision"
    )
    send(bob, "Who is Paul's mother?")
    wait_until(
        lambda: "You said: Who is Paul's mother?" in reply_text(alice) and turn_over(alice),
        DEADLINE_SECONDS,
        "the question's reply",
    )
    keep(alice, "when-it-can-help.png", "You said: Who is Paul")

    assert sum("CatGPT ·" in bubble for bubble in bubble_texts(alice)) == 1  # the statement got no reply
    assert len(decisions()) == 2
    for decision in decisions():
        assert decision["store"] is False and "conversation" not in decision
        assert decision["text"]["format"]["type"] == "json_schema"
    (turn,) = [r for r in openai_server.response_requests() if r.get("stream")]
    assert [item["content"] for item in turn["input"]] == [
        '[Alice] "I liked the first chapter."',  # let pass, but heard with the next turn
        '[Bob] "Who is Paul\'s mother?"',
    ]
    go(alice, "This room", "Room lobby")
    alice.get_by_text("1 batch answered").wait_for(timeout=DEADLINE_SECONDS * 1000)
    assert "When it can help: 1 batch answered, 1 let pass" in main_text(alice)


@pytest.mark.promise_host
def test_a_host_removes_a_person_locks_the_room_and_hands_the_role_on(app_server, new_page):
    server = app_server(LEAVE_GRACE_SECONDS="1")
    alice, bob, carol = new_page(), new_page(), new_page()
    club = server.url + "?room=book-club"  # a room someone opened has a host; the lobby belongs to nobody
    join(alice, club, "Alice")
    join(bob, club, "Bob")
    join(carol, club, "Carol")
    wait_until(lambda: "Alice (host)" in sidebar_text(carol), DEADLINE_SECONDS, "Carol to see the host")

    go(bob, "This room", "Room book-club")
    assert bob.get_by_role("button", name="Remove").count() == 0  # not the host: no host controls
    go(bob, "Chat room", "Shared chat room")
    go(alice, "This room", "Room book-club")
    wait_until(lambda: alice.get_by_role("button", name="Remove").count() == 2, DEADLINE_SECONDS, "controls")
    alice.get_by_text("People here").wait_for(timeout=DEADLINE_SECONDS * 1000)
    alice.set_viewport_size({"width": 1100, "height": 1150})  # the host's controls whole, for the README
    keep(alice, "host-controls.png", "Download JSON", settled=True)
    alice.get_by_role("button", name="Remove").first.click()  # the first person after Alice: Bob
    wait_until(lambda: REMOVED in main_text(bob), DEADLINE_SECONDS, "Bob's page to say he was removed")
    keep(bob, "removed.png", REMOVED)
    bob.reload()
    bob.get_by_text(REMOVED).wait_for(timeout=DEADLINE_SECONDS * 1000)
    assert bob.get_by_role("textbox", name="Nickname").count() == 0  # his browser cannot come back in
    wait_until(lambda: "Alice removed Bob from the room." in main_text(carol), DEADLINE_SECONDS, "the line")

    alice.get_by_text("Lock room").click()
    wait_until(lambda: "nobody new may join" in main_text(carol), DEADLINE_SECONDS, "the lock's line")
    bob.context.close()
    dave = new_page()
    dave.goto(club)
    dave.get_by_role("textbox", name="Nickname").fill("Dave")
    dave.get_by_role("button", name="Join").click()
    dave.get_by_text("locked by its host").wait_for(timeout=DEADLINE_SECONDS * 1000)
    go(dave, "Rooms", "Rooms")
    dave.get_by_text("locked: nobody new may join").wait_for(timeout=DEADLINE_SECONDS * 1000)
    keep(dave, "rooms-locked.png", "locked: nobody new may join", settled=True)

    go(alice, "Chat room", "Shared chat room")
    alice.locator(SIDEBAR).get_by_role("button", name="Leave the room").click()
    wait_until(lambda: "Carol is now the host." in main_text(carol), DEADLINE_SECONDS, "the handover line")
    wait_until(lambda: "Carol (host) (you)" in sidebar_text(carol), DEADLINE_SECONDS, "Carol marked host")
    go(carol, "This room", "Room book-club")
    carol.get_by_text("Lock room").wait_for(timeout=DEADLINE_SECONDS * 1000)  # the host's controls are hers


@pytest.mark.promise_host
@pytest.mark.promise_room_instructions
def test_through_redis_instructions_and_a_removal_hold_on_both_processes(redis_apps, new_page):
    a, b = redis_apps(2)
    alice, bob = new_page(), new_page()
    join(alice, a.url + "?room=book-club", "Alice")  # a room someone opened: Alice hosts it
    join(bob, b.url + "?room=book-club", "Bob")
    write_instructions(alice, "book-club", "Talk about Dune only")
    wait_until(
        lambda: "Room instructions: Talk about Dune only" in main_text(bob),
        DEADLINE_SECONDS,
        "the instructions on process B",
    )
    send(bob, "Hello from B")
    wait_until(
        lambda: "instructions ask of me: Talk about Dune only" in reply_text(bob) and turn_over(bob),
        DEADLINE_SECONDS,
        "the offline reply to say what the instructions ask",
    )

    go(alice, "This room", "Room book-club")
    alice.get_by_role("button", name="Remove").first.click()
    wait_until(lambda: REMOVED in main_text(bob), DEADLINE_SECONDS, "Bob's page on B to say he was removed")
    bob.reload()
    bob.get_by_text(REMOVED).wait_for(timeout=DEADLINE_SECONDS * 1000)
    bob.goto(a.url + "?room=book-club")  # the same browser on the other process: still out
    bob.get_by_text(REMOVED).wait_for(timeout=DEADLINE_SECONDS * 1000)
    assert bob.get_by_role("textbox", name="Nickname").count() == 0
