"""The hub: every room by name, joining one, the reaper that removes people who left, and shutdown cleanup.

One hub per server process; the page scripts reach it through a `st.cache_resource` singleton. The
reaper never waits for the model's server: a room that emptied is marked closed at once, which leaves its
closing (its data, its conversation) as a job in the store, finished on a thread of its own by whichever
process holds the room's reaper claim: with Redis, a process that died midway leaves it to another.

Rooms live in the hub's store: this process's memory, or Redis (`REDIS_URL`), where every process serves
every room. There the hub keeps a copy of each room its pages show, brought up to date by the store's
change notices, and a process that stops closes no room: the rooms and their conversations wait in Redis.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable

from shared.assistant import Assistant, make_assistant
from shared.config import Settings
from shared.errors import ChatError, RoomClosed, RoomRefused
from shared.messages import Participant
from shared.nicknames import clean_nickname
from shared.room import CLOSE_WAIT_SECONDS, CLOSED, Room, lifetime
from shared.room.room import INVITE_BYTES
from shared.sessions import Sessions
from shared.store import Closing, Growth, Store, StoreUnavailable, make_store
from shared.worker.lease import HOLDER

log = logging.getLogger(__name__)

DEFAULT_ROOM = "lobby"
REAP_EVERY_SECONDS = 1.0
LIST_ROOMS_ROUNDS = 5  # how often (in reaper rounds) the rooms open on other processes are looked for
CLAIM_ROUNDS = 6  # a reaper claim lasts this many rounds: its holder's death delays reaping that long
CLOSING_RETRY_ROUNDS = 30  # a closing that failed (the store or the model's server) is tried again after
_ROOM_NAME = re.compile(r"[a-z0-9_-]{1,40}")
PRIVATE_ROOM = (
    "This room is private: only its invite link lets you in, so ask someone in it to send it to you."
)


class RoomNameInvalid(ChatError):
    """A room name in a link or the room form that the rules do not allow."""


def clean_room_name(raw: str | None) -> str:
    """The room's name as used everywhere (lower case), `lobby` when none is given."""
    name = (raw or "").strip().lower() or DEFAULT_ROOM
    if not _ROOM_NAME.fullmatch(name):
        raise RoomNameInvalid(
            "A room name has 1 to 40 characters: letters a-z, digits, “-” and “_”. "
            f"“{(raw or '')[:60]}” is not one."
        )
    return name


class Hub:
    def __init__(
        self,
        settings: Settings,
        assistant_factory: Callable[[Settings], Assistant] | None = None,
        *,
        reap_every: float = REAP_EVERY_SECONDS,
        clock: Callable[[], float] | None = None,
        store: Store | None = None,
    ):
        self.settings = settings
        # Looked up at call time, so tests can swap `make_assistant` for a fake.
        self.assistant = (assistant_factory or make_assistant)(settings)
        self.store = store if store is not None else make_store(settings)
        # The rooms' clock for presence; tests move it by hand. Processes sharing rooms share wall time.
        self._clock = clock or (time.time if self.store.shared else time.monotonic)
        self._rooms: dict[str, Room] = {}
        # The browser sessions of this process: the reaper beats for them, whatever page they show.
        self.sessions = Sessions(settings.heartbeat_timeout_seconds / 3)
        self._closing: list[threading.Thread] = []  # rooms' conversations being deleted off the reaper
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._reap_every = reap_every
        self._holder = f"{HOLDER}:{secrets.token_hex(4)}"  # this hub, as the reaper claim names it
        self._claims: dict[str, tuple[bool, float]] = {}  # room -> (reaper claim held, when to ask again)
        self._finishing: set[tuple[str, str]] = set()  # (room, generation) of the closings under way here
        self._closing_retry: dict[tuple[str, str], float] = {}  # a closing that failed here -> when to retry
        self._round = 0
        self._reaper = threading.Thread(
            target=self._reap_forever, args=(reap_every,), name="reaper", daemon=True
        )
        self._reaper.start()
        self.store.listen(self._follow)
        atexit.register(self.shutdown)

    @property
    def problem(self) -> str | None:
        """A sentence to show while the rooms' store cannot be reached."""
        return self.store.problem

    def _follow(self, name: str, version: int, grown: Growth | None = None) -> None:
        """A change was announced by some process (name "": anything may have changed; `grown`: it was
        only that reply's growth)."""
        with self._lock:
            rooms = (
                list(self._rooms.values()) if not name else [self._rooms[name]] if name in self._rooms else []
            )
        for room in rooms:
            if name:
                room.sync(version, grown)
            else:
                room.sync(again=version == 0)

    def room(self, name: str = DEFAULT_ROOM, invite: str | None = None) -> Room:
        """The room called `name`, opened (public) if none is: a join's, never a mere look's (`find`).

        A private room opens only with its invite secret; its name alone raises `RoomRefused`, as does
        a new room past `MAX_ROOMS`.
        """
        with self._lock:
            room = self._admitted(name, invite)
            return room if room is not None else self._new_room(name, private=False)

    def find(self, name: str, invite: str | None = None, *, member: str | None = None) -> Room | None:
        """The open room called `name`, or None if none is open. Looking at a room opens nothing: a
        stranger who tries many addresses fills no place under `MAX_ROOMS` and, with Redis, starts no
        reply worker in any process. Refuses (`RoomRefused`) what `room` refuses but the limit, except
        that a `member` (participant id) who is in a private room now needs no invite: its link changes
        when the host removes someone, and the people inside stay in."""
        with self._lock:
            return self._admitted(name, invite, member)

    def _admitted(self, name: str, invite: str | None, member: str | None = None) -> Room | None:
        """Under the hub's lock: the open room that `invite` (or being in it) lets in, or None if no room
        of that name is open (RoomRefused for an invite to a private room that has closed)."""
        room = self._open_room(name)
        if room is not None:
            if not room.admits(invite) and not (member and room.here(member)):
                raise RoomRefused(PRIVATE_ROOM)
            return room
        if invite:
            raise RoomRefused(
                f"The private room {name} has closed (everyone left), so its invite link no longer works."
            )
        return None

    def open_room(self, name: str, *, private: bool) -> Room:
        """Open a room from the Rooms page: an open public room of that name is simply joined.

        A private room gets an unguessable invite secret; its name must not be open already.
        """
        if private and name == DEFAULT_ROOM:
            raise RoomRefused(
                f"The {DEFAULT_ROOM} is open to everyone: pick another name for a private room."
            )
        with self._lock:
            room = self._open_room(name)
            if room is not None and (private or room.private):
                raise RoomRefused(f"A room called {name} is already open: pick another name for a new one.")
            return room or self._new_room(name, private=private)

    def _open_room(self, name: str) -> Room | None:
        """The open room of that name: this process's copy, or (with Redis) one open on another process.

        Called under the hub's lock. A hub that shut down opens nothing: its reaper may still be reading
        the rooms' names, and a room opened then would start a worker that nobody ever stops.
        """
        if self._stopped.is_set():
            raise RoomClosed(CLOSED)
        room = self._rooms.get(name)
        if room is not None and not room.closed:
            return room
        if not self.store.shared:
            return None
        try:  # open elsewhere: this process keeps a copy; a room that is not open stays unopened
            room = Room(name, self.settings, self.assistant, self.store, clock=self._clock, open_only=True)
        except RoomClosed:
            return None
        self._rooms[name] = room
        return room

    def _new_room(self, name: str, *, private: bool) -> Room:
        """Called under the hub's lock, after `_open_room` (which refuses once the hub shut down)."""
        open_now = len(self.store.room_names())  # with Redis, on every process
        if open_now >= self.settings.max_rooms:
            raise RoomRefused(
                f"No new room can open: the app's limit of {self.settings.max_rooms} open rooms is reached, "
                "so please join an open room or try again later."
            )
        room = self._rooms[name] = Room(
            name,
            self.settings,
            self.assistant,
            self.store,
            clock=self._clock,
            invite_secret=secrets.token_urlsafe(INVITE_BYTES) if private else None,
            # The default room belongs to nobody: whoever happens to come first must not rule it.
            hosted=name != DEFAULT_ROOM or self.settings.default_room_host,
        )
        return room

    def join(
        self, name: str, participant_id: str, nickname: str, session_id: str, invite: str | None = None
    ) -> tuple[Room, Participant]:
        """Join the room called `name`, opening it if nobody is in it: the person lands in an open room,
        never in one that just closed. A nickname the rules refuse opens nothing."""
        clean_nickname(nickname, self.settings.assistant_name)
        while True:
            room = self.room(name, invite)
            try:
                return room, room.join(participant_id, nickname, session_id)
            except RoomClosed:
                pass  # the reaper closed it between the two lines above: the next look-up makes a fresh one

    def rooms(self) -> list[Room]:
        """Every open room (with Redis, on any process)."""
        return [room for room in self._all_rooms() if not room.closed]

    def copies(self) -> list[Room]:
        """Every open room this process keeps a copy of, without asking the store: with Redis, the rooms
        its pages showed and those the reaper found listed (it looks every `LIST_ROOMS_ROUNDS` rounds), so
        a room opened on another process is here within seconds. Cheap enough for every page's every tick."""
        return [room for room in self._all_rooms(listed=False) if not room.closed]

    def _all_rooms(self, *, listed: bool = True) -> list[Room]:
        """Every room this process keeps a copy of; `listed`: first those the store lists, from any
        process (with Redis)."""
        if self.store.shared and listed:
            for name in self.store.room_names():
                with self._lock, contextlib.suppress(RoomClosed):
                    if self._open_room(name) is None:  # listed, yet closed: see `Store.keep_closing`
                        self.store.keep_closing(name)
        with self._lock:
            return list(self._rooms.values())

    def reap(self) -> None:
        """Remove people who left; close and forget rooms that stayed empty past the grace period.

        Never blocks: deleting a conversation may take a slow server's whole timeout, and presence in
        every other room must keep moving meanwhile.
        """
        self._round += 1
        # Rooms opened on other processes are looked for every few rounds: this process reaps them
        # only if the one that opened them has gone, and closings are announced anyway.
        for room in self._all_rooms(listed=self._round % LIST_ROOMS_ROUNDS == 1):
            if room.closed:  # another process closed it: this one forgets its copy
                self._forget(room)
                self._in_background(room.leave_process, f"leaving-{room.name}")
                continue
            room.flush_seen()
            if not self._reaps(room.name):
                continue
            room.reap()
            if room.close_if_idle_and_empty():
                self._forget(room)
                log.info("room %s emptied; closing it", room.name)
                self._in_background(functools.partial(room.leave_process, closing=True), f"left-{room.name}")
        self._finish_closings()

    def _finish_closings(self) -> None:
        """Finish every closing the store holds whose room's reaper claim this process holds or gets: the
        rooms it just closed, and any that another process closed and left unfinished (it died midway).
        Its holder renews the claim every round until the closing is done."""
        claim_seconds = self._reap_every * CLAIM_ROUNDS
        closings = self.store.closings()
        now = time.monotonic()
        with self._lock:
            jobs = {(c.room, c.generation) for c in closings}
            self._closing_retry = {k: t for k, t in self._closing_retry.items() if k in jobs}
        for closing in closings:
            key = (closing.room, closing.generation)
            with self._lock:
                under_way = key in self._finishing
                if not under_way and now < self._closing_retry.get(key, 0.0):
                    continue
            if self.store.claim_closing(closing, claim_seconds, self._holder) and not under_way:
                self._start_finishing(closing)

    def _start_finishing(self, closing: Closing) -> None:
        key = (closing.room, closing.generation)
        with self._lock:  # once per closing here; none once the hub shut down (it finishes its own)
            if self._stopped.is_set() or key in self._finishing:
                return
            self._finishing.add(key)
        self._in_background(functools.partial(self._finish, closing), f"closing-{closing.room}")

    def _finish(self, closing: Closing) -> None:
        key = (closing.room, closing.generation)
        try:
            lifetime.finish_closing(self.store, self.assistant, closing)
        except Exception:
            log.exception("room %s: closing it failed; it will be tried again", closing.room)
            with self._lock:
                self._closing_retry[key] = time.monotonic() + self._reap_every * CLOSING_RETRY_ROUNDS
        else:
            log.info("room %s closed", closing.room)
        finally:
            with self._lock:
                self._finishing.discard(key)

    def _reaps(self, name: str) -> bool:
        """Whether this process reaps the room this round. One process reaps a room at a time (with
        Redis, whoever holds its reaper claim), so people are let go by one clock and presence is read
        once a round, not once per process. The claim lasts `CLAIM_ROUNDS` rounds and is asked for
        again (renewed by its holder, tried by the others) every third of that."""
        now = time.monotonic()
        held, ask_at = self._claims.get(name, (False, 0.0))
        if now >= ask_at:
            claim_seconds = self._reap_every * CLAIM_ROUNDS
            held = self.store.claim(name, "reaper", claim_seconds, self._holder)
            self._claims[name] = (held, now + claim_seconds / 3)
        return held

    def _forget(self, room: Room) -> None:
        with self._lock:
            if self._rooms.get(room.name) is room:
                del self._rooms[room.name]
        self._claims.pop(room.name, None)

    def _in_background(self, work: Callable[[], None], name: str) -> None:
        closer = threading.Thread(target=work, name=name, daemon=True)
        with self._lock:  # started before anyone (shutdown) can see it and wait for it
            self._closing = [t for t in self._closing if t.is_alive()] + [closer]
            closer.start()

    def _reap_forever(self, every: float) -> None:
        while not self._stopped.wait(every):
            try:
                self.sessions.beat()
                self.reap()
            except StoreUnavailable:
                pass  # said on the pages; the next round tries again
            except Exception:
                log.exception("the reaper failed; it will try again")

    @staticmethod
    def _leave(room: Room) -> None:
        """This process stops serving a room that lives on in Redis: what its pages drew is told first."""
        with contextlib.suppress(ChatError):
            room.flush_seen(now=True)
        room.leave_process()

    def shutdown(self) -> None:
        """Close every room's conversation (in memory mode); called at exit and by tests.

        With Redis the rooms outlive this process: it only stops serving them.
        """
        with self._lock:  # from here on no room opens (see `_open_room`)
            self._stopped.set()
            rooms, self._rooms = list(self._rooms.values()), {}
        for room in rooms:  # side by side: one slow deletion must not hold up the others
            work = functools.partial(self._leave, room) if self.store.shared else room.close
            self._in_background(work, f"closing-{room.name}")
        if self._reaper is not threading.current_thread():
            self._reaper.join(timeout=CLOSE_WAIT_SECONDS)  # a round under way ends without opening a room
        with self._lock:
            closing = list(self._closing)
        # Enough for one whole request (a deletion that hangs) and a worker's last words; not for retries.
        deadline = time.monotonic() + self.settings.request_timeout_seconds + CLOSE_WAIT_SECONDS
        for closer in closing:
            closer.join(timeout=max(0.0, deadline - time.monotonic()))
        self.store.close()
        atexit.unregister(self.shutdown)
