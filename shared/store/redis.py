"""Rooms in Redis (`REDIS_URL`): every app process serves every room, and a restart forgets nothing.

Keys, for a room called NAME (room names are plain: a-z, digits, - and _; nothing secret is in a key):
- `chat:rooms`: the names of the open rooms (a set)
- `chat:room:NAME:state`: the room's `RoomState` as JSON, rewritten by every change
- `chat:room:NAME:msgs`: message id -> the message as JSON (a hash)
- `chat:room:NAME:changes`: message id scored by the version of its last change (a sorted set), so a
  process catches up by reading only what changed after the version it holds
- `chat:room:NAME:presence`: "participant session" -> when last seen (negative: went away then)
- `chat:room:NAME:lease` / `:fence`: the reply worker's lease, "FENCE HOLDER", and the fence counter
  (every key of a room goes when it closes, and a room opened again under its name starts afresh)
- `chat:room:NAME:seen`: participant -> the newest message a page of theirs showed ("Catch me up")
- `chat:room:NAME:files` / `:file-order` / `:file-bytes`: attached files' bytes by attachment id, oldest
  first, and their total size
- `chat:room:NAME:claim:WHAT`: one holder at a time across processes (the room's reaper, a person's
  catch-up), lapsing by itself
- `chat:spent:NAME`: "DAY TOKENS", the room's token count on a UTC day; it outlives the room (for two
  days), so a room that empties and reopens the same day keeps that day's budget spent
Every change is announced on the channel `chat:changes` as "NAME VERSION": a small notice; the data stays
in the keys above, and each process reads it once for all of its pages.

The Redis retry policy, for every kind of call, decided here:

| call | on a dropped connection or a time-out | why that is safe |
|---|---|---|
| reads (GET, HGET, HMGET, ZRANGEBYSCORE, SMEMBERS, EXISTS) | redis-py sends it again, up to `RETRIES` times, with jittered backoff | a read changes nothing |
| presence, "seen", the day's tokens, lease renewal and release (HSET, the max and lease scripts, SET) | the same | each sets a value: twice leaves what once leaves |
| taking the lease (one script) | the same | sent again after a lost reply it finds the lease held and says so; that lease expires by itself |
| a room's change (WATCH, MULTI ... EXEC) | redis-py never sends EXEC again: it raises `WatchError` and the rule runs again on the room as it is now; the change's id, recorded in the state it committed, tells a rule whose EXEC did commit not to make the change twice | `change` |
| a change that loses to other processes' changes | run again up to `CONFLICT_RETRIES` times, with jittered backoff, then `StoreUnavailable` | a room that busy is a fault to report, not to spin on |
| an attached file (one script: added only if its id is not there yet) | sent again | the script adds a file once |
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import redis
from pydantic import TypeAdapter
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import RedisError, WatchError
from redis.retry import Retry

from shared.messages import Message
from shared.store import (
    RoomChange,
    RoomGone,
    RoomRecord,
    RoomState,
    Seen,
    StoreUnavailable,
    T,
)

log = logging.getLogger(__name__)

CHANNEL = "chat:changes"
ROOMS = "chat:rooms"
LEASE_SECONDS = 5.0  # a dead worker's room is taken over after this long
RETRIES = 2  # a command is sent at most this many more times after a dropped connection or a time-out
CONFLICT_RETRIES = 50  # a change that keeps losing to other processes' changes gives up after this many
RECENT_CHANGES = 32  # change ids a room's state remembers, so a change that did commit is not made twice
BUSY = (
    "The room is too busy to take this change right now (other app processes kept changing it first); "
    "please try again."
)
SPENDING_KEPT_SECONDS = 2 * 24 * 3600  # a room's day's token count outlives the day in every time zone
UNREACHABLE = (
    "The rooms' store (Redis, set by REDIS_URL) cannot be reached right now; "
    "the app keeps trying and carries on by itself when it is back."
)
# KEYS: lease, fence, state; ARGV: holder, milliseconds. A new fence, or 0 if the lease is held or the room
# is gone (a closed room's keys are not made again).
_TAKE = (
    "if redis.call('exists', KEYS[1]) == 1 or redis.call('exists', KEYS[3]) == 0 then return 0 end "
    "local fence = redis.call('incr', KEYS[2]) "
    "redis.call('set', KEYS[1], fence .. ' ' .. ARGV[1], 'PX', ARGV[2]) return fence"
)
# KEYS: the claim, the room's state; ARGV: holder, milliseconds. 1 if it was free or is this holder's
# (then renewed), else 0; 0 for a room that is gone (its keys are not made again).
_CLAIM = (
    "local v = redis.call('get', KEYS[1]) "
    "if (v and v ~= ARGV[1]) or redis.call('exists', KEYS[2]) == 0 then return 0 end "
    "redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1"
)
# ARGV[1] is "FENCE ": the lease is this worker's while its value starts with its fence.
_RENEW = (
    "local v = redis.call('get', KEYS[1]) "
    "if v and string.sub(v, 1, #ARGV[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end "
    "return 0"
)
# ARGV: participant, message id, participant, message id, ...: each raised, never lowered; one read and
# one write for all of them (every page of a process is told at once, once a second).
_MAX = (
    "local fields = {} for i = 1, #ARGV, 2 do fields[#fields + 1] = ARGV[i] end "
    "local old = redis.call('hmget', KEYS[1], unpack(fields)) local raised = {} "
    "for i = 1, #fields do local new = ARGV[2 * i] "
    "if tonumber(new) > tonumber(old[i] or '0') then raised[#raised + 1] = fields[i] raised[#raised + 1] = new end end "
    "if #raised > 0 then redis.call('hset', KEYS[1], unpack(raised)) end return 0"
)
# KEYS: files, file-order, file-bytes; ARGV: id, bytes, limit. Returns the ids of older files dropped.
_PUT_FILE = """
if redis.call('hexists', KEYS[1], ARGV[1]) == 1 then return {} end
redis.call('hset', KEYS[1], ARGV[1], ARGV[2])
redis.call('rpush', KEYS[2], ARGV[1])
local size = redis.call('incrby', KEYS[3], string.len(ARGV[2]))
local dropped = {}
while size > tonumber(ARGV[3]) and redis.call('llen', KEYS[2]) > 1 do
  local old = redis.call('lpop', KEYS[2])
  size = redis.call('decrby', KEYS[3], redis.call('hstrlen', KEYS[1], old))
  redis.call('hdel', KEYS[1], old)
  table.insert(dropped, old)
end
return dropped
"""
_RELEASE = (
    "local v = redis.call('get', KEYS[1]) "
    "if v and string.sub(v, 1, #ARGV[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
)


def _key(room: str, part: str) -> str:
    return f"chat:room:{room}:{part}"


def _room_keys(room: str, *, but_state: bool = False) -> list[str]:
    parts = [
        "msgs",
        "changes",
        "presence",
        "seen",
        "files",
        "file-order",
        "file-bytes",
        "lease",
        "fence",
        "claim:reaper",
    ]
    return [_key(room, part) for part in ([] if but_state else ["state"]) + parts]


# States and messages are kept as JSON (readable, and never code to run), written and read by pydantic.
_STATES = TypeAdapter(RoomState)
_MESSAGES = TypeAdapter(Message)
_state = _STATES.validate_json
_message = _MESSAGES.validate_json


class _RedisChange(RoomChange):
    def __init__(self, state: RoomState, pipe: Any, room: str):
        super().__init__(state)
        self._pipe = pipe
        self._room = room

    def _read(self, ids: list[int]) -> list[Message]:
        raws = self._pipe.hmget(_key(self._room, "msgs"), ids)
        if None in raws:  # the room was deleted under the change: run it again, to find it gone
            raise WatchError("the room's messages changed while they were read")
        return [_message(raw) for raw in raws]


class RedisStore:
    shared = True

    def __init__(self, url: str, *, lease_seconds: float = LEASE_SECONDS):
        self.lease_seconds = lease_seconds
        self.problem: str | None = None  # the sentence to show while Redis cannot be reached
        self._client = redis.Redis.from_url(
            url,
            socket_timeout=5,
            socket_connect_timeout=3,
            health_check_interval=10,
            # redis-py's own default is 10 retries: a stalled Redis would hold a page for a minute.
            retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), RETRIES),
        )
        self._renew = self._client.register_script(_RENEW)
        self._release = self._client.register_script(_RELEASE)
        self._max = self._client.register_script(_MAX)
        self._take = self._client.register_script(_TAKE)
        self._claim = self._client.register_script(_CLAIM)
        self._put_file = self._client.register_script(_PUT_FILE)
        self._stopped = threading.Event()
        self._listener: threading.Thread | None = None

    @contextlib.contextmanager
    def _reaching(self) -> Iterator[None]:
        """Turn Redis's connection errors into the one sentence a page shows."""
        try:
            yield
        except (RedisError, OSError) as error:
            if isinstance(error, WatchError):
                raise
            log.warning("redis: %s", error)
            self.problem = UNREACHABLE
            raise StoreUnavailable(UNREACHABLE) from None
        except Exception:
            if not self._stopped.is_set():
                raise
            raise StoreUnavailable(UNREACHABLE) from None  # closed under a late thread at shutdown
        self.problem = None

    def record(self, room: str) -> RoomRecord | None:
        return None  # each process keeps its own copy, from `read`

    def _transaction(self, room: str, step: Callable[[Any, bytes | None], T]) -> T:
        """Run `step(pipe, state)` with the room's state watched, again whenever another process changed
        the room before `step`'s MULTI was executed; `step` reads in immediate mode, then queues writes."""
        state_key = _key(room, "state")
        with self._reaching(), self._client.pipeline() as pipe:
            for attempt in range(CONFLICT_RETRIES):
                try:
                    pipe.watch(state_key)
                    return step(pipe, pipe.get(state_key))
                except WatchError:
                    # Another process changed the room first, or the connection dropped while watching
                    # (EXEC's reply included): run the step again on the room as it is now.
                    time.sleep(random.uniform(0, min(0.2, 0.002 * 2**attempt)))
                finally:
                    pipe.reset()
        log.warning("redis: a change to room %s lost %d times in a row", room, CONFLICT_RETRIES)
        raise StoreUnavailable(BUSY)

    def change(self, room: str, rule: Callable[[RoomChange], T]) -> T:
        change_id = uuid.uuid4().hex[:16]
        sent: list[T] = []  # the result of the run whose EXEC went out last

        def step(pipe: Any, raw: bytes | None) -> T:
            if raw is None:
                raise RoomGone(room)
            state = _state(raw)
            if sent and change_id in state.recent_changes:
                pipe.unwatch()  # that EXEC committed; only its reply was lost: nothing more to do
                return sent[0]
            change = _RedisChange(state, pipe, room)
            result = rule(change)
            if change.skip:
                pipe.unwatch()
                return result
            version = change.stamp()
            state.recent_changes = [*state.recent_changes[1 - RECENT_CHANGES :], change_id]
            pipe.multi()
            pipe.set(_key(room, "state"), _STATES.dump_json(change.state))
            if change.written:
                pipe.hset(
                    _key(room, "msgs"),
                    mapping={m.id: _MESSAGES.dump_json(m) for m in change.written.values()},
                )
                pipe.zadd(_key(room, "changes"), dict.fromkeys(change.written, version))
            pipe.publish(CHANNEL, f"{room} {version}")
            sent[:] = [result]
            pipe.execute()
            return result

        return self._transaction(room, step)

    def create(self, room: str, state: RoomState, first: Message, *, open_only: bool = False) -> RoomState:
        def step(pipe: Any, raw: bytes | None) -> RoomState:
            if raw is not None and not (current := _state(raw)).closed:
                return current
            if open_only:
                raise RoomGone(room)
            state.message_count = first.id
            state.version = state.news_version = 1
            pipe.multi()
            pipe.delete(*_room_keys(room, but_state=True))
            pipe.set(_key(room, "state"), _STATES.dump_json(state))
            pipe.hset(_key(room, "msgs"), first.id, _MESSAGES.dump_json(first))
            pipe.zadd(_key(room, "changes"), {first.id: 1})
            pipe.sadd(ROOMS, room)
            pipe.publish(CHANNEL, f"{room} 1")
            pipe.execute()
            return state

        return self._transaction(room, step)

    def read(self, room: str, since_version: int) -> tuple[RoomState | None, list[tuple[Message, int]]]:
        with self._reaching():
            pipe = self._client.pipeline(transaction=True)
            pipe.get(_key(room, "state"))
            pipe.zrangebyscore(_key(room, "changes"), f"({since_version}", "+inf", withscores=True)
            raw, changed = pipe.execute()
            if raw is None:
                return None, []
            ids = [int(member) for member, _ in changed]
            raws = self._client.hmget(_key(room, "msgs"), ids) if ids else []
        return _state(raw), [
            (_message(text), int(version))
            for text, (_, version) in zip(raws, changed, strict=True)
            if text is not None
        ]

    def delete(self, room: str, generation: str) -> None:
        def step(pipe: Any, raw: bytes | None) -> None:
            if raw is None or _state(raw).generation != generation:
                return
            pipe.multi()
            pipe.delete(*_room_keys(room))
            pipe.srem(ROOMS, room)
            pipe.publish(CHANNEL, f"{room} 0")
            pipe.execute()

        self._transaction(room, step)

    def room_names(self) -> list[str]:
        with self._reaching():
            return sorted(name.decode() for name in self._client.smembers(ROOMS))

    def seen(
        self, room: str, participant_id: str, session_id: str, when: float, *, gone: bool = False
    ) -> None:
        value = f"{'gone' if gone else 'here'} {when!r}"
        with self._reaching():
            self._client.hset(_key(room, "presence"), f"{participant_id} {session_id}", value)

    def presence(self, room: str) -> dict[tuple[str, str], Seen]:
        with self._reaching():
            raw = self._client.hgetall(_key(room, "presence"))
        seen = {}
        for field, value in raw.items():
            participant_id, _, session_id = field.decode().partition(" ")
            where, _, when = value.decode().partition(" ")
            seen[participant_id, session_id] = Seen(float(when), gone=where == "gone")
        return seen

    def forget_presence(self, room: str, participant_id: str) -> None:
        with self._reaching():
            fields = [
                f
                for f in self._client.hkeys(_key(room, "presence"))
                if f.decode().split(" ")[0] == participant_id
            ]
            if fields:
                self._client.hdel(_key(room, "presence"), *fields)

    def take_lease(self, room: str, holder: str) -> int | None:
        keys = [_key(room, "lease"), _key(room, "fence"), _key(room, "state")]
        with self._reaching():
            fence = int(self._take(keys=keys, args=[holder, int(self.lease_seconds * 1000)]))
        return fence or None

    def renew_lease(self, room: str, fence: int) -> bool:
        with self._reaching():
            lease_ms = int(self.lease_seconds * 1000)
            return bool(self._renew(keys=[_key(room, "lease")], args=[f"{fence} ", lease_ms]))

    def release_lease(self, room: str, fence: int) -> None:
        with self._reaching():
            self._release(keys=[_key(room, "lease")], args=[f"{fence} "])

    def lease_free(self, room: str) -> bool:
        with self._reaching():
            return not self._client.exists(_key(room, "lease"))

    def mark_seen(self, room: str, marks: dict[str, int]) -> None:
        with self._reaching():
            self._max(keys=[_key(room, "seen")], args=[x for pair in marks.items() for x in pair])

    def last_seen(self, room: str, participant_id: str) -> int | None:
        with self._reaching():
            raw = self._client.hget(_key(room, "seen"), participant_id)
        return None if raw is None else int(raw)

    def keep_spending(self, room: str, day: str, tokens: int) -> None:
        with self._reaching():
            self._client.set(f"chat:spent:{room}", f"{day} {tokens}", ex=SPENDING_KEPT_SECONDS)

    def spending(self, room: str) -> tuple[str | None, int]:
        with self._reaching():
            raw = self._client.get(f"chat:spent:{room}")
        if not raw:
            return None, 0
        day, _, tokens = raw.decode().partition(" ")
        return day, int(tokens)

    def claim(self, room: str, what: str, seconds: float, holder: str) -> bool:
        with self._reaching():
            keys = [_key(room, f"claim:{what}"), _key(room, "state")]
            return bool(self._claim(keys=keys, args=[holder, int(seconds * 1000)]))

    def release_claim(self, room: str, what: str) -> None:
        with self._reaching():
            self._client.delete(_key(room, f"claim:{what}"))

    def files(self, room: str, limit: int) -> RedisFiles:
        return RedisFiles(self, room, limit)

    # --- changes from every process --------------------------------------------------------------

    def listen(self, on_change: Callable[[str, int], None]) -> None:
        self._listener = threading.Thread(
            target=self._listen, args=(on_change,), name="redis-listener", daemon=True
        )
        self._listener.start()

    def _listen(self, on_change: Callable[[str, int], None]) -> None:
        backoff = 0.1
        while not self._stopped.is_set():
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(CHANNEL)
                # Whatever changed while nobody listened (a start, a lost connection) is read now.
                on_change("", -1)
                self.problem = None
                backoff = 0.1
                while not self._stopped.is_set():
                    notice = pubsub.get_message(timeout=1.0)
                    if notice is None:
                        continue
                    room, _, version = notice["data"].decode().partition(" ")
                    on_change(room, int(version))
            except (RedisError, OSError) as error:
                if self._stopped.is_set():
                    break
                log.warning("redis listener: %s; listening again in %.1f s", error, backoff)
                self.problem = UNREACHABLE
                self._stopped.wait(backoff)
                backoff = min(backoff * 2, 2.0)
            except Exception:
                log.exception("redis listener: a change could not be followed")
            finally:
                with contextlib.suppress(Exception):
                    pubsub.close()

    def close(self) -> None:
        self._stopped.set()
        if self._listener is not None and self._listener is not threading.current_thread():
            self._listener.join(timeout=3)
        self._client.close()

    def ping(self) -> None:
        with self._reaching():
            self._client.ping()


class RedisFiles:
    """One room's attached files in Redis, at most `limit` bytes; the oldest go first."""

    def __init__(self, store: RedisStore, room: str, limit: int):
        self.limit = limit
        self._store, self._client = store, store._client
        self._files, self._order, self._bytes = (_key(room, p) for p in ("files", "file-order", "file-bytes"))

    def put(self, attachment_id: str, data: bytes) -> list[str]:
        """Keep a file; return the ids of older files whose bytes were dropped to make room for it.

        One script, which adds a file only once: sent again after a lost reply, it changes nothing.
        """
        with self._store._reaching():
            dropped = self._store._put_file(
                keys=[self._files, self._order, self._bytes], args=[attachment_id, data, self.limit]
            )
        return [old.decode() for old in dropped]

    def _drop(self, attachment_id: str) -> int:
        pipe = self._client.pipeline(transaction=True)
        pipe.hstrlen(self._files, attachment_id)
        pipe.hdel(self._files, attachment_id)
        length = pipe.execute()[0]
        return int(self._client.decrby(self._bytes, length))

    def get(self, attachment_id: str) -> bytes | None:
        with self._store._reaching():
            return self._client.hget(self._files, attachment_id)

    def drop(self, attachment_id: str) -> None:
        with self._store._reaching():
            self._client.lrem(self._order, 0, attachment_id)
            self._drop(attachment_id)

    def clear(self) -> None:
        with self._store._reaching():
            self._client.delete(self._files, self._order, self._bytes)

    @property
    def size(self) -> int:
        with self._store._reaching():
            return int(self._client.get(self._bytes) or 0)
