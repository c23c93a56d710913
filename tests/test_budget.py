"""A room's daily token budget, with the real `openai` SDK over HTTP to `tests/openai_server.py`.

Tokens are counted per room per UTC day from the usage the server reports after each turn; past the
budget the assistant says so in one sentence and no request reaches the model until the next UTC day.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.hub import Hub
from shared.messages import Role
from shared.room import Room
from shared.store.redis import RedisStore
from tests import test_openai_assistant as openai_tests
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
