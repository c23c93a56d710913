"""Where a room's state lives, and how a change to it is made and announced: the store seam.

A room's rules (`shared.room`) are written once, as changes to a `RoomState` and its messages made inside
`Store.change`: the store loads the state, the rule checks and then edits it, and the store commits every
edit at once or none. In memory (`memory.MemoryStore`, the default) a change holds the room's lock; in
Redis (`redis.RedisStore`) it is an optimistic transaction (`WATCH`/`MULTI`) retried when another process
changed the room first. Rules check first and edit after, and raise before their first edit.

Every committed change bumps the room's `version` and is announced to every process, whose local copy of
the room (`Room`'s mirror) then catches up by reading only what changed since the version it holds.
"""

from __future__ import annotations

import threading
import typing
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from shared.errors import ChatError
from shared.messages import Message, Notes, Participant, ReplyPolicy, Role
from shared.spending import Ledger

if TYPE_CHECKING:
    from shared.config import Settings


T = typing.TypeVar("T")


LOST = -1  # `Store.grow`: the reply in the store is not as long as its writer wrote it (writes were lost)


class StoreUnavailable(ChatError):
    """The rooms' store (Redis) cannot be reached; the sentence says so, and the app retries by itself."""


class RoomGone(Exception):
    """The room is no longer open in the store (it closed, maybe on another process)."""


class Growth(typing.NamedTuple):
    """A change that was only the streaming reply's growth: `words` appended at byte `offset` of its text."""

    reply_id: int
    offset: int  # the reply's length in UTF-8 bytes before `words`
    words: str


class Closing(typing.NamedTuple):
    """A room marked closed whose closing is unfinished: its data and its conversation are still to delete.

    Kept in the store from the change that closed the room, so a process that dies midway leaves the
    job to another (whoever holds the room's reaper claim; see `shared.room.lifetime.finish_closing`)."""

    room: str
    generation: str
    conversation: str | None  # at the model's server, still to delete


class Seen(typing.NamedTuple):
    """When a browser session last showed a room; `gone`: it closed then."""

    when: float
    gone: bool = False


@dataclass
class TurnRecord:
    """The turn in progress, as the store keeps it: which messages it answers and which worker writes it."""

    number: int
    message_ids: list[int]
    context_ids: list[int]
    addressees: list[str]
    fence: int  # the lease of the worker writing it; another worker that takes the room ends it


@dataclass
class RoomState:
    """Everything about a room except its messages' text: small, read and written whole by each change."""

    generation: str  # a room that closes and opens again under its name is a new generation
    created_at: datetime
    version: int = 0  # bumped by every committed change
    news_version: int = 0  # the last change that was not just the reply's growth
    people_version: int = 0  # the last join or leave
    message_count: int = 0  # message ids run 1..message_count
    participants: dict[str, Participant] = field(default_factory=dict)
    # Pressed Leave (participant -> when): their other tabs do not rejoin them quietly. Kept only as long
    # as those tabs need to notice (`shared.room.presence.LEFT_KEPT_HEARTBEATS`), so it does not grow with every leave.
    left_on_purpose: dict[str, float] = field(default_factory=dict)
    recent_posts: dict[str, list[float]] = field(default_factory=dict)  # participant id -> post times
    empty_since: float | None = None
    queue: list[int] = field(default_factory=list)  # messages awaiting a reply, in posting order
    carried_over: list[int] = field(default_factory=list)  # of a turn that failed before the assistant saw it
    context: list[int] = field(default_factory=list)  # said without asking the assistant, for its next turn
    policy: ReplyPolicy = ReplyPolicy.EVERY_MESSAGE
    policy_changes: int = 0
    turns: int = 0
    turn: TurnRecord | None = None
    reply_id: int | None = None
    fence: int = 0  # the lease of the worker allowed to write turns now
    conversation: str | None = None  # opened by the worker on the first turn, not on a join
    conversation_to_close: str | None = None  # set aside when the room closed (its `Closing` holds it too)
    closed: bool = False
    attachment_messages: dict[str, int] = field(default_factory=dict)  # attachment id -> its message id
    # The files whose bytes the room keeps (attachment id -> bytes), oldest first: counted here, so the files
    # that must go to stay within MAX_ROOM_ATTACHMENTS_MB are decided in the change that adds new ones,
    # never before it (a refused message lets nothing go). Older stored rooms lack it: their files count 0.
    kept_files: dict[str, int] = field(default_factory=dict)
    invite_secret: str | None = None  # a private room's: listed nowhere, entered only with it
    # Tokens the model used for the room since it opened, by kind (the daily budgets are the ledgers').
    usage: dict[str, int] = field(default_factory=dict)
    # What the room is for, written by its people ("Room instructions"): shown on its pages, in the
    # transcript's header, and given to the assistant with every turn after the app's own instructions.
    instructions: str = ""
    instructions_changes: int = 0
    instructions_locked: bool = False  # by the host: nobody may change them until the host unlocks them
    # The host (a participant id): whoever opened the room, then the longest-present person. Only the host
    # may remove people and lock the room; every such rule checks this, whatever the page showed.
    host: str | None = None
    # Whether the room has a host at all: not the default room (it belongs to nobody) unless
    # DEFAULT_ROOM_HOST says otherwise. Older stored rooms lack the field and keep their host.
    hosted: bool = True
    locked: bool = False  # nobody new may join; the people inside stay
    removed: list[str] = field(default_factory=list)  # participant ids the host removed, for the room's life
    # Reply policy "When it can help": messages said since the last decision, and what decisions said.
    undecided: list[int] = field(default_factory=list)
    batches_answered: int = 0
    batches_passed: int = 0
    # Messages taken back after the assistant saw them, as they were sent (the room no longer has their
    # text): the worker takes them out of the conversation before its next turn, then drops them here.
    # Kept in the state so a process that dies before that leaves the job to the next worker.
    to_forget: list[Message] = field(default_factory=list)
    # "Room notes": decisions, action items and open questions, changed only by the rules in
    # `shared.room.notes` (older stored rooms lack them: none yet).
    notes: Notes = field(default_factory=Notes)
    notes_changes: int = 0
    # People's messages said since the assistant last kept the notes (only when it keeps them with a
    # model request after each batch; the offline rule notes marked lines as they are posted).
    notes_pending: list[int] = field(default_factory=list)
    # The ids of the last changes committed (Redis): a change whose EXEC committed but whose reply was
    # lost finds its id here when it runs again, and is not made twice.
    recent_changes: list[str] = field(default_factory=list)

    @classmethod
    def fresh(cls, now: datetime) -> RoomState:
        return cls(generation=uuid.uuid4().hex, created_at=now)


def turn_writable(state: RoomState, fence: int | None, turn_number: int | None = None) -> bool:
    """The one answer to "may this worker still write": the worker holding `fence` writes the room's
    turns (it holds its lease, nobody took the room over, the room is open); with `turn_number`, that
    turn is also the one in progress (nobody stopped it, it did not end). Every rule a worker runs, and
    the reply's growth in both stores, ask this."""
    if fence is None or state.closed or state.fence != fence:
        return False
    return turn_number is None or (state.turn is not None and state.turn.number == turn_number)


def growing_reply(state: RoomState) -> tuple[int, int] | None:
    """The reply whose words may be appended now and the fence that appends them, or None: `Store.grow`
    appends only to this (in memory checked by the change; in Redis kept in the reply key's header)."""
    turn = state.turn
    if turn is None or state.reply_id is None or not turn_writable(state, turn.fence, turn.number):
        return None
    return state.reply_id, turn.fence


class RoomRecord:
    """A room as one process holds it: the state, every message, and the version of each one's last change.

    In memory mode this is the room itself; with Redis it is this process's copy, kept up to date.
    Waiting for a change is waiting on its conditions.
    """

    def __init__(self, state: RoomState):
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)  # any change, the reply's growth included
        self.news = threading.Condition(self.lock)  # any change but the reply's growth
        self.state = state
        self.messages: list[Message] = []
        self.versions: dict[int, int] = {}  # message id -> version of its last change, oldest first
        self.resets = 0  # times this copy was taken afresh from a store that lost its last writes

    def apply(self, state: RoomState, changed: list[tuple[Message, int]], *, news: bool) -> None:
        """Take a newer state and the messages changed with it (sorted by version); hold `lock`.

        `news`: the change is more than the reply's growth, so pages waiting for news wake up too.
        """
        for message, version in changed:
            if message.id <= len(self.messages):
                self.messages[message.id - 1] = message
            else:
                self.messages.extend([message] * (message.id - len(self.messages)))  # ids are dense
            self.versions.pop(message.id, None)  # to the end: the order is the order of changes
            self.versions[message.id] = version
        self.state = state
        self.changed.notify_all()
        if news:
            self.news.notify_all()

    def reset(self, state: RoomState, messages: list[tuple[Message, int]]) -> None:
        """Take the room afresh: every message as the store holds it now (the store came back without
        its last writes, so this copy was ahead of it); hold `lock`. Pages see `resets` move and draw
        the room again from scratch."""
        self.messages = [m for m, _ in sorted(messages, key=lambda pair: pair[0].id)]
        self.versions = {m.id: v for m, v in sorted(messages, key=lambda pair: pair[1])}
        self.state = state
        self.resets += 1
        self.changed.notify_all()
        self.news.notify_all()

    def grows(self, growth: Growth, version: int) -> bool:
        """Take the streaming reply's growth to `version` (with Redis, from its notice); hold `lock`.
        False if this copy's reply is not the one that grew, or not as long as the growth extends."""
        reply_id = growth.reply_id
        if self.state.reply_id != reply_id or reply_id > len(self.messages):
            return False
        reply = self.messages[reply_id - 1]
        if len(reply.text.encode()) != growth.offset:
            return False
        self.messages[reply_id - 1] = replace(reply, text=reply.text + growth.words)
        self.versions.pop(reply_id, None)
        self.versions[reply_id] = version
        self.state.version = version
        self.changed.notify_all()
        return True


class RoomChange:
    """One change to a room, made by a rule: the state to edit, messages to read, add and replace.

    The store subclasses it with how messages are read; edits are kept here until the store commits them.
    """

    def __init__(self, state: RoomState):
        self.state = state
        self.written: dict[int, Message] = {}  # messages added or replaced, by id
        self.growth_only = True  # only the reply's text grew: pages may wait for the next redraw
        self.people_changed = False
        self.skip = False  # the rule changed nothing: nothing to commit or announce
        self.presence_forgotten: set[str] = set()  # participants whose sessions go with this change
        # Files the room lets go of in this change (their messages say so): their bytes are dropped once
        # the change is committed, by whoever made it (`Room`).
        self.files_let_go: list[str] = []

    def nothing(self) -> None:
        """Say the rule found nothing to change."""
        self.skip = True

    def stamp(self) -> int:
        """Give the change its version, as the store commits it."""
        state = self.state
        state.version += 1
        if not self.growth_only:
            state.news_version = state.version
        if self.people_changed:
            state.people_version = state.version
        return state.version

    def _read(self, ids: list[int]) -> list[Message]:
        raise NotImplementedError

    def presence(self) -> dict[tuple[str, str], Seen]:
        """The room's presence (see `Store.presence`), read as part of this change: a session seen after
        this read makes the change run again on what is seen then (Redis), or waits for it (memory)."""
        raise NotImplementedError

    def forget_presence(self, participant_id: str) -> None:
        """Forget the person's sessions as `presence` read them, with this change (even one that changes
        nothing else): a session seen since then is not forgotten, because the change runs again."""
        self.presence_forgotten.add(participant_id)

    def messages(self, ids: list[int]) -> list[Message]:
        unread = [i for i in ids if i not in self.written]
        found = dict(zip(unread, self._read(unread), strict=True)) if unread else {}
        return [self.written.get(i) or found[i] for i in ids]

    def message(self, message_id: int) -> Message:
        return self.messages([message_id])[0]

    def history(self, before_id: int, limit: int) -> tuple[Message, ...]:
        """The last `limit` messages from people and the assistant before message `before_id` (none that
        its author took back)."""
        found: list[Message] = []
        end = before_id - 1
        while end >= 1 and len(found) < limit:
            start = max(1, end - 2 * limit + 1)
            chunk = self.messages(list(range(start, end + 1)))
            found = [m for m in chunk if m.role is not Role.SYSTEM and not m.deleted] + found
            end = start - 1
        return tuple(found[-limit:])

    def add(self, role: Role, text: str, now: datetime, **fields: Any) -> Message:
        self.state.message_count += 1
        message = Message(id=self.state.message_count, role=role, text=text, created_at=now, **fields)
        self.put(message)
        return message

    def put(self, message: Message, *, growth: bool = False) -> None:
        self.written[message.id] = message
        self.growth_only = self.growth_only and growth


class Store(Protocol):
    """Where rooms live. Every method may raise `StoreUnavailable`."""

    shared: bool  # True when other processes serve the same rooms (rooms outlive this process)
    lease_seconds: float  # a worker's lease ends this long after its last renewal (memory: never)
    problem: str | None  # a sentence for the pages while the store cannot be reached, else None

    def change(self, room: str, rule: typing.Callable[[RoomChange], T]) -> T:
        """Run `rule` as one atomic change to an open room; commit its edits unless it raises.

        The rule may run more than once (Redis retries it when another process changed the room first),
        so it only reads and edits the change; side effects come after. Raises `RoomGone` when the room
        is not open in the store.
        """

    def record(self, room: str) -> RoomRecord | None:
        """The store's own record of the room when it lives in this process (memory), else None."""

    def create(self, room: str, state: RoomState, first: Message, *, open_only: bool = False) -> RoomState:
        """Open the room under a new generation unless an open one exists; return the one that is open.

        With `open_only`, raise `RoomGone` instead of opening one.
        """

    def read(self, room: str, since_version: int) -> tuple[RoomState | None, list[tuple[Message, int]]]:
        """The room's state and the messages changed after `since_version`, each with its version."""

    def delete(self, room: str, generation: str) -> None:
        """Forget a closed room's data (its files too), unless another generation opened since."""

    def room_names(self) -> list[str]:
        """Every room that is open, on any process (a closed room whose closing is unfinished is not)."""

    # Closing a room, left unfinished by the change that closed it: a job kept in the store, finished by
    # whoever holds the room's reaper claim, whether or not it was the process that closed the room.
    def closings(self) -> list[Closing]:
        """The rooms marked closed whose closing is unfinished."""

    def claim_closing(self, closing: Closing, seconds: float, holder: str) -> bool:
        """The room's reaper claim (see `claim`), for finishing `closing`: False if another holds it or
        the job is done."""

    def closed(self, closing: Closing) -> None:
        """The job is done: the room's data and its conversation are gone."""

    def keep_closing(self, room: str) -> None:
        """A room still listed open although it is closed (an older version of the app closed it and kept
        the rest of its closing to itself, then maybe died): no longer listed, its closing made a job."""

    # Presence: the browser sessions showing a room, by (participant, session). Kept apart from the state:
    # a heartbeat is no change anyone needs to see.
    def seen(
        self, room: str, participant_id: str, session_id: str, when: float, *, gone: bool = False
    ) -> None: ...
    def seen_all(self, room: str, sessions: dict[tuple[str, str], float]) -> None:
        """Many sessions' heartbeats at once: (participant, session) -> when."""

    def presence(self, room: str) -> dict[tuple[str, str], Seen]: ...
    def forget_presence(self, room: str, participant_id: str) -> None: ...

    # What each person's pages last showed (for "Catch me up"): no change anyone needs to see either.
    def mark_seen(self, room: str, marks: dict[str, int]) -> None:
        """Raise each participant's newest message shown to at least the one given (never lower it)."""

    def last_seen(self, room: str, participant_id: str) -> int | None: ...

    # A room's token count on one UTC day, kept past its closing: a room that empties and reopens the same
    # day, on any process, keeps that day's budget spent (DAILY_TOKEN_BUDGET).
    # The token budgets (`shared.spending`): one UTC day's ledgers, the room's (by name, outliving the
    # room) and the app's (every room), changed together atomically on every process.
    def spend(
        self, room: str, day: str, rule: typing.Callable[[Ledger, Ledger], T], *, write: bool = True
    ) -> T:
        """Run `rule(room's ledger, app's ledger)` for `day` as one atomic change (`write` False: a read)."""

    # A claim: one holder at a time across processes (the room's reaper, one catch-up at a time per
    # person), lapsing by itself `seconds` after it was last made, in case its holder dies.
    def claim(self, room: str, what: str, seconds: float, holder: str) -> bool:
        """True if `what` was free or is `holder`'s already (the claim is renewed); False if another's."""

    def release_claim(self, room: str, what: str) -> None: ...

    def files(self, room: str) -> Any:
        """The room's attached files' bytes (put / get / drop / clear / size). What the room keeps, and
        what it lets go of past its limit, is decided in its changes (`RoomState.kept_files`)."""

    # The reply worker's lease: one worker writes a room's turns at a time, across processes.
    def take_lease(self, room: str, holder: str) -> int | None:
        """A new fence if the room's lease was free (now held by `holder`), else None. Greater than every
        fence handed out before, also those a store that lost its last writes forgot."""

    def renew_lease(self, room: str, fence: int) -> bool:
        """Keep holding the lease; False if it was lost (expired and taken, the store is gone, or it
        restarted since the lease was taken and may have lost what the worker wrote)."""

    def release_lease(self, room: str, fence: int) -> None: ...
    def lease_free(self, room: str) -> bool: ...

    # The reply's growth: its next words appended, fenced like every write of the worker's.
    def grow(self, room: str, reply_id: int, fence: int, offset: int, text: str) -> int | None:
        """Append `text` to reply `reply_id` while its turn is written under `fence`; the room's version
        after it, or None if that turn is over (stopped, taken over, the room closed). `offset`: the
        reply's length in UTF-8 bytes before `text`, so an append made twice is kept once; `LOST` if the
        store holds another length (it lost writes): nothing is appended."""

    def listen(self, on_change: typing.Callable[[str, int, Growth | None], None]) -> None:
        """Call `on_change(room, version, grown)` for every change committed by any other process, until
        `close`; `grown` when the change was only the reply's growth. Room "" means
        any room may have changed: version -1, read what changed; version 0, the store came back as
        another one (Redis restarted, maybe without its last writes): take every room afresh."""

    def ping(self) -> None:
        """Raise `StoreUnavailable` unless the store answers."""

    def close(self) -> None: ...


def make_store(settings: Settings) -> Store:
    if settings.redis_url:
        from shared.store.redis import RedisStore

        return RedisStore(settings.redis_url)
    from shared.store.memory import MemoryStore

    return MemoryStore()
