"""The hub: rooms by name, closing rooms that emptied, and closing every conversation at shutdown."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable

import pytest

from shared.hub import Hub
from shared.messages import Role, Status
from shared.room import Room
from tests.fakes import Clock, Gate, ScriptedAssistant, fast_settings, wait_for_workers_to_end, wait_until


@pytest.fixture
def assistant() -> ScriptedAssistant:
    return ScriptedAssistant()


@pytest.fixture
def make_hub(assistant):
    hubs: list[Hub] = []

    def make(*, reap_every: float = 0.01, clock: Clock | None = None, **settings) -> Hub:
        hub = Hub(fast_settings(**settings), lambda _settings: assistant, reap_every=reap_every, clock=clock)
        hubs.append(hub)
        return hub

    yield make
    assistant.open_all_gates()
    for hub in hubs:
        hub.shutdown()
    wait_for_workers_to_end(*(hub.store for hub in hubs))


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
    # Its conversation is closed off the reaper's thread, soon after.
    wait_until(lambda: assistant.closed == [conversation], "the empty room's conversation to be closed")
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


@pytest.mark.promise_worker_and_shutdown
def test_shutdown_closes_every_open_conversation(hub, assistant):
    for name in ("lobby", "garden", "attic"):
        person = hub.room(name).join(f"id-{name}", f"Person in {name}", f"tab-{name}")
        hub.room(name).post(person.id, "hello")  # a room opens its conversation on its first turn
    opened = [wait_for_conversation(assistant, name) for name in ("lobby", "garden", "attic")]

    hub.shutdown()

    wait_until(lambda: sorted(assistant.closed) == sorted(opened), "every conversation to be closed")
    assert hub.rooms() == []


def test_a_reply_cut_short_by_shutdown_is_not_kept_as_complete(hub, assistant):
    # In memory the rooms die with the process: shutdown (SIGTERM) closes them, mid-reply too.
    room = hub.room("lobby")
    alice = room.join("id-alice", "Alice", "tab-a")
    gate = Gate()
    assistant.will_reply("Once upon", gate, " a time")
    room.post(alice.id, "Tell me a story")
    gate.wait_reached()

    stopping = threading.Thread(target=hub.shutdown)
    stopping.start()
    wait_until(lambda: room.closed, "the room to close")
    gate.open()  # the assistant goes on talking after the process was told to stop
    stopping.join(10)
    assert not stopping.is_alive()

    messages = room.view().messages
    [reply] = [m for m in messages if m.role is Role.ASSISTANT]
    assert (reply.text, reply.status) == ("Once upon", Status.ERROR), "a cut reply is never complete"
    assert messages[-1].role is Role.SYSTEM and "broke off" in messages[-1].text


@pytest.mark.promise_reaper
def test_shutdown_closes_conversations_side_by_side_so_one_hung_server_call_delays_no_other(hub, assistant):
    for name in ("lobby", "garden"):
        person = hub.room(name).join(f"id-{name}", f"Person in {name}", f"tab-{name}")
        hub.room(name).post(person.id, "hello")
    lobby, garden = (wait_for_conversation(assistant, name) for name in ("lobby", "garden"))
    wait_until(lambda: not any(room.busy for room in hub.rooms()), "both replies")
    hung = Gate()
    assistant.will_hang_closing(hung)  # whichever room closes first hangs

    shutting_down = threading.Thread(target=hub.shutdown)
    shutting_down.start()
    hung.wait_reached()
    wait_until(lambda: len(assistant.closed) == 1, "the other room's conversation to close meanwhile")
    hung.open()
    shutting_down.join()

    assert sorted(assistant.closed) == sorted([lobby, garden])


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


@pytest.mark.promise_reaper
def test_a_conversation_that_hangs_while_closing_does_not_hold_up_people_leaving_other_rooms(
    make_hub, assistant
):
    clock = Clock()
    hub = make_hub(clock=clock, leave_grace_seconds=5, room_empty_grace_seconds=10)
    garden = hub.room("garden")  # first in the reaper's round, so a blocking close would hold up the lobby
    alice = garden.join("id-alice", "Alice", "tab-alice")
    garden.post(alice.id, "hello")
    wait_until(lambda: not garden.busy, "the reply")
    conversation = wait_for_conversation(assistant, "garden")
    garden.leave(alice.id)
    lobby = hub.room("lobby")
    bob = lobby.join("id-bob", "Bob", "tab-bob")
    lobby.detach(bob.id, "tab-bob")  # Bob closes his tab: he leaves once the grace period passes
    hung = Gate()
    assistant.will_hang_closing(hung)

    clock.advance(10)  # the garden is due to close and Bob is due to leave, in the same round
    hung.wait_reached()

    wait_until(lambda: lobby.view().participant(bob.id) is None, "Bob to leave while the garden closes")
    assert garden.closed and assistant.closed == []
    hung.open()
    wait_until(lambda: assistant.closed == [conversation], "the garden's conversation to be closed")


@pytest.mark.promise_reaper
def test_a_person_who_joins_before_the_reaper_keeps_the_empty_room_open(make_hub, assistant):
    clock = Clock()
    hub = make_hub(clock=clock, reap_every=3600, room_empty_grace_seconds=10)
    lobby = hub.room("lobby")
    clock.advance(10)  # empty past the grace period

    room, alice = hub.join("lobby", "id-alice", "Alice", "tab-alice")
    hub.reap()

    assert room is lobby and not lobby.closed
    assert hub.room("lobby") is lobby
    assert lobby.view().participant(alice.id) is not None


@pytest.mark.promise_reaper
def test_a_room_that_closes_between_looking_it_up_and_joining_it_gives_a_fresh_room(make_hub, monkeypatch):
    clock = Clock()
    hub = make_hub(clock=clock, reap_every=3600, room_empty_grace_seconds=10)
    lobby = hub.room("lobby")
    clock.advance(10)
    look_up = hub.room

    def reaper_runs_right_after_the_first_look_up(name: str, invite: str | None = None) -> Room:
        room = look_up(name, invite)
        if room is lobby:
            hub.reap()  # closes the lobby the joiner is holding
        return room

    monkeypatch.setattr(hub, "room", reaper_runs_right_after_the_first_look_up)
    room, alice = hub.join("lobby", "id-alice", "Alice", "tab-alice")

    assert lobby.closed
    assert room is not lobby and not room.closed
    assert look_up("lobby") is room
    assert room.view().participant(alice.id) is not None


def join_while_the_reaper_decides(hub: Hub, room: Room, person: str) -> Room:
    """Run a round of the reaper; as it decides whether `room` is empty (under the room's lock), the
    person joins from another thread. Return the room they landed in."""
    joined: list[Room] = []
    joiner = threading.Thread(target=lambda: joined.append(hub.join("lobby", person, "Alice", "tab")[0]))
    clock = room._clock

    def deciding() -> float:
        if room._record.lock.locked() and threading.current_thread() is not joiner and not joiner.is_alive():
            joiner.start()
            joiner.join(timeout=0.05)  # a chance to slip in, if the decision let it
        return clock()

    room._clock = deciding
    hub.reap()
    joiner.join()
    [landed] = joined
    return landed


@pytest.mark.promise_reaper
def test_a_join_during_the_reapers_decision_lands_in_a_room_that_stays_open(make_hub):
    clock = Clock()
    hub = make_hub(clock=clock, reap_every=3600, room_empty_grace_seconds=10)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # hand the interpreter to the waiting joiner as soon as it can run
    try:
        for round_number in range(20):
            person = f"id-{round_number}"
            before = hub.room("lobby")
            clock.advance(10)  # empty past the grace period: this round of the reaper closes it

            room = join_while_the_reaper_decides(hub, before, person)

            assert not room.closed, f"round {round_number}: the person landed in a room that closed"
            assert room is not before, "the room was closing: the person gets a fresh one"
            assert hub.room("lobby") is room
            assert room.view().participant(person) is not None
            room.leave(person)
    finally:
        sys.setswitchinterval(interval)
