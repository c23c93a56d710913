"""What a room leaves behind in a real Redis when things go wrong around it: a Redis that comes back
without its last writes, a process that dies while closing a room, a reload during a reap."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

from shared.messages import Message, Role
from shared.store import RoomState
from shared.store.redis import RedisStore
from tests.fakes import wait_until
from tests.redis_server import RedisServer


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
