"""A room's changes through a connection that fails at the worst moment: right after a command went out.

Each hub here is one app process; its Redis connection goes through `tests/tcp_proxy.py`, which lets a
command reach Redis and then loses its answer. redis-py then cannot know whether it took effect; the
store's retry policy (`shared/store/redis.py`) must make sure it takes effect once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from shared.hub import Hub
from shared.messages import Role, Status
from shared.room import Room
from shared.room.turns import BROKE_OFF
from shared.store import StoreUnavailable
from shared.store.redis import LEASE_SECONDS, UNREACHABLE
from tests import test_redis_rooms
from tests.fakes import Gate, wait_until
from tests.tcp_proxy import TcpProxy

# test_redis_rooms' fixtures, by name: a scripted assistant and hubs (app processes) on a Redis address.
assistant, make_hub = test_redis_rooms.assistant, test_redis_rooms.make_hub


@pytest.fixture
def proxy(shared_redis) -> Iterator[TcpProxy]:
    with TcpProxy(shared_redis.server.port) as proxy:
        yield proxy


@pytest.fixture
def hub_through(proxy, shared_redis, make_hub) -> Callable[..., Hub]:
    """A hub (an app process) whose Redis connection goes through the proxy, on a fresh database."""
    database = int(shared_redis.fresh_url().rsplit("/", 1)[1])  # empties it
    return lambda **settings: make_hub(proxy.url(database), **settings)


def reply_held_after_its_first_words(hub: Hub, assistant) -> tuple[Room, Gate]:
    """Alice asks for a story; the reply's first words are in the room and the rest waits at the gate."""
    room, alice = hub.join("lobby", "id-alice", "Alice", "tab-a")
    gate = Gate()
    assistant.will_reply("Once upon", gate, " a time")
    room.post(alice.id, "A story, please")
    gate.wait_reached()
    wait_until(lambda: any(m.text == "Once upon" for m in room.view().messages), "the first words")
    return room, gate


def said(room) -> list[tuple[Role, str]]:
    return [(m.role, m.text) for m in room.view().messages if m.role is not Role.SYSTEM]


def test_a_message_whose_exec_reply_is_lost_is_posted_once(proxy, hub_through, assistant):
    hub = hub_through()
    room, alice = hub.join("lobby", "id-alice", "Alice", "tab-a")
    proxy.cut_after(b"EXEC")
    message = room.post(alice.id, "Hello once")
    assert proxy.cuts == 1, "the post's EXEC reached Redis and its answer was lost"
    wait_until(lambda: not room.busy and len(said(room)) >= 2, "the reply")

    assert [m.text for m in room.view().messages if m.role is Role.USER] == ["Hello once"]
    assert message.text == "Hello once" and room.view().messages[message.id - 1].text == "Hello once"
    assert assistant.texts_of_turns() == [["Hello once"]]


def test_a_reply_whose_growth_answer_is_lost_keeps_each_word_once(proxy, hub_through, assistant):
    room, gate = reply_held_after_its_first_words(hub_through(), assistant)
    proxy.cut_after(b" a time")  # the growth's script reached Redis; its answer is lost
    gate.open()
    wait_until(lambda: not room.busy, "the reply to end")

    assert proxy.cuts == 1
    [reply] = [m for m in room.view().messages if m.role is Role.ASSISTANT]
    assert (reply.text, reply.status) == ("Once upon a time", Status.COMPLETE)


def test_a_reply_whose_growth_could_not_be_written_ends_cut_short_not_complete(hub_through, assistant):
    hub = hub_through()
    room, gate = reply_held_after_its_first_words(hub, assistant)
    grow = hub.store.grow

    def unreachable_once(*args):  # Redis away for this one call, retries included; back at once after
        hub.store.grow = grow  # type: ignore[method-assign]
        raise StoreUnavailable(UNREACHABLE)

    hub.store.grow = unreachable_once  # type: ignore[method-assign]
    gate.open()
    wait_until(lambda: not room.busy, "the turn to end")

    [reply] = [m for m in room.view().messages if m.role is Role.ASSISTANT]
    assert (reply.text, reply.status) == ("Once upon", Status.ERROR), "its words were lost: not complete"
    [said] = [m.text for m in room.view().messages if m.status is Status.ERROR and m.role is Role.SYSTEM]
    assert "could not be written" in said


def test_a_file_whose_script_reply_is_lost_is_kept_once(proxy, hub_through):
    hub = hub_through()
    room, _ = hub.join("lobby", "id-alice", "Alice", "tab-a")  # an empty room would close under the test
    room.attachments.put("file-0", b"z" * 100)  # the store's scripts are loaded by now
    proxy.cut_after(b"file-1")
    room.attachments.put("file-1", b"x" * 1000)
    room.attachments.put("file-2", b"y" * 500)

    assert proxy.cuts == 1
    assert room.attachments.size == 1600, "each file's bytes counted once"
    assert room.attachments.get("file-1") == b"x" * 1000


def test_redis_hung_longer_than_the_lease_mid_reply_cuts_the_reply_short_and_the_next_is_answered(
    proxy, hub_through, assistant
):
    hub = hub_through(heartbeat_timeout_seconds=30)  # people outlast the outage, as by default
    room, gate = reply_held_after_its_first_words(hub, assistant)
    alice = room.view().participant("id-alice")
    proxy.black_hole()
    gate.open()  # the worker tries to write the rest while nothing gets through
    time.sleep(LEASE_SECONDS + 1)  # the fault itself: longer than the worker's lease
    proxy.restore()
    wait_until(lambda: not room.busy, "the cut-short turn to end", timeout=30)

    [reply] = [m for m in room.view().messages if m.role is Role.ASSISTANT]
    if reply.status is Status.COMPLETE:  # the worker's writes got through when the network came back
        assert reply.text == "Once upon a time", f"{reply.text!r} was cut short but marked complete"
    else:
        assert reply.status is Status.ERROR
    started = time.monotonic()
    room.post(alice.id, "Still there?")
    wait_until(lambda: len(assistant.turns) == 2 and not room.busy, "the next turn", timeout=30)
    print(f"\nthe next message was answered {time.monotonic() - started:.2f} s after it was sent")
    # Ended by the worker that took the room over or by its own, the turn is not sent again: its reply
    # began, so the model has it (and the conversation keeps it).
    assert assistant.texts_of_turns()[1] == ["Still there?"]
    lines = [m.text for m in room.view().messages if m.role is Role.SYSTEM]
    assert all(t == BROKE_OFF for t in lines if t.startswith(BROKE_OFF)), "nothing is to be tried again"
