"""The hub: every room by name, the reaper that removes people who left, and shutdown cleanup.

One hub per server process; the page scripts reach it through a `st.cache_resource` singleton.
"""

from __future__ import annotations

import atexit
import logging
import re
import threading
from collections.abc import Callable

from shared.assistant import Assistant, make_assistant
from shared.config import Settings
from shared.errors import ChatError
from shared.room import Room

log = logging.getLogger(__name__)

DEFAULT_ROOM = "lobby"
REAP_EVERY_SECONDS = 1.0
_ROOM_NAME = re.compile(r"[a-z0-9_-]{1,40}")


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
    ):
        self.settings = settings
        # Looked up at call time, so tests can swap `make_assistant` for a fake.
        self.assistant = (assistant_factory or make_assistant)(settings)
        self._rooms: dict[str, Room] = {}
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._reaper = threading.Thread(
            target=self._reap_forever, args=(reap_every,), name="reaper", daemon=True
        )
        self._reaper.start()
        atexit.register(self.shutdown)

    def room(self, name: str = DEFAULT_ROOM) -> Room:
        """The room called `name`, created on first use (again after it emptied and closed)."""
        with self._lock:
            room = self._rooms.get(name)
            if room is None or room.closed:
                room = self._rooms[name] = Room(name, self.settings, self.assistant)
            return room

    def rooms(self) -> list[Room]:
        with self._lock:
            return list(self._rooms.values())

    def reap(self) -> None:
        """Remove people who left; close and forget rooms that stayed empty past the grace period."""
        for room in self.rooms():
            room.reap()
            if room.idle_and_empty():
                with self._lock:
                    if self._rooms.get(room.name) is room:
                        del self._rooms[room.name]
                log.info("room %s emptied; closing its conversation", room.name)
                room.close()

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
        for room in rooms:
            room.close()
        atexit.unregister(self.shutdown)
