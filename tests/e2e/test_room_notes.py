"""Room notes in two real Chromium pages (offline assistant): Alice marks a decision, and Bob's *Room
notes* (open on his chat page) show it as it is posted; Bob edits it on This room and Alice is told; his
This room shows Alice's next note without a reload, and keeps what he was typing. On one process, and on two processes sharing the room through Redis. On the OpenAI path, the assistant's
request after the batch notes what nobody marked."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import ARTIFACTS, DEADLINE_SECONDS, wait_until
from tests.e2e.test_hosting import go
from tests.e2e.test_two_people import MAIN, join, main_text, send
from tests.openai_server import API_KEY

pytestmark = [pytest.mark.e2e, pytest.mark.promise_room_notes]

PANEL = '[data-testid="stExpander"]'


def notes_panel(page):
    return page.locator(PANEL).filter(has_text="Room notes")


@pytest.mark.parametrize("processes", [1, 2], ids=["one process", "two processes on Redis"])
def test_alice_decides_and_bobs_room_notes_show_it(processes, app_server, redis_apps, new_page):
    servers = [app_server(WORD_DELAY_MS="0")] if processes == 1 else redis_apps(2, WORD_DELAY_MS="0")
    alice, bob = new_page(), new_page()
    join(alice, servers[0].url, "Alice")
    join(bob, servers[-1].url, "Bob")

    panel = notes_panel(bob)
    panel.get_by_text("Room notes").click()  # Bob opens the folded panel before anything is noted
    wait_until(lambda: "None yet" in panel.inner_text(), DEADLINE_SECONDS, "the panel open")
    send(alice, "decided: we meet Friday")
    wait_until(lambda: "we meet Friday" in notes_panel(bob).inner_text(), DEADLINE_SECONDS, "Bob's notes")
    text = notes_panel(bob).inner_text()
    assert "Decisions" in text and "Alice" in text
    bob.screenshot(path=str(ARTIFACTS / f"room-notes-bob-{processes}.png"), full_page=True)

    # This room: open, with a form for the item; Bob edits it and Alice's chat page says so.
    go(bob, "This room", "Room lobby")
    box = bob.get_by_role("textbox", name="Decision 1 (noted by Alice)")
    box.wait_for(timeout=DEADLINE_SECONDS * 1000)
    box.fill("we meet Saturday")
    bob.get_by_role("button", name="Save decision 1").click()
    wait_until(lambda: "Bob edited the notes." in main_text(alice), DEADLINE_SECONDS, "Alice told")
    notes_panel(alice).get_by_text("Room notes").click()
    wait_until(
        lambda: "we meet Saturday" in notes_panel(alice).inner_text(), DEADLINE_SECONDS, "Alice's notes"
    )
    assert bob.locator(MAIN).get_by_text("Decision 1 saved").count() == 1

    # This room follows the notes live: while Bob types a note of his own (not yet added), Alice gives him
    # an action item; his page shows it without a reload, and what he was typing stays.
    draft = bob.get_by_role("textbox", name="Note", exact=True)
    draft.fill("bring snacks")
    send(alice, "todo @Bob book the room")
    action = bob.get_by_role("textbox", name="Action item 1: what", exact=True)
    wait_until(lambda: action.count() == 1, DEADLINE_SECONDS, "the action item on Bob's This room")
    assert "book the room" in action.input_value()
    assert draft.input_value() == "bring snacks", "a redraw of the notes threw away what Bob was typing"
    bob.screenshot(path=str(ARTIFACTS / f"room-notes-this-room-{processes}.png"), full_page=True)


def test_on_the_openai_path_the_assistant_notes_what_it_hears(app_server, new_page, openai_server):
    server = app_server(
        OPENAI_API_KEY=API_KEY,
        OPENAI_BASE_URL=openai_server.base_url,
        ROOM_NOTES_BY_ASSISTANT="on",
        WORD_DELAY_MS="0",
    )
    alice, bob = new_page(), new_page()
    join(alice, server.url, "Alice")
    join(bob, server.url, "Bob")
    notes_panel(bob).get_by_text("Room notes").click()
    send(alice, "Let's meet on Friday")  # no mark: the assistant's request notes it (the test server's rule)
    wait_until(
        lambda: "Let's meet on Friday · CatGPT" in notes_panel(bob).inner_text(), DEADLINE_SECONDS, "noted"
    )
    [request] = [r for r in openai_server.response_requests() if not r.get("stream")]
    assert request["store"] is False and request["text"]["format"]["name"] == "room_notes"
    bob.screenshot(path=str(ARTIFACTS / "room-notes-openai-bob.png"))
