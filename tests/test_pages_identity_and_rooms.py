"""AppTest: who a session is without anything in the address, the Private room control, the budget shown.

AppTest sends no cookie: each session has an identity of its own, as a browser would without the cookie.
"""

from __future__ import annotations

import pytest

from shared.web.resources import get_hub
from tests.pages import errors, get_room, join, open_page

pytestmark = pytest.mark.usefixtures("fresh_app")


@pytest.mark.promise_identity
def test_an_old_me_link_names_nobody_and_leaves_the_address():
    alice = join("Alice")
    old_link = open_page(token=None, room="lobby")
    old_link.query_params["me"] = alice.session_state["token"]
    old_link.run()

    assert "me" not in old_link.query_params
    assert [t.label for t in old_link.text_input] == ["Nickname"], "a new person, asked for a nickname"
    assert old_link.session_state["token"] != alice.session_state["token"]


@pytest.mark.promise_private_rooms
def test_the_rooms_page_opens_a_private_room_that_it_never_lists():
    at = open_page()
    at.switch_page("pages/rooms.py").run()
    next(t for t in at.text_input if t.label == "Room name").input("plans")
    next(c for c in at.checkbox if c.label == "Private room").check()
    next(b for b in at.button if b.label == "Open room").click().run()

    [plans] = [r for r in get_hub().rooms() if r.name == "plans"]
    assert plans.private
    assert at.query_params["invite"] in (plans.invite_secret, [plans.invite_secret])
    assert any(plans.invite_secret in c.value for c in at.caption), "the chat page shows the invite link"

    visitor = open_page(room="plans")
    assert errors(visitor) == [
        "This room is private: only its invite link lets you in, so ask someone in it to send it to you."
    ]
    assert not visitor.text_input and not visitor.chat_message
    visitor.switch_page("pages/rooms.py").run()
    assert not any("plans" in link.label for link in visitor.get("page_link"))


@pytest.mark.promise_token_budget
def test_the_room_page_shows_the_days_tokens_against_the_budget(monkeypatch):
    monkeypatch.setenv("DAILY_TOKEN_BUDGET", "5000")
    alice = join("Alice")
    spend(get_room(), 1234)
    alice.switch_page("pages/room.py").run()
    metrics = {m.label: m.value for m in alice.get("metric")}
    assert metrics["Tokens today"] == "1,234 of 5,000"
    assert not alice.warning, "under the budget nothing stops the assistant"


def spend(room, tokens: int) -> None:
    """A model call that used `tokens`, paid the way every call is (`Room.purse`)."""
    with room.purse.spend(1) as bill:
        bill.report(tokens)


@pytest.mark.promise_token_budget
@pytest.mark.parametrize(
    ("budgets", "said"),
    [
        ({"DAILY_TOKEN_BUDGET": "100"}, "this room's daily budget of 100 tokens is spent"),
        (
            {"APP_DAILY_TOKEN_BUDGET": "100"},
            "the app's daily budget of 100 tokens, shared by every room, is spent",
        ),
    ],
    ids=["room", "app"],
)
def test_the_chat_and_room_pages_say_which_budget_stops_the_assistant(monkeypatch, budgets, said):
    for variable, value in budgets.items():
        monkeypatch.setenv(variable, value)
    alice = join("Alice")
    spend(get_room(), 100)
    alice.run()
    assert [w.value for w in alice.warning] == [f"CatGPT is paused until midnight UTC: {said}."]
    alice.switch_page("pages/room.py").run()
    assert [w.value for w in alice.warning] == [f"CatGPT is paused until midnight UTC: {said}."]
    if "APP_DAILY_TOKEN_BUDGET" in budgets:
        assert any("Every room together today: 100 of 100 tokens" in c.value for c in alice.caption)


@pytest.mark.promise_max_rooms
def test_open_room_for_a_public_room_opens_it_at_the_first_join_not_at_the_press():
    at = open_page()
    at.switch_page("pages/rooms.py").run()
    next(t for t in at.text_input if t.label == "Room name").input("plans")
    next(b for b in at.button if b.label == "Open room").click().run()

    assert at.query_params["room"] in ("plans", ["plans"])
    assert [t.label for t in at.text_input] == ["Nickname"], "the room's join form"
    assert [r.name for r in get_hub().rooms()] == [], "pressed, not joined: no room takes a place"
    join("Alice", at.switch_page("pages/chat.py").run())  # AppTest stays on the page it was sent to
    assert [r.name for r in get_hub().rooms()] == ["plans"]
    assert [p.nickname for p in get_room("plans").view().participants] == ["Alice"]
