"""Rooms in this process's memory: the default, needing nothing installed; a restart forgets them."""

from __future__ import annotations

import contextlib
import itertools
import math
import threading
import time
from collections.abc import Callable
from dataclasses import replace

from shared.attachments import AttachmentStore
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
    T,
    growing_reply,
)


class _MemoryChange(RoomChange):
    def __init__(self, record: RoomRecord, presence: Callable[[], dict[tuple[str, str], Seen]]):
        super().__init__(record.state)
        self._record = record
        self._presence = presence

    def _read(self, ids: list[int]) -> list[Message]:
        return [self._record.messages[i - 1] for i in ids]

    def presence(self) -> dict[tuple[str, str], Seen]:
        return self._presence()  # no session is seen meanwhile: that waits for the room's lock


class MemoryStore:
    shared = False
    lease_seconds = math.inf  # one process: a lease is held until released
    problem = None  # memory is always there

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rooms: dict[str, RoomRecord] = {}
        self._presence: dict[str, dict[tuple[str, str], Seen]] = {}
        self._leases: dict[str, int] = {}
        self._seen: dict[str, dict[str, int]] = {}  # room -> participant -> newest message shown
        self._files: dict[str, AttachmentStore] = {}
        self._fences = itertools.count(1)
        self._claims: dict[tuple[str, str], tuple[str, float]] = {}  # (room, what) -> holder, lapse time
        self._closings: dict[tuple[str, str], Closing] = {}  # (room, generation) -> its unfinished closing
        self._ledgers: dict[str, Ledger] = {}  # one UTC day's: room name -> its ledger, "" -> the app's
        self._ledger_day: str | None = None

    def _record(self, room: str) -> RoomRecord:
        with self._lock:
            record = self._rooms.get(room)
        if record is None:
            raise RoomGone(room)
        return record

    def record(self, room: str) -> RoomRecord | None:
        with self._lock:
            return self._rooms.get(room)

    def change(self, room: str, rule: Callable[[RoomChange], T]) -> T:
        record = self._record(room)
        with record.lock:
            change = _MemoryChange(record, lambda: self.presence(room))
            was_closed = record.state.closed
            result = rule(change)
            state = record.state
            if state.closed and not was_closed:
                with self._lock:
                    closing = Closing(room, state.generation, state.conversation_to_close)
                    self._closings[room, state.generation] = closing
            if not change.skip:
                version = change.stamp()
                written = sorted(change.written.values(), key=lambda m: m.id)
                record.apply(record.state, [(m, version) for m in written], news=not change.growth_only)
            for participant_id in change.presence_forgotten:
                self.forget_presence(room, participant_id)
            return result

    def create(self, room: str, state: RoomState, first: Message, *, open_only: bool = False) -> RoomState:
        with self._lock:
            record = self._rooms.get(room)
            if record is not None and not record.state.closed:
                return record.state
            if open_only:
                raise RoomGone(room)
            record = self._rooms[room] = RoomRecord(state)
            self._presence[room] = {}
            self._seen[room] = {}
            self._files.pop(room, None)
        with record.lock:
            state.message_count = first.id
            state.version = state.news_version = 1
            record.apply(state, [(first, 1)], news=True)
        return state

    def read(self, room: str, since_version: int) -> tuple[RoomState | None, list[tuple[Message, int]]]:
        record = self.record(room)
        if record is None:
            return None, []
        with record.lock:
            return record.state, [
                (record.messages[i - 1], v) for i, v in record.versions.items() if v > since_version
            ]

    def delete(self, room: str, generation: str) -> None:
        with self._lock:
            record = self._rooms.get(room)
            if record is not None and record.state.generation == generation:
                del self._rooms[room]
                self._presence.pop(room, None)
                self._leases.pop(room, None)
                self._seen.pop(room, None)
                files = self._files.pop(room, None)
                if files is not None:  # emptied too: a room of this generation may still hold it
                    files.clear()

    def room_names(self) -> list[str]:
        with self._lock:
            return [name for name, record in self._rooms.items() if not record.state.closed]

    def closings(self) -> list[Closing]:
        with self._lock:
            return list(self._closings.values())

    def claim_closing(self, closing: Closing, seconds: float, holder: str) -> bool:
        with self._lock:
            if (closing.room, closing.generation) not in self._closings:
                return False
        return self.claim(closing.room, "reaper", seconds, holder)

    def keep_closing(self, room: str) -> None:
        """A closed room is never listed here (and an older version's rooms died with its process)."""

    def closed(self, closing: Closing) -> None:
        with self._lock:
            self._closings.pop((closing.room, closing.generation), None)

    def _between_changes(self, room: str) -> contextlib.AbstractContextManager[object]:
        """A session is seen between the room's changes, never during one: a change that read the
        presence (the reaper's) forgets exactly what it read."""
        record = self.record(room)
        return record.lock if record is not None else contextlib.nullcontext()

    def seen(
        self, room: str, participant_id: str, session_id: str, when: float, *, gone: bool = False
    ) -> None:
        with self._between_changes(room), self._lock:
            self._presence.setdefault(room, {})[participant_id, session_id] = Seen(when, gone)

    def seen_all(self, room: str, sessions: dict[tuple[str, str], float]) -> None:
        with self._between_changes(room), self._lock:
            kept = self._presence.setdefault(room, {})
            for key, when in sessions.items():
                kept[key] = Seen(when)

    def presence(self, room: str) -> dict[tuple[str, str], Seen]:
        with self._lock:
            return dict(self._presence.get(room, {}))

    def forget_presence(self, room: str, participant_id: str) -> None:
        with self._lock:
            seen = self._presence.get(room, {})
            for key in [k for k in seen if k[0] == participant_id]:
                del seen[key]

    def mark_seen(self, room: str, marks: dict[str, int]) -> None:
        with self._lock:
            seen = self._seen.setdefault(room, {})
            for participant_id, message_id in marks.items():
                seen[participant_id] = max(message_id, seen.get(participant_id, 0))

    def last_seen(self, room: str, participant_id: str) -> int | None:
        with self._lock:
            return self._seen.get(room, {}).get(participant_id)

    def spend(self, room: str, day: str, rule: Callable[[Ledger, Ledger], T], *, write: bool = True) -> T:
        with self._lock:
            if day != self._ledger_day:
                if write and (self._ledger_day is None or day > self._ledger_day):
                    self._ledgers, self._ledger_day = {}, day  # only one day's ledgers matter
                else:  # a read of another day, or a late settlement of yesterday's: no ledger kept
                    return rule(Ledger(), Ledger())
            ledger = self._ledgers.setdefault(room, Ledger()) if write else self._ledgers.get(room, Ledger())
            return rule(ledger, self._ledgers.setdefault("", Ledger()))

    def claim(self, room: str, what: str, seconds: float, holder: str) -> bool:
        now = time.monotonic()
        with self._lock:
            held_by, lapses = self._claims.get((room, what), ("", 0.0))
            if lapses > now and held_by != holder:
                return False
            self._claims[room, what] = (holder, now + seconds)
            return True

    def release_claim(self, room: str, what: str) -> None:
        with self._lock:
            self._claims.pop((room, what), None)

    def files(self, room: str) -> AttachmentStore:
        with self._lock:
            if room not in self._files:
                self._files[room] = AttachmentStore()
            return self._files[room]

    # One process: the lease only keeps two workers of one room from overlapping.
    def take_lease(self, room: str, holder: str) -> int | None:
        with self._lock:
            if room in self._leases:
                return None
            fence = self._leases[room] = next(self._fences)
            return fence

    def renew_lease(self, room: str, fence: int) -> bool:
        with self._lock:
            return self._leases.get(room) == fence

    def release_lease(self, room: str, fence: int) -> None:
        with self._lock:
            if self._leases.get(room) == fence:
                del self._leases[room]

    def lease_free(self, room: str) -> bool:
        with self._lock:
            return room not in self._leases

    def grow(self, room: str, reply_id: int, fence: int, offset: int, text: str) -> int | None:
        def grow(change: RoomChange) -> bool:
            if growing_reply(change.state) != (reply_id, fence):
                change.nothing()
                return False
            reply = change.message(reply_id)
            change.put(replace(reply, text=reply.text + text), growth=True)
            return True

        try:
            record = self._record(room)
            grown = self.change(room, grow)
        except RoomGone:
            return None
        return record.state.version if grown else None

    def listen(self, on_change: Callable[[str, int, Growth | None], None]) -> None:
        """Nothing to listen to: a change in memory wakes the room's waiters as it commits."""

    def ping(self) -> None:
        """Memory is always there."""

    def close(self) -> None:
        pass
