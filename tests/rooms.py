"""Fixtures for tests of a real room with its worker, answered by a scripted assistant, on both stores
(`tests/conftest.py` imports them: pytest finds fixtures by name; a test module may define its own)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shared.room import Room
from shared.store import Store
from shared.store.memory import MemoryStore
from shared.store.redis import RedisStore
from tests.fakes import Clock, ScriptedAssistant, fast_settings, wait_for_workers_to_end


@pytest.fixture
def assistant() -> ScriptedAssistant:
    return ScriptedAssistant()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["memory", "redis"])
def store(request) -> Iterator[Store]:
    """Every room test runs on both stores: the rules are the same whichever holds the room."""
    if request.param == "memory":
        yield MemoryStore()
        return
    store = RedisStore(request.getfixturevalue("shared_redis").fresh_url())
    yield store
    store.close()


@pytest.fixture
def make_room(assistant, clock, store):
    rooms: list[Room] = []

    def make(**settings) -> Room:
        room = Room("lobby", fast_settings(**settings), assistant, store, clock=clock)
        rooms.append(room)
        return room

    yield make
    assistant.open_all_gates()
    for room in rooms:
        room.close()
    wait_for_workers_to_end(*{room.store for room in rooms})


@pytest.fixture
def room(make_room) -> Room:
    return make_room()
