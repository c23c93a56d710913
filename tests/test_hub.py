"""The hub: rooms by name, closing rooms that emptied, and closing every conversation at shutdown."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from shared.hub import Hub
from shared.messages import Role
from shared.room import Room
from tests.fakes import ScriptedAssistant, fast_settings, reply_workers, wait_until


@pytest.fixture
def assistant() -> ScriptedAssistant:
    return ScriptedAssistant()


@pytest.fixture
def make_hub(assistant):
    hubs: list[Hub] = []

    def make(**settings) -> Hub:
        hub = Hub(fast_settings(**settings), lambda _settings: assistant, reap_every=0.01)
        hubs.append(hub)
        return hub

    yield make
    assistant.open_all_gates()
    for hub in hubs:
        hub.shutdown()
    wait_until(lambda: not reply_workers(), "every reply worker to stop")


@pytest.fixture
def hub(make_hub) -> Hub:
    # Rooms that nobody joins stay open for the whole test unless a test asks for less.
    return make_hub(room_empty_grace_seconds=60)


def wait_for_conversation(assistant: ScriptedAssistant, room_name: str) -> str:
    wait_until(lambda: room_name in assistant.opened.values(), f"a conversation for {room_name}")
    return next(c for c, name in assistant.opened.items() if name == room_name)


def count_reaper_rounds(hub: Hub) -> Callable[[], int]:
    """Count the reaper's rounds from now on, so a test can wait for some to pass."""
    rounds = 0
    reap = hub.reap

    def counted() -> None:
        nonlocal rounds
        reap()
        rounds += 1

    hub.reap = counted  # the reaper thread looks `reap` up on the hub each round
    return lambda: rounds


def test_room_is_created_once_and_the_same_room_is_returned(hub):
    lobby = hub.room("lobby")

    assert hub.room("lobby") is lobby
    assert hub.room() is lobby, "the default room is the lobby"
    assert hub.room("garden") is not lobby
    assert {room.name for room in hub.rooms()} == {"lobby", "garden"}


def test_every_room_is_answered_by_the_hubs_one_assistant():
    made: list[ScriptedAssistant] = []

    def factory(settings) -> ScriptedAssistant:
        made.append(ScriptedAssistant(settings.assistant_name))
        return made[-1]

    hub = Hub(fast_settings(assistant_name="Tom"), factory, reap_every=0.01)
    try:
        hub.room("lobby")
        hub.room("garden")
    finally:
        hub.shutdown()

    assert len(made) == 1
    assert hub.assistant is made[0]
    assert made[0].name == "Tom"


def test_room_everyone_left_is_closed_after_grace_and_comes_back_fresh(make_hub, assistant):
    hub = make_hub(room_empty_grace_seconds=0.05)
    old = hub.room("lobby")
    alice = old.join("id-alice", "Alice", "tab-alice")
    old.post(alice.id, "remember this")
    wait_until(lambda: not old.busy, "the reply")
    conversation = wait_for_conversation(assistant, "lobby")

    old.leave(alice.id)
    wait_until(lambda: old.closed, "the empty room to close")

    assert assistant.closed == [conversation]
    fresh = hub.room("lobby")
    assert fresh is not old
    assert not fresh.closed
    texts = [m.text for m in fresh.view().messages]
    assert "remember this" not in texts
    assert [m.role for m in fresh.view().messages] == [Role.SYSTEM], "only the welcome line"


def test_room_with_people_in_it_stays_open(make_hub, assistant):
    hub = make_hub(room_empty_grace_seconds=0.05)
    lobby = hub.room("lobby")
    alice = lobby.join("id-alice", "Alice", "tab-alice")
    lobby.post(alice.id, "hello")
    wait_for_conversation(assistant, "lobby")

    rounds = count_reaper_rounds(hub)
    wait_until(lambda: rounds() >= 10, "ten reaper rounds, several grace periods")

    assert not lobby.closed
    assert hub.room("lobby") is lobby
    assert lobby.view().participant(alice.id) is not None
    assert assistant.closed == []


def test_shutdown_closes_every_open_conversation(hub, assistant):
    for name in ("lobby", "garden", "attic"):
        person = hub.room(name).join(f"id-{name}", f"Person in {name}", f"tab-{name}")
        hub.room(name).post(person.id, "hello")  # a room opens its conversation on its first turn
    opened = [wait_for_conversation(assistant, name) for name in ("lobby", "garden", "attic")]

    hub.shutdown()

    wait_until(lambda: sorted(assistant.closed) == sorted(opened), "every conversation to be closed")
    assert hub.rooms() == []


def test_two_rooms_never_share_a_conversation(hub, assistant):
    rooms: list[Room] = [hub.room("lobby"), hub.room("garden")]
    for room in rooms:
        person = room.join(f"id-{room.name}", f"Person in {room.name}", f"tab-{room.name}")
        room.post(person.id, f"hello from {room.name}")
    for room in rooms:
        wait_until(lambda room=room: not room.busy, f"the reply in {room.name}")

    asked_in = {
        turn.room: conversation
        for turn, conversation in zip(assistant.turns, assistant.reply_conversations, strict=True)
    }
    assert set(asked_in) == {"lobby", "garden"}
    assert asked_in["lobby"] != asked_in["garden"]
    for room_name, conversation in asked_in.items():
        assert assistant.opened[conversation] == room_name
