"""A room's changes through a connection that fails at the worst moment: right after a command went out;
and a reply whose worker is still writing when Redis comes back without its last writes.

Each hub here is one app process; its Redis connection goes through `tests/tcp_proxy.py`, which lets a
command reach Redis and then loses its answer. redis-py then cannot know whether it took effect; the
store's retry policy (`shared/store/redis.py`) must make sure it takes effect once. Each case shows its
fault hit: the reply in progress when it struck, the cut's lost answer the command's own (the store's
scripts are loaded before a cut is armed: a script's first call on a fresh Redis is answered NOSCRIPT).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
import redis

from shared.hub import Hub
from shared.messages import Role, Status
from shared.room import Room
from shared.room.turns import BROKE_OFF, LOST_REPLY
from shared.store import LOST, StoreUnavailable
from shared.store.redis import LEASE_SECONDS, UNREACHABLE
from shared.worker import SHARED_REPLY_WRITE_SECONDS
from tests import test_redis_rooms
from tests.fakes import Gate, wait_until
from tests.redis_room import key, load_scripts, reply_in_progress, room_in_redis, script_sha
from tests.tcp_proxy import TcpProxy

# test_redis_rooms' fixtures, by name: a scripted assistant and hubs (app processes) on a Redis address.
assistant, make_hub = test_redis_rooms.assistant, test_redis_rooms.make_hub


@pytest.fixture
def proxy(shared_redis) -> Iterator[TcpProxy]:
    with TcpProxy(shared_redis.server.port) as proxy:
        yield proxy


@pytest.fixture
def database(shared_redis) -> int:
    """The hubs' database, emptied."""
    return int(shared_redis.fresh_url().rsplit("/", 1)[1])


@pytest.fixture
def hub_through(proxy, database, make_hub) -> Callable[..., Hub]:
    """A hub (an app process) whose Redis connection goes through the proxy, on a fresh database."""
    return lambda **settings: make_hub(proxy.url(database), **settings)


@pytest.fixture
def direct(shared_redis, database) -> Iterator[redis.Redis]:
    """A client on the hubs' database straight to Redis, past the proxy: what Redis holds."""
    with redis.Redis(port=shared_redis.server.port, db=database, decode_responses=True) as client:
        yield client


def reply_held_after_its_first_words(hub: Hub, assistant, *rest: str | Gate) -> tuple[Room, Gate]:
    """Alice asks for a story; the reply's first words are in the room and the rest (" a time", unless
    given) waits at the gate."""
    room, alice = hub.join("lobby", "id-alice", "Alice", "tab-a")
    gate = Gate()
    assistant.will_reply("Once upon", gate, *(rest or (" a time",)))
    room.post(alice.id, "A story, please")
    gate.wait_reached()
    wait_until(lambda: any(m.text == "Once upon" for m in room.view().messages), "the first words")
    return room, gate


def in_progress(room: Room) -> None:
    """The reply is being written: streaming, its first words in, not finished."""
    [reply] = [m for m in room.view().messages if m.role is Role.ASSISTANT]
    assert (reply.text, reply.status) == ("Once upon", Status.STREAMING) and room.busy


def errors_said(room: Room) -> list[str]:
    return [m.text for m in room.view().messages if m.role is Role.SYSTEM and m.status is Status.ERROR]


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


def test_a_reply_whose_growth_answer_is_lost_keeps_each_word_once(
    proxy, shared_redis, hub_through, assistant
):
    room, gate = reply_held_after_its_first_words(hub_through(), assistant)
    load_scripts(shared_redis.server.client())  # or the cut throws away the growth's -NOSCRIPT
    in_progress(room)
    proxy.cut_after(b"EVALSHA", script_sha("GROW").encode(), b" a time")  # reached Redis; its answer lost
    gate.open()
    wait_until(lambda: not room.busy, "the reply to end")

    assert proxy.cuts == 1
    assert proxy.lost[0].startswith(b":"), f"the growth took effect (its version lost): {proxy.lost[0]!r}"
    [reply] = [m for m in room.view().messages if m.role is Role.ASSISTANT]
    assert (reply.text, reply.status) == ("Once upon a time", Status.COMPLETE)


def test_a_reply_whose_growth_could_not_be_written_ends_cut_short_not_complete(hub_through, assistant):
    hub = hub_through()
    room, gate = reply_held_after_its_first_words(hub, assistant)
    in_progress(room)
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


def test_a_file_whose_script_reply_is_lost_is_kept_once(proxy, shared_redis, hub_through):
    hub = hub_through()
    room, _ = hub.join("lobby", "id-alice", "Alice", "tab-a")  # an empty room would close under the test
    load_scripts(shared_redis.server.client())
    room.attachments.put("file-0", b"z" * 100)
    proxy.cut_after(b"EVALSHA", script_sha("PUT_FILE").encode(), b"file-1")
    room.attachments.put("file-1", b"x" * 1000)
    room.attachments.put("file-2", b"y" * 500)

    assert proxy.cuts == 1
    assert proxy.lost == [b":1\r\n"], f"the answer lost is the script's own (the file added): {proxy.lost}"
    assert room.attachments.size == 1600, "each file's bytes counted once"
    assert room.attachments.get("file-1") == b"x" * 1000


def test_redis_hung_longer_than_the_lease_mid_reply_cuts_the_reply_short_and_the_next_is_answered(
    proxy, direct, hub_through, assistant
):
    hub = hub_through(heartbeat_timeout_seconds=30)  # people outlast the outage, as by default
    room, gate = reply_held_after_its_first_words(hub, assistant)
    alice = room.view().participant("id-alice")
    in_progress(room)
    proxy.black_hole()
    gate.open()  # the worker tries to write the rest while nothing gets through
    hung = time.monotonic()
    try:
        wait_until(
            lambda: not direct.exists(key("lease")) and reply_in_progress(direct) is not None,
            "the worker's lease to run out while its reply is in progress in Redis",
            timeout=3 * LEASE_SECONDS,
        )
    finally:
        proxy.restore()
    print(f"\nRedis was out of reach {time.monotonic() - hung:.1f} s")
    wait_until(lambda: not room.busy, "the cut-short turn to end", timeout=30)

    [reply] = [m for m in room.view().messages if m.role is Role.ASSISTANT]
    if reply.status is Status.COMPLETE:
        # The worker's last words were held in the hang and went through when it ended, before the worker
        # found its lease lost: every word is there, and nothing says otherwise.
        assert (reply.text, errors_said(room)) == ("Once upon a time", []), f"{reply.text!r} marked complete"
    else:
        assert reply.status is Status.ERROR, reply.status
        [said] = errors_said(room)
        assert said.startswith((BROKE_OFF, "CatGPT could not reply")), said
    print(f"the reply ended {reply.status}: {reply.text!r}; said: {errors_said(room)}")
    started = time.monotonic()
    room.post(alice.id, "Still there?")
    wait_until(lambda: len(assistant.turns) == 2 and not room.busy, "the next turn", timeout=30)
    print(f"the next message was answered {time.monotonic() - started:.2f} s after it was sent")
    # A line that says it will try again carried the turn's messages over to the next one.
    again = any(m.text.endswith("It will try again with the next message.") for m in room.view().messages)
    carried = ["A story, please", "Still there?"] if again else ["Still there?"]
    assert assistant.texts_of_turns()[1] == carried


@pytest.mark.parametrize("redis_server", [{"appendfsync": "everysec"}], ids=["everysec"], indirect=True)
def test_redis_back_without_the_last_words_of_a_reply_its_worker_still_writes_ends_it_broken_off(
    redis_server, make_hub, assistant, tmp_path
):
    """Redis comes back from append-only files copied while the reply had its first words only (what
    `everysec` loses when the machine goes down): the worker, alive and writing, finds the reply shorter
    than it wrote it (`LOST`) and must end it broken off, never complete with its middle missing."""
    hub = make_hub(redis_server.url, heartbeat_timeout_seconds=30)
    direct = redis_server.client()
    later = Gate()
    room, gate = reply_held_after_its_first_words(hub, assistant, " a time", later, " there was a cat.")
    in_progress(room)
    redis_server.copy_files(tmp_path / "appendonlydir")  # the reply at its first words
    time.sleep(SHARED_REPLY_WRITE_SECONDS)  # the worker's pace: its next words then go out at once
    gate.open()
    later.wait_reached()
    wait_until(
        lambda: getattr(reply_in_progress(direct), "text", "") == "Once upon a time",
        "the next words in Redis",
    )
    redis_server.crash_back_to(tmp_path / "appendonlydir")
    growing = reply_in_progress(direct)
    assert growing is not None and growing.text == "Once upon", f"back without the last words: {growing}"
    answers: list[int | None] = []
    grow = hub.store.grow

    def answered(*args):  # the real growth, its answers recorded
        answers.append(grow(*args))
        return answers[-1]

    hub.store.grow = answered  # type: ignore[method-assign]
    later.open()  # the worker writes its next words after the words Redis lost
    wait_until(lambda: LOST in answers, "the worker's next growth", timeout=30)

    assert LOST in answers, f"the growth's answers: {answers}"
    # What Redis holds, which every page is then drawn from. (This process's own copy of the room was seen
    # to keep the reply "Once upon a time", streaming, for 40 s after this: see the fault report.)
    wait_until(lambda: room_in_redis(direct)[-1]["role"] == "system", "the turn's end in Redis", timeout=30)
    reply, said = room_in_redis(direct)[-2:]
    assert (reply["role"], reply["text"], reply["status"]) == ("assistant", "Once upon", "error"), reply
    assert said["status"] == "error" and said["text"].startswith(("CatGPT could not reply", LOST_REPLY)), said
    print(f"\nthe reply ended {reply['status']}: {reply['text']!r}; said: {said['text']!r}")


def test_redis_full_at_maxmemory_refuses_a_post_and_loses_nothing(direct, hub_through, assistant):
    """Redis at `maxmemory` with `noeviction` refuses every write, reads still work: a post is refused
    with the store's one sentence, nothing in Redis changes, and once Redis has room the room goes on."""
    hub = hub_through()
    room, alice = hub.join("lobby", "id-alice", "Alice", "tab-a")
    room.post(alice.id, "Before Redis is full")
    wait_until(lambda: not room.busy and len(said(room)) == 2, "the first reply")
    before = room_in_redis(direct)
    direct.config_set("maxmemory-policy", "noeviction")
    direct.config_set("maxmemory", 1)  # below what Redis uses already
    try:
        with pytest.raises(StoreUnavailable) as refused:
            room.post(alice.id, "While Redis is full")
        assert room_in_redis(direct) == before, "a refused write changed the room"
        print(f"\nrefused with: {refused.value}")
    finally:
        direct.config_set("maxmemory", 0)
    room.post(alice.id, "Is there room now?")
    wait_until(lambda: not room.busy and len(said(room)) == 4, "the next reply")
    assert [text for role, text in said(room) if role is Role.USER] == [
        "Before Redis is full",
        "Is there room now?",
    ]
    assert assistant.texts_of_turns() == [["Before Redis is full"], ["Is there room now?"]]
