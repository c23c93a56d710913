"""What a room leaves behind in a real Redis when things go wrong around it: a Redis that comes back
without its last writes, a process that dies while closing a room, a reload during a reap."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis

from shared.attachments import check_upload
from shared.messages import Message, Role
from shared.room import Room
from shared.store import RoomState
from shared.store import redis as redis_store
from shared.store.redis import RedisStore
from shared.worker.lease import Lease
from tests import test_redis_rooms
from tests.fakes import Gate, ScriptedAssistant, fast_settings, wait_until
from tests.redis_server import RedisServer
from tests.test_attachments import picture

# test_redis_rooms' fixtures, by name: a scripted assistant and hubs (app processes) on a Redis address.
assistant, make_hub = test_redis_rooms.assistant, test_redis_rooms.make_hub


def open_room(store: RedisStore, name: str) -> None:
    now = datetime.now(UTC)
    store.create(name, RoomState.fresh(now), Message(id=1, role=Role.SYSTEM, text="Welcome", created_at=now))


def save_the_append_only_files(redis_server: RedisServer, to: Path) -> None:
    """Redis's data as it stands now, to go back to (as a machine that went down before an fsync would)."""
    redis_server.client().bgrewriteaof()
    wait_until(
        lambda: not redis_server.client().info("persistence")["aof_rewrite_in_progress"], "the rewrite"
    )
    shutil.copytree(redis_server.folder / "appendonlydir", to)


def crash_back_to(redis_server: RedisServer, saved: Path) -> None:
    redis_server.kill()
    shutil.rmtree(redis_server.folder / "appendonlydir")
    shutil.copytree(saved, redis_server.folder / "appendonlydir")
    redis_server.start()


def test_a_fence_never_repeats_after_redis_loses_its_last_writes(redis_server, tmp_path):
    store = RedisStore(redis_server.url, lease_seconds=60)
    try:
        for room in ("lobby", "other"):
            open_room(store, room)
        holding = store.take_lease("lobby", "worker-holding")  # held across the crash
        before = store.take_lease("other", "worker-0")
        assert holding is not None and before is not None
        store.release_lease("other", before)
        save_the_append_only_files(redis_server, tmp_path / "saved")
        handed_out = [before]
        for n in range(1, 5):  # workers come and go on the other room; Redis loses all of this
            fence = store.take_lease("other", f"worker-{n}")
            assert fence is not None
            handed_out.append(fence)
            if n < 4:
                store.release_lease("other", fence)
        # the last of them believes it still writes the other room's turns

        crash_back_to(redis_server, tmp_path / "saved")
        client = redis_server.client()
        assert client.get("chat:room:lobby:lease") == f"{holding} worker-holding", "back as at the save"
        assert client.get("chat:room:other:lease") is None

        taken = store.take_lease("other", "worker-new")
        assert taken is not None, "the other room's lease is free to take"
        assert taken > max(handed_out), f"fence {taken} after the crash, {handed_out} before it"

        # The lobby's lease is back in Redis, but what its worker wrote since the save may be gone with
        # the crash: it is dropped (the worker stops writing), and the next worker need not wait for it.
        assert not store.renew_lease("lobby", holding), "a lease from before the restart is dropped"
        after = store.take_lease("lobby", "worker-next")
        assert after is not None and after > holding
    finally:
        store.close()


def test_a_worker_whose_redis_restarted_without_its_last_writes_stops_writing(redis_server, tmp_path):
    store = RedisStore(redis_server.url, lease_seconds=3)  # renewed every second
    try:
        open_room(store, "lobby")
        lost = threading.Event()
        lease = Lease.take(store, "lobby", on_lost=lost.set)
        assert lease is not None
        save_the_append_only_files(redis_server, tmp_path / "saved")  # the lease is in it, unexpired

        crash_back_to(redis_server, tmp_path / "saved")
        assert redis_server.client().get("chat:room:lobby:lease") is not None, "its lease came back"
        wait_until(lost.is_set, "the worker to be told it lost its lease", timeout=10)
        assert not lease.held
        taken = store.take_lease("lobby", "worker-next")
        assert taken is not None and taken > lease.fence, "the next worker takes the room at once"
    finally:
        store.close()


# --- a reload during a reap ------------------------------------------------------------------------------


class Clock:
    """The rooms' clock, moved by hand: presence is judged by it."""

    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def lobby(shared_redis) -> Iterator[tuple[Room, RedisStore, Clock]]:
    """The lobby on a real Redis, reaped only when the test says so (no hub, no reaper thread)."""
    store = RedisStore(shared_redis.fresh_url())
    clock = Clock()
    settings = fast_settings(redis_url="redis://unused", leave_grace_seconds=1, heartbeat_timeout_seconds=30)
    room = Room("lobby", settings, ScriptedAssistant(), store, clock=clock)
    yield room, store, clock
    room.leave_process(closing=True)
    store.close()


def after_the_reaper_reads_presence(store: RedisStore, monkeypatch, then: Callable[[], None]) -> None:
    """Run `then` once, right after the reaper's first read of the room's presence."""
    read = store.presence

    def presence(room: str):
        seen = read(room)
        monkeypatch.setattr(store, "presence", read)
        then()
        return seen

    monkeypatch.setattr(store, "presence", presence)


def sessions_of(store: RedisStore, participant_id: str) -> dict[str, bool]:
    """The person's browser sessions in the store's presence: session -> still there."""
    return {s: not seen.gone for (p, s), seen in store.presence("lobby").items() if p == participant_id}


@pytest.mark.promise_reloads
def test_a_reload_while_the_reaper_reads_presence_keeps_the_person(lobby, monkeypatch):
    room, store, clock = lobby
    room.join("id-alice", "Alice", "tab-1")
    room.detach("id-alice", "tab-1")  # the reload closes the old tab...
    clock.now += 2  # ...past the leave grace: the reaper reads that she went away

    after_the_reaper_reads_presence(store, monkeypatch, lambda: room.join("id-alice", "Alice", "tab-2"))
    room.reap()

    assert room.here("id-alice"), "she came back before the reaper let her go"
    assert sessions_of(store, "id-alice") == {"tab-1": False, "tab-2": True}, "her new tab is seen"
    assert "Alice left." not in [m.text for m in room.view().messages]


@pytest.mark.promise_reloads
def test_a_join_while_the_reaper_forgets_its_stranger_sessions_leaves_no_ghost(lobby, monkeypatch):
    room, store, clock = lobby
    room.join("id-alice", "Alice", "tab-a")
    store.seen("lobby", "id-bob", "tab-old", clock.now)  # Bob's page, whose join never came
    clock.now += 31  # long silent: the reaper forgets it
    store.seen_all("lobby", {("id-alice", "tab-a"): clock.now})

    after_the_reaper_reads_presence(store, monkeypatch, lambda: room.join("id-bob", "Bob", "tab-new"))
    room.reap()

    assert room.here("id-bob")
    assert sessions_of(store, "id-bob").get("tab-new"), "his new tab's session is kept"
    # So the reaper can let him go once that tab goes: a person with no session would stay for ever.
    clock.now += 31
    room.reap()
    assert not room.here("id-bob")


@pytest.mark.promise_reloads
def test_a_reload_between_the_reapers_judgement_and_its_commit_keeps_the_person(lobby, monkeypatch):
    room, store, clock = lobby
    room.join("id-alice", "Alice", "tab-1")
    room.detach("id-alice", "tab-1")
    clock.now += 2
    read = redis_store._RedisChange.presence
    reloads: list[str] = []

    def presence(change):  # the reaper's change has read the presence and judged her gone...
        seen = read(change)
        if not reloads:
            reloads.append("tab-2")  # ...when her reloaded page writes its session, before the EXEC
            room.join("id-alice", "Alice", "tab-2")
        return seen

    monkeypatch.setattr(redis_store._RedisChange, "presence", presence)
    room.reap()

    assert reloads == ["tab-2"], "the reaper's change read the presence"
    assert room.here("id-alice")
    assert sessions_of(store, "id-alice") == {"tab-1": False, "tab-2": True}


# --- a process that dies while closing a room ------------------------------------------------------------

# One app process (its own Python) whose only room empties and closes, and which dies on the way: right
# after the room was marked closed ("marked"), or while the model's server deletes the room's conversation
# ("deleting"). It prints the conversation it opened for the room, then `os._exit`s: nothing is cleaned up.
DYING_PROCESS = """
import os, sys
from shared.hub import Hub
from shared.store.redis import RedisStore
from tests import test_redis_rooms
from tests.fakes import Gate, ScriptedAssistant, fast_settings, wait_until
from tests.test_attachments import picture

url, when = sys.argv[1], sys.argv[2]

class Assistant(ScriptedAssistant):
    def close_conversation(self, conversation):
        os._exit(9)  # dies inside the deletion (a SIGKILL, a machine gone)

assistant = Assistant()
settings = fast_settings(redis_url=url, max_rooms=1)
reap_every = 0.05 if when == "deleting" else 3600.0  # "marked": only the lines below reap
hub = Hub(settings, lambda _settings: assistant, reap_every=reap_every, store=RedisStore(url))
room, alice = hub.join("lobby", "id-alice", "Alice", "tab-a")
room.post(alice.id, "Hello")
wait_until(lambda: not room.busy and room.conversation(), "the reply")
print(room.conversation(), flush=True)
room.detach(alice.id, "tab-a")
if when == "marked":
    wait_until(lambda: (room.reap(), room.close_if_idle_and_empty())[1], "the room to close")
    os._exit(9)
wait_until(lambda: False, "the process to die", timeout=30)
"""


def room_keys(client) -> list[str]:
    return sorted(k for k in client.keys("chat:*") if not k.startswith("chat:spent:"))


@pytest.mark.promise_worker_and_shutdown
@pytest.mark.parametrize("dies", ["marked", "deleting"])
def test_a_room_whose_process_died_while_closing_it_is_closed_by_another(
    shared_redis, assistant, make_hub, dies
):
    url = shared_redis.fresh_url()
    a = subprocess.run(
        [sys.executable, "-c", DYING_PROCESS, url, dies],
        cwd=Path(__file__).parent.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert a.returncode == 9, f"the process died where it should: {a.stderr[-2000:]}"
    conversation = a.stdout.strip()
    client = redis.Redis.from_url(url, decode_responses=True)
    if dies == "marked":
        assert client.exists("chat:room:lobby:state"), "it died before it deleted anything"

    b = make_hub(url, max_rooms=1)  # another process, here all along or started by the redeploy
    wait_until(lambda: room_keys(client) == [], "the other process to finish closing the room")
    wait_until(lambda: assistant.closed, "the conversation to be deleted")
    assert assistant.closed == [conversation], "deleted once, by the process that finished closing"
    room, bob = b.join("other", "id-bob", "Bob", "tab-b")  # the closed room holds no place in MAX_ROOMS
    assert room.here(bob.id)
    assert assistant.closed == [conversation]


@pytest.mark.promise_attachments
def test_a_room_opened_again_while_its_old_closing_finishes_keeps_its_files(
    shared_redis, assistant, make_hub
):
    url = shared_redis.fresh_url()
    hub = make_hub(url)
    room, alice = hub.join("lobby", "id-alice", "Alice", "tab-a")
    room.post(alice.id, "Hello")
    wait_until(lambda: assistant.opened and not room.busy, "the conversation to open")
    gate = Gate()
    assistant.will_hang_closing(gate)  # the model's server is slow to delete the old conversation
    room.leave(alice.id)
    gate.wait_reached()

    again, bob = hub.join("lobby", "id-bob", "Bob", "tab-b")  # the name opens again meanwhile
    assert again.generation != room.generation
    data = picture()
    message = again.post(bob.id, "a cat", [(check_upload("cat.png", data, 10), data)])
    gate.open()
    client = redis.Redis.from_url(url)
    wait_until(lambda: not client.exists("chat:closing"), "the old closing to be finished")

    assert assistant.closed == list(assistant.opened)[:1], "the old conversation is deleted"
    assert again.attachments.get(message.attachments[0].id) == data, "the new room's file is kept"
    assert again.here(bob.id) and again.view().messages[-1].text == "a cat"


def test_a_room_an_older_version_closed_and_left_is_closed_by_this_one(shared_redis, assistant, make_hub):
    url = shared_redis.fresh_url()
    store = RedisStore(url)
    open_room(store, "lobby")
    store.close()
    # The version before this one marked a room closed and kept the rest to the process that closed it,
    # leaving the room listed among the open ones: that process died before finishing.
    client = redis.Redis.from_url(url, decode_responses=True)
    state = json.loads(client.get("chat:room:lobby:state"))
    state.update(closed=True, conversation_to_close="conversation-old")
    client.set("chat:room:lobby:state", json.dumps(state))
    assert client.smembers("chat:rooms") == {"lobby"}

    b = make_hub(url, max_rooms=1)
    wait_until(lambda: room_keys(client) == [], "this version to finish closing the room")
    assert assistant.closed == ["conversation-old"]
    room, bob = b.join("other", "id-bob", "Bob", "tab-b")
    assert room.here(bob.id)
