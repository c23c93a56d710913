"""The browser sessions this process serves, the room and person each belongs to, and their heartbeat.

A person is in a room while a browser session of theirs is open in the app, whatever page it shows: the
chat page, *This room*, *Rooms* or *About*. So the heartbeat is the process's, not a page's: the hub's
reaper thread says, for every session here, that it still shows its room (`Room.attach`), every third of
`HEARTBEAT_TIMEOUT_SECONDS`. A closed tab is told by Streamlit on its event loop (`ended`), which only
notes it here; the reaper tells the room, so a slow store never holds the event loop. A process that
dies stops beating, and the other processes' reapers let its people go after the timeout.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared.errors import ChatError

if TYPE_CHECKING:
    from shared.room import Room

log = logging.getLogger(__name__)


@dataclass
class _Shown:
    room: Room
    participant_id: str
    beat_at: float  # monotonic time of the last heartbeat


class Sessions:
    def __init__(self, beat_every: float):
        self.beat_every = beat_every
        self._lock = threading.Lock()
        self._shown: dict[str, _Shown] = {}  # session id -> what it shows
        self._ended: list[tuple[str, _Shown]] = []  # sessions whose room has yet to be told they went

    def showing(self, session_id: str, room: Room, participant_id: str) -> None:
        """A page of this session shows `room` as `participant_id` (who was just attached there)."""
        with self._lock:
            before = self._shown.get(session_id)
            self._shown[session_id] = _Shown(room, participant_id, time.monotonic())
            if before is not None and before.room is not room:  # this tab moved to another room
                self._ended.append((session_id, before))

    def ended(self, session_id: str) -> None:
        """The session's tab closed. Called on Streamlit's event loop: no waiting on the store here."""
        with self._lock:
            shown = self._shown.pop(session_id, None)
            if shown is not None:
                self._ended.append((session_id, shown))

    def beat(self) -> None:
        """Tell the rooms which sessions went, and that the others are still here (the reaper's thread)."""
        now = time.monotonic()
        with self._lock:
            ended, self._ended = self._ended, []
            due = [(s, shown) for s, shown in self._shown.items() if now - shown.beat_at >= self.beat_every]
        for session_id, shown in ended:
            try:
                shown.room.detach(shown.participant_id, session_id)
            except ChatError as problem:  # the heartbeat timeout lets them go instead
                log.warning("room %s: a closed tab could not be told: %s", shown.room.name, problem)
        by_room: dict[Room, list[tuple[str, _Shown]]] = {}
        for session_id, shown in due:
            by_room.setdefault(shown.room, []).append((session_id, shown))
        for room, sessions in by_room.items():  # one heartbeat per room for all its sessions here
            here = (
                {} if room.closed else room.attach_all([(shown.participant_id, s) for s, shown in sessions])
            )
            with self._lock:
                for session_id, shown in sessions:
                    if self._shown.get(session_id) is not shown:
                        continue  # it moved or closed meanwhile
                    if session_id in here:
                        shown.beat_at = now
                    else:  # they left (Leave, another tab, the reaper) or the room closed: nothing to keep
                        del self._shown[session_id]
