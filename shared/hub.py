"""The hub: every room by name, joining one, the reaper that removes people who left, and shutdown cleanup.

One hub per server process; the page scripts reach it through a `st.cache_resource` singleton. The
reaper never waits for the model's server: a room that emptied is marked closed at once, and its
conversation is deleted on a thread of its own.
"""

from __future__ import annotations

import atexit
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
from shared.room import CLOSE_WAIT_SECONDS, Room

log = logging.getLogger(__name__)

DEFAULT_ROOM = "lobby"
REAP_EVERY_SECONDS = 1.0
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
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self.settings = settings
        # Looked up at call time, so tests can swap `make_assistant` for a fake.
        self.assistant = (assistant_factory or make_assistant)(settings)
        self._monotonic = monotonic  # the rooms' clock for presence; tests move it by hand
        self._rooms: dict[str, Room] = {}
        self._spent: dict[str, tuple] = {}  # closed rooms' tokens today, by name (see `Room.spending`)
        self._closing: list[threading.Thread] = []  # rooms' conversations being deleted off the reaper
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._reaper = threading.Thread(
            target=self._reap_forever, args=(reap_every,), name="reaper", daemon=True
        )
        self._reaper.start()
        atexit.register(self.shutdown)

    def room(self, name: str = DEFAULT_ROOM, invite: str | None = None) -> Room:
        """The room called `name`, created (public) on first use, again after it emptied and closed.

        A private room opens only with its invite secret; its name alone raises `RoomRefused`, as does
        a new room past `MAX_ROOMS`.
        """
        with self._lock:
            room = self._open_room(name)
            if room is not None:
                if not room.admits(invite):
                    raise RoomRefused(PRIVATE_ROOM)
                return room
            if invite:
                raise RoomRefused(
                    f"The private room {name} has closed (everyone left), so its invite link no longer works."
                )
            return self._new_room(name, private=False)

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
        room = self._rooms.get(name)
        return None if room is None or room.closed else room

    def _new_room(self, name: str, *, private: bool) -> Room:
        """Called under the hub's lock."""
        open_now = sum(not r.closed for r in self._rooms.values())
        if open_now >= self.settings.max_rooms:
            raise RoomRefused(
                f"No new room can open: the app's limit of {self.settings.max_rooms} open rooms is reached, "
                "so please join an open room or try again later."
            )
        closed = self._rooms.get(name)  # closed, but not yet forgotten by the reaper
        spent = closed.spending() if closed is not None else self._spent.pop(name, (None, 0))
        room = self._rooms[name] = Room(
            name,
            self.settings,
            self.assistant,
            monotonic=self._monotonic,
            invite_secret=secrets.token_urlsafe(24) if private else None,
            spent=spent,
        )
        return room

    def join(
        self, name: str, participant_id: str, nickname: str, session_id: str, invite: str | None = None
    ) -> tuple[Room, Participant]:
        """Join the room called `name`: the person lands in an open room, never in one that just closed."""
        while True:
            room = self.room(name, invite)
            try:
                return room, room.join(participant_id, nickname, session_id)
            except RoomClosed:
                pass  # the reaper closed it between the two lines above: the next look-up makes a fresh one

    def rooms(self) -> list[Room]:
        with self._lock:
            return list(self._rooms.values())

    def reap(self) -> None:
        """Remove people who left; close and forget rooms that stayed empty past the grace period.

        Never blocks: deleting a conversation may take a slow server's whole timeout, and presence in
        every other room must keep moving meanwhile.
        """
        for room in self.rooms():
            room.reap()
            if room.close_if_idle_and_empty():
                spent = room.spending()
                with self._lock:
                    if self._rooms.get(room.name) is room:  # else a new room already took its count
                        del self._rooms[room.name]
                        # Only today's counts matter; older ones go as the next room closes.
                        self._spent = {n: s for n, s in self._spent.items() if s[0] == spent[0]}
                        if spent[1]:
                            self._spent[room.name] = spent
                log.info("room %s emptied; closing its conversation", room.name)
                self._in_background(room.finish_closing, f"closing-{room.name}")

    def _in_background(self, work: Callable[[], None], name: str) -> None:
        closer = threading.Thread(target=work, name=name, daemon=True)
        with self._lock:
            self._closing = [t for t in self._closing if t.is_alive()] + [closer]
        closer.start()

    def _reap_forever(self, every: float) -> None:
        while not self._stopped.wait(every):
            try:
                self.reap()
            except Exception:
                log.exception("the reaper failed; it will try again")

    def shutdown(self) -> None:
        """Close every room's conversation; called at exit and by tests."""
        self._stopped.set()
        with self._lock:
            rooms, self._rooms = list(self._rooms.values()), {}
        for room in rooms:  # side by side: one slow deletion must not hold up the others
            self._in_background(room.close, f"closing-{room.name}")
        with self._lock:
            closing = list(self._closing)
        # Enough for one whole request (a deletion that hangs) and a worker's last words; not for retries.
        deadline = time.monotonic() + self.settings.request_timeout_seconds + CLOSE_WAIT_SECONDS
        for closer in closing:
            closer.join(timeout=max(0.0, deadline - time.monotonic()))
        atexit.unregister(self.shutdown)
