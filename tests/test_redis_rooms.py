"""Rooms in a real Redis, shared by several hubs as several app processes share them.

Each hub here is what one `streamlit run` process holds: its own store connection, listener, reaper and
reply workers. The end-to-end suite (tests/e2e/test_redis.py) does the same with real processes.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable, Iterator

import pytest
import redis

from shared import worker
from shared.catch_up import CatchUps
from shared.errors import CatchUpRefused, MessageRefused
from shared.hub import Hub
from shared.messages import Role, Status
from shared.room import Room
from shared.room.turns import BROKE_OFF
from shared.store import StoreUnavailable
from shared.store.redis import RedisStore
from tests.fakes import Gate, ScriptedAssistant, fast_settings, wait_for_workers_to_end, wait_until


@pytest.fixture
def assistant() -> ScriptedAssistant:
    return ScriptedAssistant()


@pytest.fixture
def make_hub(assistant) -> Iterator[Callable[..., Hub]]:
    hubs: list[Hub] = []

    def make(url: str, *, lease_seconds: float = 5.0, **settings) -> Hub:
        settings = fast_settings(redis_url=url, **settings)
        store = RedisStore(url, lease_seconds=lease_seconds)
        hub = Hub(settings, lambda _settings: assistant, reap_every=0.05, store=store)
        hubs.append(hub)
        return hub

    yield make
    assistant.open_all_gates()
    for hub in hubs:
        hub.shutdown()
    wait_for_workers_to_end(*(hub.store for hub in hubs))


def texts(room: Room, role: Role | None = None) -> list[str]:
    return [m.text for m in room.view().messages if role is None or m.role is role]


def test_two_processes_share_a_room_each_message_and_reply_once(shared_redis, make_hub, assistant):
    url = shared_redis.fresh_url()
    a, b = make_hub(url), make_hub(url)
    room_a, alice = a.join("lobby", "id-alice", "Alice", "tab-a")
    room_b, bob = b.join("lobby", "id-bob", "Bob", "tab-b")

    room_a.post(alice.id, "Hello from A")
    room_b.post(bob.id, "Hello from B")
    for room in (room_a, room_b):
        wait_until(lambda room=room: len(texts(room, Role.ASSISTANT)) >= 1 and not room.busy, "the replies")
    wait_until(lambda: texts(room_a) == texts(room_b), "both processes to show the same room")

    said = texts(room_a, Role.USER)
    assert said == ["Hello from A", "Hello from B"]
    answered = [m for turn in assistant.texts_of_turns() for m in turn]
    assert sorted(answered) == sorted(said), "each message went to the assistant exactly once"
    assert {p.nickname for p in room_a.view().participants} == {"Alice", "Bob"}
    assert {p.nickname for p in room_b.view().participants} == {"Alice", "Bob"}


def story_at_the_gate(hub: Hub, assistant: ScriptedAssistant):
    """Alice asks the hub's room for a story; its worker wrote "Once upon" and waits at the gate."""
    room, alice = hub.join("lobby", "id-alice", "Alice", "tab-a")
    gate = Gate()
    assistant.will_reply("Once upon", gate, " a time")
    room.post(alice.id, "Tell me a story")
    gate.wait_reached()
    return hub, room, alice, gate


def test_a_worker_that_stops_renewing_is_taken_over_and_its_late_words_are_dropped(
    shared_redis, make_hub, assistant
):
    url = shared_redis.fresh_url()
    a, room_a, alice, gate = story_at_the_gate(make_hub(url, lease_seconds=0.5), assistant)
    # A's worker took the turn and freezes (a stalled process): it believes it holds the lease but no
    # longer renews it.
    a.store.renew_lease = lambda room, fence: True  # type: ignore[method-assign]
    b = make_hub(url, lease_seconds=0.5)
    room_b = b.room("lobby")

    wait_until(lambda: any(BROKE_OFF in t for t in texts(room_b)), "B to take the room over", timeout=10)
    gate.open()  # A wakes up and tries to write the rest of its reply
    wait_until(lambda: not room_a.busy and not room_b.busy, "the room to settle")
    wait_until(lambda: texts(room_a) == texts(room_b), "both processes to agree")

    [reply] = [m for m in room_b.view().messages if m.role is Role.ASSISTANT]
    assert reply.text == "Once upon", "the stale worker's late words were refused"
    assert reply.status is Status.ERROR
    [broke] = [t for t in texts(room_b) if BROKE_OFF in t]
    assert broke == BROKE_OFF, "its reply began: the model had the story's question"
    [story] = [m for m in room_b.view().messages if m.text == "Tell me a story"]
    assert story.status is Status.COMPLETE

    room_b.post(alice.id, "Still there?")
    wait_until(lambda: len(assistant.turns) == 2 and not room_b.busy, "the next turn")
    assert assistant.texts_of_turns()[1] == ["Still there?"], "nothing the conversation holds is sent again"


def test_a_worker_whose_renewals_fail_writes_nothing_more_and_the_next_one_ends_its_turn_cut_short(
    shared_redis, make_hub, assistant
):
    url = shared_redis.fresh_url()
    a, room_a, alice, gate = story_at_the_gate(make_hub(url, lease_seconds=0.5), assistant)

    def unreachable(room, fence):
        raise StoreUnavailable("Redis is away for this process")

    a.store.renew_lease = unreachable  # type: ignore[method-assign]
    wait_until(lambda: a.store.lease_free("lobby"), "A's lease to run out", timeout=10)
    gate.open()  # A's assistant goes on talking; A must not write it, nor call the reply complete
    wait_until(lambda: not room_a.holding(), "A's worker to let go of the room")
    [reply] = [m for m in room_a.view().messages if m.role is Role.ASSISTANT]
    assert (reply.text, reply.status) == ("Once upon", Status.STREAMING)

    b = make_hub(url)
    room_b = b.room("lobby")
    wait_until(lambda: any(BROKE_OFF in t for t in texts(room_b)), "B to end the cut-short turn", timeout=10)
    [reply] = [m for m in room_b.view().messages if m.role is Role.ASSISTANT]
    assert (reply.text, reply.status) == ("Once upon", Status.ERROR)
    room_b.post(alice.id, "Still there?")
    wait_until(lambda: len(assistant.turns) == 2 and not room_b.busy, "the next turn")
    assert assistant.texts_of_turns()[1] == ["Still there?"], "nothing the conversation holds is sent again"


def test_a_process_stopped_mid_reply_leaves_its_turn_to_the_next_which_ends_it_broken_off(
    shared_redis, make_hub, assistant
):
    # A redeploy: SIGTERM makes the app's lifespan call `Hub.shutdown` on the process writing a reply.
    url = shared_redis.fresh_url()
    a, room_a, alice, gate = story_at_the_gate(make_hub(url), assistant)
    b = make_hub(url)
    room_b = b.room("lobby")
    wait_until(lambda: "Once upon" in texts(room_b), "B to show the reply begun")

    stopping = threading.Thread(target=a.shutdown)
    stopping.start()
    wait_until(lambda: not room_a.serving, "A to stop serving the room")
    gate.open()  # A's assistant goes on talking after its process was told to stop
    stopping.join(10)
    assert not stopping.is_alive()

    wait_until(lambda: any(BROKE_OFF in t for t in texts(room_b)), "B to end the cut-short turn", timeout=10)
    wait_until(lambda: not room_b.busy, "the room to settle")
    [reply] = [m for m in room_b.view().messages if m.role is Role.ASSISTANT]
    assert (reply.text, reply.status) == ("Once upon", Status.ERROR), "a cut reply is never complete"
    [broke] = [t for t in texts(room_b) if BROKE_OFF in t]
    assert broke == BROKE_OFF, "its messages reached the model: nothing is tried again"

    room_b.post(alice.id, "Still there?")
    wait_until(lambda: len(assistant.turns) == 2 and not room_b.busy, "the next turn")
    assert assistant.texts_of_turns()[1] == ["Still there?"]
    assert texts(room_b, Role.ASSISTANT)[1] == "Answer to Still there?"


def test_a_hub_that_shuts_down_while_its_reaper_lists_the_rooms_leaves_no_worker(shared_redis, make_hub):
    url = shared_redis.fresh_url()
    a, b = make_hub(url), make_hub(url)
    a.join("lobby", "id-alice", "Alice", "tab-a")
    room_b = b.room("lobby")
    listed, go_on = threading.Event(), threading.Event()
    room_names = b.store.room_names

    def slow_room_names() -> list[str]:
        names = room_names()
        if threading.current_thread().name == "reaper":
            listed.set()
            go_on.wait(10)
        return names

    b.store.room_names = slow_room_names  # type: ignore[method-assign]
    assert listed.wait(5), "B's reaper lists the rooms"
    stopping = threading.Thread(target=b.shutdown)
    stopping.start()
    wait_until(lambda: room_b.closed, "B to stop serving its rooms")
    go_on.set()  # the reaper goes on with the names it read before the shutdown
    stopping.join(10)
    assert not stopping.is_alive()
    wait_for_workers_to_end(b.store, timeout=3)


def test_a_process_that_stops_closes_no_room_and_a_new_one_sees_everything(shared_redis, make_hub):
    url = shared_redis.fresh_url()
    a = make_hub(url)
    room_a, alice = a.join("lobby", "id-alice", "Alice", "tab-a")
    room_a.post(alice.id, "Remember this")
    wait_until(lambda: not room_a.busy, "the reply")
    before = texts(room_a)
    a.shutdown()

    b = make_hub(url)
    room_b = b.room("lobby")
    assert texts(room_b) == before
    assert room_b.view().participant(alice.id) is not None


def test_an_empty_room_is_closed_once_by_one_process(shared_redis, make_hub, assistant):
    url = shared_redis.fresh_url()
    hubs = [make_hub(url) for _ in range(3)]
    room, alice = hubs[0].join("lobby", "id-alice", "Alice", "tab-a")
    for hub in hubs[1:]:
        hub.room("lobby")
    room.post(alice.id, "open a conversation, please")
    wait_until(lambda: assistant.opened and not room.busy, "the conversation to open")
    room.leave(alice.id)

    wait_until(lambda: all(not hub.rooms() for hub in hubs), "every process to see the room closed")
    client = redis.Redis.from_url(url)
    wait_until(lambda: not client.exists("chat:closing"), "the room's closing to be finished")
    assert assistant.closed == list(assistant.opened), "closed exactly once"
    left = [key for key in client.keys("chat:room:lobby:*")]
    assert left == [], f"every key of the closed room is gone, lease and fence included: {left}"


def test_redis_going_away_is_one_sentence_and_the_room_recovers(redis_server, make_hub):
    hub = make_hub(redis_server.url)
    room, alice = hub.join("lobby", "id-alice", "Alice", "tab-a")
    room.post(alice.id, "before")
    wait_until(lambda: not room.busy, "the reply")

    redis_server.stop()
    with pytest.raises(StoreUnavailable, match="REDIS_URL") as refused:
        room.post(alice.id, "while Redis is down")
    assert "Traceback" not in str(refused.value)
    assert "while Redis is down" not in texts(room), "nothing half-sent"
    assert texts(room)[-2:] == ["before", "Answer to before"], "the page still reads what it had"
    wait_until(lambda: hub.problem is not None, "the hub to know Redis is away")

    redis_server.start()
    wait_until(lambda: hub.problem is None, "the hub to find Redis again", timeout=10)
    room.post(alice.id, "after")
    wait_until(lambda: "Answer to after" in texts(room), "the reply after Redis came back")
    with pytest.raises(MessageRefused):
        room.post(alice.id, " ")


def test_redis_unreachable_at_start_is_one_sentence_and_nothing_crashes(make_hub):
    hub = make_hub("redis://127.0.0.1:9/0")  # nothing listens on the discard port
    with pytest.raises(StoreUnavailable, match="REDIS_URL") as refused:
        hub.room("lobby")
    assert "127.0.0.1" not in str(refused.value), "the address (which may hold a password) is not shown"
    wait_until(lambda: hub.problem is not None, "the hub to know Redis is away")
    assert hub._reaper.is_alive(), "the reaper carries on, to find the store again"


@pytest.mark.promise_api_key
def test_nothing_secret_goes_to_redis(shared_redis, make_hub):
    import redis

    url = shared_redis.fresh_url()
    hub = make_hub(url, openai_api_key="sk-test-do-not-store")
    room, alice = hub.join("lobby", "id-alice", "Alice", "tab-a")
    room.post(alice.id, "hello")
    wait_until(lambda: not room.busy, "the reply")
    with redis.Redis.from_url(url) as client:
        dump = repr([(key, client.dump(key)) for key in client.keys("*")])
    assert "sk-test" not in dump
    assert "lobby" in dump


def test_one_catch_up_at_a_time_per_person_across_processes(shared_redis, make_hub, assistant):
    url = shared_redis.fresh_url()
    a, b = make_hub(url), make_hub(url)
    room_a, bob = a.join("lobby", "id-bob", "Bob", "tab-a")
    room_b = b.room("lobby")
    gate = Gate()
    assistant.will_hang_summarizing(gate)
    first = CatchUps().start(room_a, bob.id, "Bob", 0)
    gate.wait_reached()

    with pytest.raises(CatchUpRefused, match="still being written"):
        CatchUps().start(room_b, bob.id, "Bob", 0)  # Bob's other tab, served by the other process
    gate.open()
    assert first.done.wait(5) and not first.error
    assert CatchUps().start(room_b, bob.id, "Bob", 0).done.wait(5), "free again once the first is written"


def test_one_process_reaps_a_room_at_a_time(shared_redis, make_hub):
    url = shared_redis.fresh_url()
    hubs = [make_hub(url) for _ in range(3)]
    hubs[0].join("lobby", "id-alice", "Alice", "tab-a")  # someone is here: the room stays open
    rooms = [hub.room("lobby") for hub in hubs]
    rounds = [0, 0, 0]
    for index, room in enumerate(rooms):
        reap = room.reap

        def counted(reap=reap, index=index) -> None:
            rounds[index] += 1
            reap()

        room.reap = counted  # type: ignore[method-assign]
    wait_until(lambda: sum(rounds) >= 10, "ten reaping rounds")
    assert sorted(rounds)[:2] == [0, 0], f"rounds per process: {rounds}"


def test_a_reply_grows_on_every_process_and_a_stop_on_another_keeps_the_words_so_far(
    shared_redis, make_hub, assistant, monkeypatch
):
    monkeypatch.setattr(worker, "SHARED_REPLY_WRITE_SECONDS", 0.0)  # each piece written as it comes
    url = shared_redis.fresh_url()
    a, b = make_hub(url), make_hub(url)
    room_a, alice = a.join("lobby", "id-alice", "Alice", "tab-a")
    room_b, bob = b.join("lobby", "id-bob", "Bob", "tab-b")
    first, second = Gate(), Gate()
    assistant.will_reply("Once", first, " upon", " a", second, " time")
    room_a.post(alice.id, "Tell me a story")

    def reply_on(room: Room) -> tuple[str, Status] | None:
        replies = [m for m in room.view().messages if m.role is Role.ASSISTANT]
        return (replies[0].text, replies[0].status) if replies else None

    first.wait_reached()
    wait_until(lambda: reply_on(room_b) == ("Once", Status.STREAMING), "B to show the first word")
    first.open()
    second.wait_reached()
    for room in (room_a, room_b):  # the growth, read back by each process as it is appended
        wait_until(lambda room=room: reply_on(room) == ("Once upon a", Status.STREAMING), "the growth")

    room_b.stop_reply(bob.id)  # on the process that does not write the reply
    second.open()  # A's worker has " time" to write, too late
    for room in (room_a, room_b):
        wait_until(lambda room=room: not room.busy, "the stopped turn to end")
    wait_until(lambda: texts(room_a) == texts(room_b), "both processes to show the same room")
    assert reply_on(room_a) == reply_on(room_b) == ("Once upon a", Status.STOPPED)
    assert "Bob stopped the reply." in texts(room_a)

    room_a.post(alice.id, "Another")  # the worker takes the next turn, and its reply grows anew
    wait_until(lambda: len(texts(room_b, Role.ASSISTANT)) == 2 and not room_b.busy, "the next reply")
    assert texts(room_b, Role.ASSISTANT)[1] == "Answer to Another"


def test_redis_back_without_its_last_writes_is_taken_afresh_by_every_process(
    redis_server, make_hub, tmp_path
):
    url = f"redis://127.0.0.1:{redis_server.port}/0"
    a, b = make_hub(url, heartbeat_timeout_seconds=30), make_hub(url, heartbeat_timeout_seconds=30)
    room_a, alice = a.join("lobby", "id-alice", "Alice", "tab-a")
    room_b, bob = b.join("lobby", "id-bob", "Bob", "tab-b")
    wait_until(lambda: texts(room_a) == texts(room_b), "both processes to show both joins")
    redis_server.client().bgrewriteaof()  # the append-only files as they stand, to go back to
    wait_until(
        lambda: not redis_server.client().info("persistence")["aof_rewrite_in_progress"], "the rewrite"
    )
    shutil.copytree(redis_server.folder / "appendonlydir", tmp_path / "saved")
    room_a.post(alice.id, "Lost with the crash")
    wait_until(lambda: "Answer to Lost with the crash" in texts(room_b) and not room_b.busy, "the reply")

    redis_server.kill()  # and back from the copy: as after a machine that went down before an fsync
    shutil.rmtree(redis_server.folder / "appendonlydir")
    shutil.copytree(tmp_path / "saved", redis_server.folder / "appendonlydir")
    redis_server.start()
    for room in (room_a, room_b):  # each copy was ahead of Redis; before, both kept it and followed nothing
        wait_until(lambda room=room: "Lost with the crash" not in texts(room), "the copy to be taken afresh")
        assert room.resets == 1, "pages are told to draw the room again"

    room_b.post(bob.id, "Back after the crash?")
    for room in (room_a, room_b):
        wait_until(lambda room=room: "Answer to Back after the crash?" in texts(room), "the next reply")
    assert texts(room_a) == texts(room_b)
