"""Rooms in Redis (`REDIS_URL`): every app process serves every room, and a restart forgets nothing.

Keys, for a room called NAME (room names are plain: a-z, digits, - and _; nothing secret is in a key):
- `chat:rooms`: the names of the open rooms (a set)
- `chat:room:NAME:state`: the room's `RoomState` as JSON, rewritten by every change
- `chat:room:NAME:version`: the room's version (the state's `version` field is this key's value when the
  state was last written: the reply's growth bumps the key alone)
- `chat:room:NAME:msgs`: message id -> the message as JSON (a hash)
- `chat:room:NAME:reply`: while a reply streams, "REPLY_ID FENCE" and a line break, then the reply's whole
  text so far. Its words are appended here (`grow`: a few commands, no rewrite of the state), and each
  process reads just this key back; the change that ends the turn writes the text into the message
- `chat:room:NAME:changes`: message id scored by the version of its last change (a sorted set), so a
  process catches up by reading only what changed after the version it holds
- `chat:room:NAME:presence`: "participant session" -> when last seen (negative: went away then)
- `chat:room:NAME:lease` / `:fence`: the reply worker's lease, "FENCE HOLDER", and the fence counter
  (every key of a room goes when it closes, and a room opened again under its name starts afresh)
- `chat:room:NAME:seen`: participant -> the newest message a page of theirs showed ("Catch me up")
- `chat:room:NAME:files` / `:file-order` / `:file-bytes`: attached files' bytes by attachment id, oldest
  first, and their total size (which files the room keeps is decided in its state: `kept_files`)
- `chat:room:NAME:claim:WHAT`: one holder at a time across processes (the room's reaper, a person's
  catch-up), lapsing by itself
- `chat:spent:NAME`: "DAY TOKENS", the room's token count on a UTC day; it outlives the room (for two
  days), so a room that empties and reopens the same day keeps that day's budget spent
Every change is announced on the channel `chat:changes` as "NAME VERSION ORIGIN" (ORIGIN: the store that
made it, which does not read back its own): a small notice; the data stays in the keys above, and each
process reads it once for all of its pages. The reply's growth is announced with its words, "NAME VERSION
ORIGIN REPLY_ID OFFSET WORDS", so the other processes add them without reading anything.

The Redis retry policy, for every kind of call, decided here:

| call | on a dropped connection or a time-out | why that is safe |
|---|---|---|
| reads (GET, HGET, SMEMBERS, EXISTS, the read script) | redis-py sends it again, up to `RETRIES` times, with jittered backoff | a read changes nothing |
| presence, "seen", the day's tokens, lease renewal and release (HSET, the max and lease scripts, SET) | the same | each sets a value: twice leaves what once leaves |
| taking the lease (one script) | the same | sent again after a lost reply it finds the lease held and says so; that lease expires by itself |
| a room's change (WATCH, MULTI ... EXEC) | redis-py never sends EXEC again: it raises `WatchError` and the rule runs again on the room as it is now; the change's id, recorded in the state it committed, tells a rule whose EXEC did commit not to make the change twice | `change` |
| a change that loses to other processes' changes | run again up to `CONFLICT_RETRIES` times, with jittered backoff, then `StoreUnavailable` | a room that busy is a fault to report, not to spin on |
| an attached file (one script: added only if its id is not there yet) | sent again | the script adds a file once |
| the reply's growth (one script: appended only while the reply's turn is this worker's, at the length the worker wrote so far) | the same | sent again, it finds its words already there and appends nothing |
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any, NamedTuple

import redis
from pydantic import TypeAdapter
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import RedisError, WatchError
from redis.retry import Retry

from shared.messages import Message
from shared.store import (
    Growth,
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
# KEYS: files, file-order, file-bytes; ARGV: id, bytes. Adds the file once; evicts nothing (the room's
# changes decide which files go past its limit, and drop them after they commit).
_PUT_FILE = """
if redis.call('hexists', KEYS[1], ARGV[1]) == 1 then return 0 end
redis.call('hset', KEYS[1], ARGV[1], ARGV[2])
redis.call('rpush', KEYS[2], ARGV[1])
redis.call('incrby', KEYS[3], string.len(ARGV[2]))
return 1
"""
# KEYS: reply, version; ARGV: "REPLY_ID FENCE\n", text, channel, room, reply id, the text's length (bytes)
# before this append, the writer's origin. The notice carries the words, so other processes need not
# read them back. Appends only while the reply's turn is still written under that fence (a change
# that ends the turn deletes the key) and at that length: sent again after a lost reply, it finds the text
# already there and appends nothing. Returns the room's version after the append, 0 if the turn is over,
# or -1 (`LOST`) if the reply is not as long as the worker wrote it (Redis lost writes).
_GROW = """
local head = ARGV[1]
if redis.call('getrange', KEYS[1], 0, #head - 1) ~= head then return 0 end
local length = redis.call('strlen', KEYS[1]) - #head
local before = tonumber(ARGV[6])
if length == before + #ARGV[2] then return tonumber(redis.call('get', KEYS[2])) end
if length ~= before then return -1 end
redis.call('append', KEYS[1], ARGV[2])
local version = redis.call('incr', KEYS[2])
redis.call('publish', ARGV[3], ARGV[4] .. ' ' .. version .. ' ' .. ARGV[7] .. ' ' .. ARGV[5] .. ' ' .. ARGV[6] .. ' ' .. ARGV[2])
return version
"""
# KEYS: state, version, reply, changes, msgs; ARGV: a version. The state, the version, the streaming
# reply's key, the ids and versions of the messages changed after ARGV[1] (flat), those messages, and
# the streaming reply's message (whose text the reply's key holds as it grows): one atomic read.
_READ = """
local top = redis.call('mget', KEYS[1], KEYS[2], KEYS[3])
if not top[1] then return {false, false, false, {}, {}, false} end
local changed = redis.call('zrangebyscore', KEYS[4], '(' .. ARGV[1], '+inf', 'WITHSCORES')
local texts = {}
local ids = {}
for i = 1, #changed, 2 do
  ids[#ids + 1] = changed[i]
  if #ids == 1000 or i + 2 > #changed then
    for _, text in ipairs(redis.call('hmget', KEYS[5], unpack(ids))) do texts[#texts + 1] = text end
    ids = {}
  end
end
local reply = false
if top[3] then reply = redis.call('hget', KEYS[5], string.match(top[3], '^(%d+) ')) end
return {top[1], top[2], top[3], changed, texts, reply}
"""
_RELEASE = (
    "local v = redis.call('get', KEYS[1]) "
    "if v and string.sub(v, 1, #ARGV[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
)


def _key(room: str, part: str) -> str:
    return f"chat:room:{room}:{part}"


def _room_keys(room: str, *, but_state: bool = False) -> list[str]:
    parts = [
        "version",
        "msgs",
        "reply",
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


class _Room(NamedTuple):
    """What a change reads first, in one command, under watch: the state, the version, the growing reply."""

    state: RoomState | None
    reply: tuple[int, bytes] | None  # the streaming reply's id and whole text so far


def _reply(raw: bytes | None) -> tuple[int, bytes] | None:
    if not raw:
        return None
    head, _, text = raw.partition(b"\n")
    return int(head.split()[0]), text


def _with_reply(message: Message, reply: tuple[int, bytes] | None) -> Message:
    """The message as it stands: a streaming reply's text is in its own key, not in the message yet."""
    if reply is None or reply[0] != message.id:
        return message
    return replace(message, text=reply[1].decode())


def _snapshot(state_raw: bytes | None, version: bytes | None, reply_raw: bytes | None) -> _Room:
    if state_raw is None:
        return _Room(None, None)
    state = _state(state_raw)
    state.version = int(version or state.version)
    return _Room(state, _reply(reply_raw))


class _RedisChange(RoomChange):
    def __init__(self, room: _Room, pipe: Any, name: str):
        assert room.state is not None
        super().__init__(room.state)
        self._pipe = pipe
        self._room = name
        self._reply = room.reply

    def _read(self, ids: list[int]) -> list[Message]:
        raws = self._pipe.hmget(_key(self._room, "msgs"), ids)
        if None in raws:  # the room was deleted under the change: run it again, to find it gone
            raise WatchError("the room's messages changed while they were read")
        return [_with_reply(_message(raw), self._reply) for raw in raws]


class RedisStore:
    shared = True

    def __init__(self, url: str, *, lease_seconds: float = LEASE_SECONDS):
        self.lease_seconds = lease_seconds
        self.problem: str | None = None  # the sentence to show while Redis cannot be reached
        options: dict[str, Any] = {
            "socket_timeout": 5,
            "socket_connect_timeout": 3,
            "health_check_interval": 10,
        }
        self._client = redis.Redis.from_url(
            url,
            **options,
            # redis-py's own default is 10 retries: a stalled Redis would hold a page for a minute.
            retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), RETRIES),
        )
        self._renew = self._client.register_script(_RENEW)
        self._release = self._client.register_script(_RELEASE)
        self._max = self._client.register_script(_MAX)
        self._take = self._client.register_script(_TAKE)
        self._claim = self._client.register_script(_CLAIM)
        self._put_file = self._client.register_script(_PUT_FILE)
        self._read = self._client.register_script(_READ)
        self._grow = self._client.register_script(_GROW)
        self._stopped = threading.Event()
        self._listener: threading.Thread | None = None
        self._run_id: str | None = None  # the Redis server's, as the listener last saw it
        # This store's mark on the changes it announces: this process takes in its own changes as it
        # commits them, so its listener skips their notices instead of reading them back.
        self._origin = uuid.uuid4().hex[:12]

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

    def _transaction(self, room: str, step: Callable[[Any, _Room], T]) -> T:
        """Run `step(pipe, room)` with the room watched, again whenever another process changed the room
        before `step`'s MULTI was executed; `step` reads in immediate mode, then queues writes."""
        keys = [_key(room, "state"), _key(room, "version"), _key(room, "reply")]
        with self._reaching(), self._client.pipeline() as pipe:
            for attempt in range(CONFLICT_RETRIES):
                try:
                    pipe.watch(*keys)
                    return step(pipe, _snapshot(*pipe.mget(keys)))
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

        def step(pipe: Any, current: _Room) -> T:
            state = current.state
            if state is None:
                raise RoomGone(room)
            if sent and change_id in state.recent_changes:
                pipe.unwatch()  # that EXEC committed; only its reply was lost: nothing more to do
                return sent[0]
            change = _RedisChange(current, pipe, room)
            result = rule(change)
            if change.skip:
                pipe.unwatch()
                return result
            version = change.stamp()
            state.recent_changes = [*state.recent_changes[1 - RECENT_CHANGES :], change_id]
            pipe.multi()
            pipe.set(_key(room, "state"), _STATES.dump_json(state))
            pipe.set(_key(room, "version"), version)
            if change.written:
                pipe.hset(
                    _key(room, "msgs"),
                    mapping={m.id: _MESSAGES.dump_json(m) for m in change.written.values()},
                )
                pipe.zadd(_key(room, "changes"), dict.fromkeys(change.written, version))
            reply = change.written.get(state.reply_id) if state.reply_id is not None else None
            if reply is not None and state.turn is not None:  # a reply began: its words grow from here
                head = f"{reply.id} {state.turn.fence}\n".encode()
                pipe.set(_key(room, "reply"), head + reply.text.encode())
            elif current.reply is not None and state.reply_id is None:  # its turn ended: its text is kept
                pipe.delete(_key(room, "reply"))
            pipe.publish(CHANNEL, f"{room} {version} {self._origin}")
            sent[:] = [result]
            pipe.execute()
            return result

        return self._transaction(room, step)

    def grow(self, room: str, reply_id: int, fence: int, offset: int, text: str) -> int | None:
        """Append `text` to the streaming reply at `offset`; the room's version after it, or None if its
        turn is over. One script of a few commands, announced as the reply's growth: other processes read
        back just the reply."""
        keys = [_key(room, "reply"), _key(room, "version")]
        args = [f"{reply_id} {fence}\n", text, CHANNEL, room, reply_id, offset, self._origin]
        with self._reaching():
            version = int(self._grow(keys=keys, args=args))
        return version or None

    def create(self, room: str, state: RoomState, first: Message, *, open_only: bool = False) -> RoomState:
        def step(pipe: Any, current: _Room) -> RoomState:
            if current.state is not None and not current.state.closed:
                return current.state
            if open_only:
                raise RoomGone(room)
            state.message_count = first.id
            state.version = state.news_version = 1
            pipe.multi()
            pipe.delete(*_room_keys(room, but_state=True))
            pipe.set(_key(room, "state"), _STATES.dump_json(state))
            pipe.set(_key(room, "version"), 1)
            pipe.hset(_key(room, "msgs"), first.id, _MESSAGES.dump_json(first))
            pipe.zadd(_key(room, "changes"), {first.id: 1})
            pipe.sadd(ROOMS, room)
            pipe.publish(CHANNEL, f"{room} 1 {self._origin}")
            pipe.execute()
            return state

        return self._transaction(room, step)

    def read(self, room: str, since_version: int) -> tuple[RoomState | None, list[tuple[Message, int]]]:
        """One script: the state, the messages changed after `since_version`, and a streaming reply as it
        stands (its growth is no change of the message: it is given at the room's version)."""
        keys = [_key(room, part) for part in ("state", "version", "reply", "changes", "msgs")]
        with self._reaching():
            state_raw, version, reply_raw, changed, raws, reply_raw_message = self._read(
                keys=keys, args=[since_version]
            )
        current = _snapshot(state_raw, version, reply_raw)
        if current.state is None:
            return None, []
        pairs = [
            (_with_reply(_message(text), current.reply), int(float(score)))
            for text, score in zip(raws, changed[1::2], strict=True)
            if text
        ]
        if current.reply is not None and reply_raw_message:  # its text may have grown since
            reply = _with_reply(_message(reply_raw_message), current.reply)
            pairs = [(m, v) for m, v in pairs if m.id != reply.id] + [(reply, current.state.version)]
        return current.state, pairs

    def delete(self, room: str, generation: str) -> None:
        def step(pipe: Any, current: _Room) -> None:
            if current.state is None or current.state.generation != generation:
                return
            pipe.multi()
            pipe.delete(*_room_keys(room))
            pipe.srem(ROOMS, room)
            pipe.publish(CHANNEL, f"{room} 0 {self._origin}")
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

    def seen_all(self, room: str, sessions: dict[tuple[str, str], float]) -> None:
        mapping = {f"{p} {s}": f"here {when!r}" for (p, s), when in sessions.items()}
        with self._reaching():
            self._client.hset(_key(room, "presence"), mapping=mapping)

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

    def files(self, room: str) -> RedisFiles:
        return RedisFiles(self, room)

    # --- changes from every process --------------------------------------------------------------

    def listen(self, on_change: Callable[[str, int, Growth | None], None]) -> None:
        self._listener = threading.Thread(
            target=self._listen, args=(on_change,), name="redis-listener", daemon=True
        )
        self._listener.start()

    def _listen(self, on_change: Callable[[str, int, Growth | None], None]) -> None:
        backoff = 0.1
        while not self._stopped.is_set():
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(CHANNEL)
                # redis-py reconnects and subscribes again by itself, unseen: told here, the listener
                # reads whatever was announced meanwhile (and notices a Redis that restarted).
                reconnects = _Reconnects()
                pubsub.connection.register_connect_callback(reconnects.noticed)
                self._catch_up(on_change)
                self.problem = None
                backoff = 0.1
                while not self._stopped.is_set():
                    notice = pubsub.get_message(timeout=1.0)
                    if reconnects.happened.is_set():
                        reconnects.happened.clear()
                        self._catch_up(on_change)
                    if notice is None:
                        continue
                    room, version, origin, *growth = notice["data"].decode().split(" ", 5)
                    if origin == self._origin:
                        continue  # this process's own change: taken in as it committed
                    grown = Growth(int(growth[0]), int(growth[1]), growth[2]) if growth else None
                    on_change(room, int(version), grown)
            except (RedisError, OSError, StoreUnavailable) as error:
                # A notice whose read failed is not lost: listening again reads whatever it missed.
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

    def _catch_up(self, on_change: Callable[[str, int, Growth | None], None]) -> None:
        """Whatever changed while nobody listened (a start, a lost connection) is read now; a Redis that
        restarted (another run id) may have come back without its last writes, so every room is then
        taken afresh. The run id is kept only once that worked (Redis may still be loading)."""
        run_id = self._client.info("server").get("run_id")
        again = self._run_id is not None and run_id != self._run_id
        if again:
            log.warning("redis restarted (run id %s); taking every room afresh", run_id)
        on_change("", 0 if again else -1, None)
        self._run_id = run_id

    def close(self) -> None:
        self._stopped.set()
        if self._listener is not None and self._listener is not threading.current_thread():
            self._listener.join(timeout=3)
        self._client.close()

    def ping(self) -> None:
        with self._reaching():
            self._client.ping()


class _Reconnects:
    """Told by redis-py each time the listener's connection is made again (a method: it keeps a weak one)."""

    def __init__(self) -> None:
        self.happened = threading.Event()

    def noticed(self, connection: Any) -> None:
        self.happened.set()


class RedisFiles:
    """One room's attached files' bytes in Redis."""

    def __init__(self, store: RedisStore, room: str):
        self._store, self._client = store, store._client
        self._files, self._order, self._bytes = (_key(room, p) for p in ("files", "file-order", "file-bytes"))

    def put(self, attachment_id: str, data: bytes) -> None:
        """Keep a file's bytes. One script, which adds a file only once: sent again after a lost reply, it
        changes nothing."""
        with self._store._reaching():
            self._store._put_file(keys=[self._files, self._order, self._bytes], args=[attachment_id, data])

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
