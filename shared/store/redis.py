"""Rooms in Redis (`REDIS_URL`): every app process serves every room, and a restart forgets nothing.

Keys, for a room called NAME (room names are plain: a-z, digits, - and _; nothing secret is in a key):
- `chat:rooms`: the names of the open rooms (a set); a room leaves it in the change that closes it
- `chat:closing`: "NAME GENERATION" -> the conversation still to delete ("" if none), for each room marked
  closed whose closing is unfinished (a hash): a job that outlives the process that closed the room,
  finished by whoever holds the room's reaper claim (`shared.room.lifetime.finish_closing`)
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
- `chat:room:NAME:lease` / `:fence`: the reply worker's lease, "FENCE HOLDER", and the fence counter (never
  below Redis's clock in milliseconds, so it goes on rising after a Redis that lost its last writes)
  (every key of a room goes when it closes, and a room opened again under its name starts afresh)
- `chat:room:NAME:seen`: participant -> the newest message a page of theirs showed ("Catch me up")
- `chat:room:NAME:files` / `:file-order` / `:file-bytes`: attached files' bytes by attachment id, oldest
  first, and their total size (which files the room keeps is decided in its state: `kept_files`)
- `chat:room:NAME:claim:WHAT`: one holder at a time across processes (the room's reaper, a person's
  catch-up), lapsing by itself (not deleted with the room: the reaper's claim covers finishing its closing)
- `chat:spend:DAY:room:NAME` / `chat:spend:DAY:app`: the token budgets' ledgers for a UTC day (JSON: spent,
  reservations of calls under way, the last ones settled), the room's and every room's together; changed
  together in one transaction (`spend`), kept two days
Every change is announced on the channel `chat:changes` as "NAME VERSION ORIGIN" (ORIGIN: the store that
made it, which does not read back its own): a small notice; the data stays in the keys above, and each
process reads it once for all of its pages. The reply's growth is announced with its words, "NAME VERSION
ORIGIN REPLY_ID OFFSET WORDS", so the other processes add them without reading anything.

The Redis retry policy, for every kind of call, decided here:

| call | on a dropped connection or a time-out | why that is safe |
|---|---|---|
| reads (GET, HGET, SMEMBERS, EXISTS, the read script) | redis-py sends it again, up to `RETRIES` times, with jittered backoff | a read changes nothing |
| presence, "seen", the day's tokens, lease renewal and release (HSET, the max and lease scripts, SET) | the same | each sets a value: twice leaves what once leaves |
| taking the lease (one script, sent with INFO for the run id) | the same | sent again after a lost reply it finds the lease held and says so; that lease expires by itself |
| a room's change (WATCH, MULTI ... EXEC; the presence watched too when the rule reads it, the reaper's) | redis-py never sends EXEC again: it raises `WatchError` and the rule runs again on the room as it is now; the change's id, recorded in the state it committed, tells a rule whose EXEC did commit not to make the change twice | `change` |
| a change that loses to other processes' changes | run again up to `CONFLICT_RETRIES` times, with jittered backoff, then `StoreUnavailable` | a room that busy is a fault to report, not to spin on |
| a room's closing: its claim, its end, an older version's closed room made a job (one script each; its data's deletion is a change) | sent again | the claim sets a value, a job ended or made twice is so once; each step of `finish_closing` may run twice |
| a budget's reservation or settlement (WATCH both ledgers, MULTI ... EXEC) | the rule runs again on the ledgers as they are now | a reservation already made, or a settlement already counted, is found in the ledger and not made twice |
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
    Closing,
    Growth,
    Ledger,
    RoomChange,
    RoomGone,
    RoomRecord,
    RoomState,
    Seen,
    StoreUnavailable,
    T,
    growing_reply,
)

log = logging.getLogger(__name__)

CHANNEL = "chat:changes"
ROOMS = "chat:rooms"
CLOSING = "chat:closing"
LEASE_SECONDS = 5.0  # a dead worker's room is taken over after this long
RETRIES = 2  # a command is sent at most this many more times after a dropped connection or a time-out
CONFLICT_RETRIES = 50  # a change that keeps losing to other processes' changes gives up after this many
RECENT_CHANGES = 32  # change ids a room's state remembers, so a change that did commit is not made twice
BUSY = (
    "The room is too busy to take this change right now (other app processes kept changing it first); "
    "please try again."
)
SPENDING_KEPT_SECONDS = 2 * 24 * 3600  # a day's budget ledgers outlive the day in every time zone
UNREACHABLE = (
    "The rooms' store (Redis, set by REDIS_URL) cannot be reached right now; "
    "the app keeps trying and carries on by itself when it is back."
)
# KEYS: lease, fence, state; ARGV: holder, milliseconds. A new fence, or 0 if the lease is held or the room
# is gone (a closed room's keys are not made again). A fence is never below Redis's clock in milliseconds:
# a Redis that comes back without its last writes has its counter rolled back with them, and a fence
# counted from there could repeat one a worker still holds; its clock has moved on since (see `take_lease`).
_TAKE = (
    "if redis.call('exists', KEYS[1]) == 1 or redis.call('exists', KEYS[3]) == 0 then return 0 end "
    "local now = redis.call('time') "
    "local floor = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) "
    "local fence = redis.call('incr', KEYS[2]) "
    "if fence < floor then fence = floor redis.call('set', KEYS[2], string.format('%d', fence)) end "
    "redis.call('set', KEYS[1], string.format('%d', fence) .. ' ' .. ARGV[1], 'PX', ARGV[2]) return fence"
)
# KEYS: the claim, the room's state; ARGV: holder, milliseconds. 1 if it was free or is this holder's
# (then renewed), else 0; 0 for a room that is gone (its keys are not made again).
_CLAIM = (
    "local v = redis.call('get', KEYS[1]) "
    "if (v and v ~= ARGV[1]) or redis.call('exists', KEYS[2]) == 0 then return 0 end "
    "redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1"
)
# KEYS: the room's reaper claim, `CLOSING`; ARGV: holder, milliseconds, the closing's field. As `_CLAIM`, for
# finishing a room's closing: 0 once the job is done (its claim is not made again).
_CLAIM_CLOSING = (
    "local v = redis.call('get', KEYS[1]) "
    "if (v and v ~= ARGV[1]) or redis.call('hexists', KEYS[2], ARGV[3]) == 0 then return 0 end "
    "redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1"
)
# KEYS: `CLOSING`, the room's reaper claim, its state; ARGV: the closing's field. The job goes, and the claim
# with it unless the room opened again under its name (then it is its reaper's).
_CLOSED = (
    "redis.call('hdel', KEYS[1], ARGV[1]) "
    "if redis.call('exists', KEYS[3]) == 0 then redis.call('del', KEYS[2]) end return 0"
)
# KEYS: `ROOMS`, `CLOSING`, the room's state; ARGV: the room. A room still listed open whose state says closed
# (only an older version of the app closed a room without unlisting it): unlisted, its closing made a job.
_KEEP_CLOSING = """
if redis.call('sismember', KEYS[1], ARGV[1]) == 0 then return 0 end
local raw = redis.call('get', KEYS[3])
if raw then
  local state = cjson.decode(raw)
  if not state.closed then return 0 end
  local conversation = state.conversation_to_close
  if type(conversation) ~= 'string' then conversation = '' end
  redis.call('hset', KEYS[2], ARGV[1] .. ' ' .. state.generation, conversation)
end
redis.call('srem', KEYS[1], ARGV[1])
return 1
"""
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
    ]
    return [_key(room, part) for part in ([] if but_state else ["state"]) + parts]


# States and messages are kept as JSON (readable, and never code to run), written and read by pydantic.
_STATES = TypeAdapter(RoomState)
_LEDGERS = TypeAdapter(Ledger)
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


def _presence(raw: dict[bytes, bytes]) -> dict[tuple[str, str], Seen]:
    seen = {}
    for field, value in raw.items():
        participant_id, _, session_id = field.decode().partition(" ")
        where, _, when = value.decode().partition(" ")
        seen[participant_id, session_id] = Seen(float(when), gone=where == "gone")
    return seen


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
        self.presence_read: dict[bytes, bytes] = {}

    def presence(self) -> dict[tuple[str, str], Seen]:
        key = _key(self._room, "presence")
        self._pipe.watch(key)  # added to the room's keys: a heartbeat or a join since makes EXEC fail
        self.presence_read = self._pipe.hgetall(key)
        return _presence(self.presence_read)

    def forgotten_sessions(self) -> list[bytes]:
        """The presence fields (as read) of the people whose sessions this change forgets."""
        gone = self.presence_forgotten
        return [f for f in self.presence_read if f.decode().partition(" ")[0] in gone]

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
        self._claim_closing = self._client.register_script(_CLAIM_CLOSING)
        self._closed = self._client.register_script(_CLOSED)
        self._keep_closing = self._client.register_script(_KEEP_CLOSING)
        self._put_file = self._client.register_script(_PUT_FILE)
        self._read = self._client.register_script(_READ)
        self._grow = self._client.register_script(_GROW)
        self._stopped = threading.Event()
        self._listener: threading.Thread | None = None
        self._run_id: str | None = None  # the Redis server's, as the listener last saw it
        self._lock = threading.Lock()
        # (room, fence) -> the run id of the Redis that gave this store's workers their leases
        self._lease_runs: dict[tuple[str, int], str] = {}
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
            was_closed = state.closed
            result = rule(change)
            forgotten = change.forgotten_sessions()
            if change.skip and forgotten:  # only sessions to forget: no change anyone needs to see
                pipe.multi()
                pipe.hdel(_key(room, "presence"), *forgotten)
                pipe.execute()
                return result
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
            # The reply key's header says which reply may grow, under which fence (`growing_reply`).
            growing = growing_reply(state)
            reply = change.written.get(growing[0]) if growing is not None else None
            if reply is not None and growing is not None:  # a reply began: its words grow from here
                head = f"{growing[0]} {growing[1]}\n".encode()
                pipe.set(_key(room, "reply"), head + reply.text.encode())
            elif current.reply is not None and growing is None:  # its turn ended: its text is kept
                pipe.delete(_key(room, "reply"))
            if forgotten:
                pipe.hdel(_key(room, "presence"), *forgotten)
            if state.closed and not was_closed:  # no longer open; its closing is a job left in the store
                pipe.srem(ROOMS, room)
                pipe.hset(CLOSING, f"{room} {state.generation}", state.conversation_to_close or "")
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

    def closings(self) -> list[Closing]:
        with self._reaching():
            jobs = self._client.hgetall(CLOSING)
        found = []
        for field, conversation in jobs.items():
            room, _, generation = field.decode().partition(" ")
            found.append(Closing(room, generation, conversation.decode() or None))
        return found

    def claim_closing(self, closing: Closing, seconds: float, holder: str) -> bool:
        keys = [_key(closing.room, "claim:reaper"), CLOSING]
        with self._reaching():
            field = f"{closing.room} {closing.generation}"
            return bool(self._claim_closing(keys=keys, args=[holder, int(seconds * 1000), field]))

    def keep_closing(self, room: str) -> None:
        with self._reaching():
            if self._keep_closing(keys=[ROOMS, CLOSING, _key(room, "state")], args=[room]):
                log.warning("room %s was closed and left unfinished by an older version; finishing it", room)

    def closed(self, closing: Closing) -> None:
        keys = [CLOSING, _key(closing.room, "claim:reaper"), _key(closing.room, "state")]
        with self._reaching():
            self._closed(keys=keys, args=[f"{closing.room} {closing.generation}"])

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
            return _presence(self._client.hgetall(_key(room, "presence")))

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
        """A new fence, greater than any this Redis handed out before, even one it since lost (its clock
        is the floor); the lease is tied to the Redis that gave it (its run id): see `renew_lease`."""
        keys = [_key(room, "lease"), _key(room, "fence"), _key(room, "state")]
        with self._reaching():
            run_id, fence = self._with_run_id(
                lambda pipe: self._take(keys=keys, args=[holder, int(self.lease_seconds * 1000)], client=pipe)
            )
        if fence:
            with self._lock:
                self._lease_runs[room, int(fence)] = run_id
        return int(fence) or None

    def renew_lease(self, room: str, fence: int) -> bool:
        """False once the lease is gone, or Redis restarted since it was taken: a Redis that restarted may
        have come back without its last writes (the turn this worker writes, its fence's last use), so the
        worker stops writing and the room is taken over afresh."""
        with self._lock:
            taken_from = self._lease_runs.get((room, fence))
        lease_ms = int(self.lease_seconds * 1000)
        with self._reaching():
            run_id, renewed = self._with_run_id(
                lambda pipe: self._renew(
                    keys=[_key(room, "lease")], args=[f"{fence} ", lease_ms], client=pipe
                )
            )
        if taken_from is not None and run_id != taken_from:
            log.warning(
                "room %s: Redis restarted under the worker's lease (fence %d); it is dropped", room, fence
            )
            self.release_lease(room, fence)
            return False
        if not renewed:  # lost for good: its worker stops renewing it
            with self._lock:
                self._lease_runs.pop((room, fence), None)
        return bool(renewed)

    def release_lease(self, room: str, fence: int) -> None:
        with self._lock:
            self._lease_runs.pop((room, fence), None)
        with self._reaching():
            self._release(keys=[_key(room, "lease")], args=[f"{fence} "])

    def _with_run_id(self, command: Callable[[Any], Any]) -> tuple[str, Any]:
        """The Redis server's run id and `command`'s answer, sent together on one connection: both come
        from the same run of the server (a restart in between would have cut the connection)."""
        pipe = self._client.pipeline(transaction=False)
        pipe.info("server")
        command(pipe)
        info, answer = pipe.execute()
        return info.get("run_id", ""), answer

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

    def spend(self, room: str, day: str, rule: Callable[[Ledger, Ledger], T], *, write: bool = True) -> T:
        """Both ledgers watched, the rule run on them, both written back in one MULTI; again whenever
        another process changed either first."""
        keys = [f"chat:spend:{day}:room:{room}", f"chat:spend:{day}:app"]

        def ledgers(raws: list[bytes | None]) -> list[Ledger]:
            return [_LEDGERS.validate_json(raw) if raw else Ledger() for raw in raws]

        with self._reaching():
            if not write:
                return rule(*ledgers(self._client.mget(keys)))
            with self._client.pipeline() as pipe:
                for attempt in range(CONFLICT_RETRIES):
                    try:
                        pipe.watch(*keys)
                        mine, app = ledgers(pipe.mget(keys))
                        result = rule(mine, app)
                        pipe.multi()
                        for key, ledger in zip(keys, (mine, app), strict=True):
                            pipe.set(key, _LEDGERS.dump_json(ledger), ex=SPENDING_KEPT_SECONDS)
                        pipe.execute()
                        return result
                    except WatchError:
                        time.sleep(random.uniform(0, min(0.2, 0.002 * 2**attempt)))
                    finally:
                        pipe.reset()
        log.warning("redis: the token budgets' ledgers lost %d times in a row", CONFLICT_RETRIES)
        raise StoreUnavailable(BUSY)

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
