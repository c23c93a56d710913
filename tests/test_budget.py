"""A room's daily token budget, with the real `openai` SDK over HTTP to `tests/openai_server.py`.

Tokens are counted per room per UTC day from the usage the server reports after each turn; past the
budget the assistant says so in one sentence and no request reaches the model until the next UTC day.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from shared.catch_up import CatchUp, CatchUps
from shared.config import Settings
from shared.hub import Hub
from shared.messages import ReplyPolicy, Role
from shared.room import Room
from shared.store.redis import RedisStore
from tests import test_openai_assistant as openai_tests
from tests.openai_server import AfterGate, CallFunction
from tests.test_openai_assistant import (
    NOW,
    make_assistant,
    messages,
    person,
    say,
    settings_for,
    wait_until,
)

BUDGET = 10  # below what one reply costs on the test server, so the first reply reaches it

server = openai_tests.server  # the OpenAI tests' fixture, by name


def used_so_far(server) -> int:
    return sum(r["usage"]["total_tokens"] for r in server.finished)


def budget_room(server, clock: list, name: str = "lobby", budget: int = BUDGET) -> Room:
    settings = settings_for(server, daily_token_budget=budget)
    room = Room(name, settings, make_assistant(settings), now=lambda: clock[0])
    room.join(person("Alice"), "Alice", "tab-Alice")
    return room


@pytest.mark.promise_token_budget
def test_past_the_daily_budget_the_assistant_says_so_instead_of_calling_the_model(server):
    clock = [NOW]
    room = budget_room(server, clock)
    try:
        say(room, "Alice", "one")
        assert messages(room, Role.ASSISTANT)[-1].text == "Hello Alice! You said: one"
        assert room.tokens_today() == used_so_far(server) >= BUDGET
        asked = len(server.response_requests())

        say(room, "Alice", "two")

        assert len(server.response_requests()) == asked, "no request once the budget is reached"
        assert messages(room, Role.ASSISTANT)[-1].text == (
            f"This room has used its daily budget of {BUDGET:,} tokens, so I will answer again tomorrow "
            "(from midnight UTC)."
        )
    finally:
        room.close()


@pytest.mark.promise_token_budget
def test_the_budget_starts_afresh_on_the_next_utc_day(server):
    clock = [NOW]
    room = budget_room(server, clock)
    try:
        say(room, "Alice", "one")
        clock[0] = NOW.replace(hour=23, minute=59)
        say(room, "Alice", "still today")
        assert "daily budget" in messages(room, Role.ASSISTANT)[-1].text

        clock[0] = NOW.replace(hour=0, minute=0) + timedelta(days=1)
        assert room.tokens_today() == 0
        say(room, "Alice", "good morning")

        assert messages(room, Role.ASSISTANT)[-1].text == "Hello Alice! You said: good morning"
        assert len(server.response_requests()) == 2
        assert room.tokens_today() == server.finished[-1]["usage"]["total_tokens"]
    finally:
        room.close()


@pytest.mark.promise_token_budget
def test_each_room_has_its_own_budget(server):
    clock = [NOW]
    spent, fresh = budget_room(server, clock, "spent"), budget_room(server, clock, "fresh")
    try:
        say(spent, "Alice", "one")
        say(spent, "Alice", "two")
        say(fresh, "Alice", "hello")

        assert "daily budget" in messages(spent, Role.ASSISTANT)[-1].text
        assert messages(fresh, Role.ASSISTANT)[-1].text == "Hello Alice! You said: hello"
    finally:
        spent.close()
        fresh.close()


@pytest.mark.promise_token_budget
def test_without_a_budget_every_message_reaches_the_model_and_the_day_is_still_counted(server):
    clock = [NOW]
    room = budget_room(server, clock, budget=0)
    try:
        for text in ("one", "two", "three"):
            say(room, "Alice", text)
        assert len(server.response_requests()) == 3
        assert room.tokens_today() == used_so_far(server)
    finally:
        room.close()


@pytest.mark.promise_token_budget
def test_a_room_that_empties_and_reopens_the_same_day_keeps_its_budget_spent(server):
    hub = Hub(
        settings_for(
            server, daily_token_budget=BUDGET, room_empty_grace_seconds=0.05, leave_grace_seconds=0.05
        ),
        assistant_factory=make_assistant,
        reap_every=0.01,
    )
    try:
        first = hub.room("lobby")
        first.join(person("Alice"), "Alice", "tab")
        say(first, "Alice", "one")
        first.leave(person("Alice"))
        wait_until(lambda: first.closed, "the emptied room to close")

        again = hub.room("lobby")
        assert again is not first and again.tokens_today() == used_so_far(server)
        again.join(person("Alice"), "Alice", "tab")
        say(again, "Alice", "two")
        assert "daily budget" in messages(again, Role.ASSISTANT)[-1].text
        assert len(server.response_requests()) == 1
    finally:
        hub.shutdown()


@pytest.mark.promise_token_budget
def test_a_room_reopened_on_another_process_the_same_day_keeps_its_budget_spent(server, shared_redis):
    """With Redis, the process that opens the room again is not the one that closed it, and the one that
    counted may be gone: the day's count lives in Redis."""
    url = shared_redis.fresh_url()
    settings = settings_for(
        server,
        daily_token_budget=BUDGET,
        room_empty_grace_seconds=0.05,
        leave_grace_seconds=0.05,
        redis_url=url,
    )
    a, b = (
        Hub(settings, assistant_factory=make_assistant, reap_every=0.01, store=RedisStore(url))
        for _ in range(2)
    )
    try:
        first, _ = a.join("lobby", person("Alice"), "Alice", "tab")
        say(first, "Alice", "one")
        first.leave(person("Alice"))
        wait_until(lambda: first.closed, "the emptied room to close")
        a.shutdown()  # the process that counted is gone

        again, _ = b.join("lobby", person("Alice"), "Alice", "tab")
        assert again is not first and again.tokens_today() == used_so_far(server) >= BUDGET
        say(again, "Alice", "two")
        assert "daily budget" in messages(again, Role.ASSISTANT)[-1].text
        assert len(server.response_requests()) == 1
    finally:
        a.shutdown()
        b.shutdown()


@pytest.mark.promise_token_budget
def test_turns_written_by_another_process_count_against_the_budget(server, shared_redis):
    """The process that opened the conversation goes away; the other one writes every later turn."""
    url = shared_redis.fresh_url()

    def hub(budget: int) -> Hub:
        settings = settings_for(server, daily_token_budget=budget, redis_url=url, rate_limit_messages=100)
        return Hub(settings, assistant_factory=make_assistant, reap_every=0.01, store=RedisStore(url))

    a = hub(10**9)
    b = None
    try:
        room_a, _ = a.join("lobby", person("Alice"), "Alice", "tab-a")
        say(room_a, "Alice", "one")
        first = used_so_far(server)
        a.shutdown()  # the process that opened the conversation (and counted its first turn) is gone

        b = hub(budget=first * 5 // 2)  # room for about two more turns
        room_b = b.room("lobby")
        for text in ("two", "three", "four", "five", "six", "seven"):
            say(room_b, "Alice", text)

        asked = len(server.response_requests())
        assert asked <= 3, f"{asked} model calls for 7 messages; the budget allows about 3"
        assert "daily budget" in messages(room_b, Role.ASSISTANT)[-1].text
        assert room_b.tokens_today() == used_so_far(server) == room_b.token_usage()["total_tokens"]
    finally:
        a.shutdown()
        if b is not None:
            b.shutdown()


# --- one spending rule for every model call (`shared.spending`) -------------------------------------------


def catch_up(room: Room, nickname: str) -> CatchUp:
    job = CatchUps().start(room, person(nickname), nickname, 0)
    assert job.done.wait(5), "the catch-up never finished"
    return job


@pytest.mark.promise_token_budget
def test_once_the_rooms_day_is_spent_catch_me_up_makes_no_request(server):
    clock = [NOW]
    room = budget_room(server, clock)
    try:
        room.join(person("Bob"), "Bob", "tab-Bob")
        say(room, "Alice", "one")
        assert room.tokens_today() >= BUDGET
        asked = len(server.sent("POST", "/v1/responses"))

        jobs = [catch_up(room, "Bob") for _ in range(3)]

        assert len(server.sent("POST", "/v1/responses")) == asked, "a catch-up reached the model"
        assert all(not job.text for job in jobs)
        assert jobs[-1].error == (
            f"{room.settings.assistant_name} is paused until midnight UTC: this room's daily budget of "
            f"{BUDGET:,} tokens is spent."
        )
    finally:
        room.close()


def quiet_room(server, name: str, budget: int) -> Room:
    """A room where Alice said something without asking the assistant (no reply, no tokens)."""
    room = budget_room(server, [NOW], name, budget=budget)
    room.set_reply_policy(person("Alice"), ReplyPolicy.WHEN_MENTIONED)
    room.post(person("Alice"), "what did I miss")
    return room


@pytest.mark.promise_token_budget
def test_catch_ups_asked_at_once_make_no_more_calls_than_the_budget_allows(server):
    """Each call reserves its estimate before it is made: six people asking together cannot all pass
    under a budget that holds two of their summaries."""
    one = cost_of_one_summary(server)
    room = quiet_room(server, "lobby", budget=2 * one)
    try:
        for name in PEOPLE:
            room.join(person(name), name, f"tab-{name}")
        asked = all_at_once(server, [(room, name) for name in PEOPLE])
        assert room.tokens_today() == asked * one <= 2 * one
    finally:
        room.close()


PEOPLE = ["Ann", "Ben", "Cat", "Dan", "Eve", "Fay"]  # as long as "Bob": their summaries cost the same


def cost_of_one_summary(server) -> int:
    """What one summary of Alice's one message costs on this server (for Bob, in a room of its own)."""
    probe = quiet_room(server, "probe", budget=0)
    try:
        probe.join(person("Bob"), "Bob", "tab-Bob")
        catch_up(probe, "Bob")
        return server.finished[-1]["usage"]["total_tokens"]
    finally:
        probe.close()


def all_at_once(server, asking: list[tuple[Room, str]]) -> int:
    """Everyone asks to be caught up at once, each on their room's copy, while the server holds every
    request it gets; how many summaries were asked for (the others refused, with the budget's words)."""
    gate = threading.Event()
    before = len(server.sent("POST", "/v1/responses"))
    server.script(*[AfterGate(gate)] * len(asking))
    catch_ups = CatchUps()
    try:
        jobs = [catch_ups.start(room, person(name), name, 0) for room, name in asking]
        asked = lambda: len(server.sent("POST", "/v1/responses")) - before  # noqa: E731
        # Every catch-up waits at the server, or was refused without a request.
        wait_until(
            lambda: asked() + sum(job.done.is_set() for job in jobs) == len(asking),
            "every catch-up to be asked or refused",
        )
    finally:
        gate.set()
    for job in jobs:
        assert job.done.wait(5)
    assert 1 <= asked() <= 2, f"{asked()} summaries asked for under a budget of two"
    assert sum(bool(job.text) for job in jobs) == asked()
    assert all("daily budget" in job.error for job in jobs if not job.text)
    return asked()


@pytest.mark.promise_token_budget
def test_catch_ups_asked_at_once_on_two_processes_make_no_more_calls_than_the_budget_allows(
    server, shared_redis
):
    """The same through Redis: half of the people on each of two processes, one ledger for the room."""
    one = cost_of_one_summary(server)
    url = shared_redis.fresh_url()
    settings = settings_for(server, daily_token_budget=2 * one, redis_url=url)
    a, b = (Hub(settings, assistant_factory=make_assistant, store=RedisStore(url)) for _ in range(2))
    try:
        lobby, _ = a.join("lobby", person("Alice"), "Alice", "tab-Alice")
        lobby.set_reply_policy(person("Alice"), ReplyPolicy.WHEN_MENTIONED)
        lobby.post(person("Alice"), "what did I miss")
        asking = [((a, b)[i % 2].join("lobby", person(n), n, f"tab-{n}")[0], n) for i, n in enumerate(PEOPLE)]
        for room, _ in asking:
            wait_until(lambda room=room: len(room.view().messages) >= 2, "each process to see the message")
        asked = all_at_once(server, asking)
        assert lobby.tokens_today() == asked * one <= 2 * one
    finally:
        a.shutdown()
        b.shutdown()


@pytest.mark.promise_token_budget
def test_the_apps_daily_budget_caps_every_room_together(server):
    """New room names start their own day at zero; the app's budget does not."""
    hub = Hub(settings_for(server, app_daily_token_budget=BUDGET), assistant_factory=make_assistant)
    try:
        first, _ = hub.join("first", person("Alice"), "Alice", "tab-1")
        say(first, "Alice", "one")
        assert used_so_far(server) >= BUDGET
        second, _ = hub.join("second", person("Bob"), "Bob", "tab-2")

        say(second, "Bob", "hello")

        assert len(server.response_requests()) == 1, "the second room called the model past the app's budget"
        assert messages(second, Role.ASSISTANT)[-1].text == (
            f"This app has used its daily budget of {BUDGET:,} tokens across all rooms, so I will answer "
            "again tomorrow (from midnight UTC)."
        )
        assert second.tokens_today() == 0  # the room's own day: it spent nothing
    finally:
        hub.shutdown()


@pytest.mark.promise_token_budget
def test_the_apps_daily_budget_holds_across_processes(server, shared_redis):
    url = shared_redis.fresh_url()
    settings = settings_for(server, app_daily_token_budget=BUDGET, redis_url=url)
    a, b = (Hub(settings, assistant_factory=make_assistant, store=RedisStore(url)) for _ in range(2))
    try:
        first, _ = a.join("first", person("Alice"), "Alice", "tab-1")
        say(first, "Alice", "one")
        second, _ = b.join("second", person("Bob"), "Bob", "tab-2")
        say(second, "Bob", "hello")
        wait_until(lambda: messages(second, Role.ASSISTANT), "the budget's sentence")

        assert len(server.response_requests()) == 1, "the other process called the model past the budget"
        assert "This app has used its daily budget" in messages(second, Role.ASSISTANT)[-1].text
        job = CatchUps().start(second, person("Bob"), "Bob", 0)
        assert job.done.wait(5) and "the app's daily budget" in job.error
        assert len(server.response_requests()) == 1
    finally:
        a.shutdown()
        b.shutdown()


@pytest.mark.promise_token_budget
def test_a_turn_asks_for_no_more_tool_rounds_once_the_budget_is_spent(server):
    """A turn started under the budget used to run all its tool rounds; each round goes through the rule."""
    clock = [NOW]
    room = budget_room(server, clock)
    try:
        server.script(*[CallFunction("get_current_time")] * 5)
        say(room, "Alice", "what time is it? ask again and again")

        assert len(server.response_requests()) == 1, "a tool round was asked for past the budget"
        assert "daily budget" in messages(room, Role.SYSTEM)[-1].text
        assert room.tokens_today() == used_so_far(server)
    finally:
        room.close()


def test_a_reservation_its_process_never_settled_lapses():
    """A process that dies between reserving and settling holds the budget for `HOLD_SECONDS`, no longer."""
    from shared import spending  # the rule, on its own

    room, app, budgets = spending.Ledger(), spending.Ledger(), spending.Budgets(room=100, app=0)
    assert spending.reserve(room, app, hold="dead", tokens=100, budgets=budgets, now=0.0) is None
    assert spending.may_spend(room, app, budgets, now=1.0) is spending.Budget.ROOM
    assert spending.may_spend(room, app, budgets, now=spending.HOLD_SECONDS + 1) is None
    spending.settle(room, app, hold="late", tokens=30)
    spending.settle(room, app, hold="late", tokens=30)  # run twice (a transaction retried): counted once
    assert (room.spent, app.spent) == (30, 30)


def test_with_a_budget_set_no_call_is_made_that_the_store_cannot_check():
    """The ledgers live in the rooms' store: while it is unreachable a budget cannot be kept, so no call
    is made (without a budget the call goes, uncounted)."""
    from shared.errors import AssistantError
    from shared.spending import Purse
    from shared.store import StoreUnavailable

    class Unreachable:
        def spend(self, *args, **kwargs):
            raise StoreUnavailable("Redis is down")

    budgeted = Purse(Unreachable(), "lobby", Settings(daily_token_budget=100), now=lambda: NOW)
    with pytest.raises(AssistantError, match="could not be checked"), budgeted.spend(10):
        pytest.fail("a call was made that no budget could count")
    made = []
    with Purse(Unreachable(), "lobby", Settings(), now=lambda: NOW).spend(10):
        made.append("the call")
    assert made == ["the call"]
