"""The browser sessions of this process that show a room, and what their pages drew.

A heartbeat is no change anyone needs to see, so presence is kept in the store apart from the room's
state (`Store.seen`), and so are the newest messages each person's pages drew (for "New since you were
last here"): those are gathered here and told to the store at most every `SEEN_FLUSH_SECONDS`.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import TYPE_CHECKING

from shared.store import StoreUnavailable

if TYPE_CHECKING:
    from shared.messages import Participant
    from shared.store import Store

# How often a process tells the store what its pages drew: what someone saw a moment before they went
# matters little to "New since you were last here", and every flush is three commands.
SEEN_FLUSH_SECONDS = 5.0


class SeenMarks:
    def __init__(self, store: Store, room: str):
        self.store = store
        self.room = room
        self._lock = threading.Lock()
        self._sessions: set[str] = set()  # this process's browser sessions showing the room
        self._due: dict[str, int] = {}  # participant -> newest message drawn, not yet told the store
        self._flush_at = 0.0  # monotonic time before which `flush` waits

    def attach(self, session_id: str) -> None:
        with self._lock:
            self._sessions.add(session_id)

    def beat(self, sessions: list[tuple[str, str]], here: dict[str, Participant], clock: float) -> None:
        """Sessions (participant, session) of people `here` (by session) show the room: one heartbeat."""
        with contextlib.suppress(StoreUnavailable):  # a missed heartbeat is made up by the next one
            self.store.seen_all(self.room, {(p, s): clock for p, s in sessions if s in here})
        with self._lock:
            self._sessions.update(here)

    def detach(self, participant_id: str, session_id: str, clock: float, *, here: bool) -> None:
        """The session went away; if its person is `here`, the store hears when (the reaper's grace)."""
        with self._lock:
            self._sessions.discard(session_id)
        if here:
            with contextlib.suppress(StoreUnavailable):  # then the heartbeat timeout tells instead
                self.store.seen(self.room, participant_id, session_id, clock, gone=True)

    def watchers(self) -> int:
        with self._lock:
            return len(self._sessions)

    def mark(self, participant_id: str, session_id: str, message_id: int) -> None:
        """A page of this person drew the room up to `message_id`; a closed tab's page no longer counts."""
        with self._lock:
            if session_id in self._sessions and message_id > self._due.get(participant_id, 0):
                self._due[participant_id] = message_id

    def flush(self, *, now: bool = False) -> None:
        """Tell the store what this process's pages drew since the last time, at most every
        `SEEN_FLUSH_SECONDS` (`now`: at once, as this process stops serving the room)."""
        with self._lock:
            if not now and time.monotonic() < self._flush_at:
                return
            due, self._due = self._due, {}
            self._flush_at = time.monotonic() + SEEN_FLUSH_SECONDS
        if not due:
            return
        try:
            self.store.mark_seen(self.room, due)
        except StoreUnavailable:
            with self._lock:  # told with the next flush
                for participant_id, message_id in due.items():
                    self._due[participant_id] = max(message_id, self._due.get(participant_id, 0))

    def last(self, participant_id: str) -> int | None:
        """The newest message a page of this person showed in this room; None if none ever did."""
        with self._lock:
            due = self._due.get(participant_id)
        try:
            stored = self.store.last_seen(self.room, participant_id)
        except StoreUnavailable:
            stored = None
        return max((n for n in (due, stored) if n is not None), default=None)
