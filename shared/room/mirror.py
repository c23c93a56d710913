"""This process's copy of a room, kept up to date with the store, and what pages read of it.

In memory mode the copy is the store's own record, so every change is in it as it commits. With Redis it
is a copy, brought up to date by `sync` when any process announces a change, and by `take_own` with each
change this process commits (without reading back what it just wrote). Reading never waits for the store.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime

from shared.errors import RoomClosed
from shared.messages import Message
from shared.room.presence import CLOSED
from shared.room.views import RoomChanges, RoomStatus, RoomView
from shared.store import Growth, RoomChange, RoomGone, RoomRecord, RoomState, Store


class Mirror:
    """One room as this process holds it. `on_synced` is called after another process's change (or one of
    this process's) arrived in a shared store's copy: the room's worker hears a Stop through it."""

    def __init__(self, store: Store, name: str, record: RoomRecord, on_synced: Callable[[], None]):
        self.store = store
        self.name = name
        self.record = record
        self.generation = record.state.generation
        self.here = True  # False once this process stops serving the room (closed, or shutting down)
        self._on_synced = on_synced
        self._sync_lock = threading.Lock()

    @classmethod
    def open(
        cls,
        store: Store,
        name: str,
        fresh: RoomState,
        first: Message,
        *,
        open_only: bool,
        on_synced: Callable[[], None],
    ) -> Mirror:
        """Open the room in the store (or find it open, maybe on another process) and follow it; raise
        `RoomClosed` if `open_only` and it is not open."""
        try:
            state = store.create(name, fresh, first, open_only=open_only)
        except RoomGone:
            raise RoomClosed(CLOSED) from None
        record = store.record(name)
        if record is None:  # another process may hold it too: keep a copy, read from the start
            record = RoomRecord(RoomState(generation=state.generation, created_at=state.created_at))
        mirror = cls(store, name, record, on_synced)
        mirror.sync()
        return mirror

    def sync(self, version: int | None = None, grown: Growth | None = None, *, again: bool = False) -> None:
        """Catch up with the store (a change up to `version` was announced; `grown`: it was only the
        reply's growth, whose words it carries; `again`: the store came back without its last writes,
        take the room afresh); nothing to do in memory."""
        if not self.store.shared:
            return
        if again:
            self._take_afresh()
            return
        record = self.record
        with self._sync_lock:
            with record.lock:
                held = record.state.version
                if version is not None and 0 < version <= held:
                    return
                if grown is not None and version == held + 1 and record.grows(grown, version):
                    return
            state, changed = self.store.read(self.name, held)
            with record.lock:
                if state is None or state.generation != self.generation:
                    self._gone()
                    return
                if state.version <= record.state.version:
                    return
                news = state.news_version != record.state.news_version
                changed.sort(key=lambda pair: pair[1])
                record.apply(state, changed, news=news)
        self._on_synced()

    def _take_afresh(self) -> None:
        """The store restarted: if it came back behind this copy (it lost its last writes), take the room
        afresh; if not, this is an ordinary catch-up and the pages carry on undisturbed."""
        record = self.record
        with self._sync_lock:
            state, messages = self.store.read(self.name, 0)
            with record.lock:
                if state is None or state.generation != self.generation:
                    self._gone()
                    return
                held = record.state.version
                if state.version < held:
                    record.reset(state, messages)
                elif state.version > held:
                    changed = sorted(((m, v) for m, v in messages if v > held), key=lambda pair: pair[1])
                    record.apply(state, changed, news=state.news_version != record.state.news_version)
                else:
                    return
        self._on_synced()

    def take_own(self, change: RoomChange) -> None:
        """Bring the copy up to the change this process just committed (or found nothing to do in).

        The copy that held the version just before takes the change as it is, without reading back what
        this process has just written; one that is behind reads what changed, as on any notice.
        """
        if not self.store.shared:
            return
        state = change.state
        with self.record.lock:
            applied = not change.skip and self.record.state.version == state.version - 1
            if applied:
                written = [(change.written[i], state.version) for i in sorted(change.written)]
                self.record.apply(state, written, news=not change.growth_only)
        if applied:
            self._on_synced()
        else:
            self.sync(state.version)

    def take_growth(self, growth: Growth, version: int) -> None:
        """Bring the copy up to the reply's growth this process just wrote, without reading it back."""
        if not self.store.shared:
            return
        with self.record.lock:
            if self.record.state.version == version - 1 and self.record.grows(growth, version):
                return
        self.sync(version)

    def gone(self) -> None:
        """The room closed in the store, or this process stops serving it: every waiter wakes."""
        with self.record.lock:
            self._gone()

    def _gone(self) -> None:  # hold the record's lock
        self.here = False
        self.record.changed.notify_all()
        self.record.news.notify_all()

    # --- reading ---------------------------------------------------------------------------------

    def view(self, created_at: datetime) -> RoomView:
        record = self.record
        with record.lock:
            return RoomView(
                name=self.name,
                version=record.state.version,
                messages=tuple(record.messages),
                participants=tuple(record.state.participants.values()),
                status=RoomStatus.of(record),
                reply_id=record.state.reply_id,
                created_at=created_at,
            )

    def changes_since(self, version: int) -> RoomChanges:
        """What changed after `version`: costs what changed, not what the room holds."""
        record = self.record
        with record.lock:
            changed = []
            for message_id in reversed(record.versions):
                if record.versions[message_id] <= version:
                    break
                changed.append(record.messages[message_id - 1])
            state = record.state
            return RoomChanges(
                version=state.version,
                messages=tuple(sorted(changed, key=lambda m: m.id)),
                participants=tuple(state.participants.values()) if state.people_version > version else None,
                status=RoomStatus.of(record),
            )

    def after(self, message_id: int) -> tuple[int, tuple[Message, ...]]:
        """The room's version and its messages after `message_id`: costs those messages, not the room."""
        record = self.record
        with record.lock:
            return record.state.version, tuple(record.messages[max(0, message_id) :])  # ids are dense

    def wait_for_change(self, since_version: int, timeout: float, *, reply_growth: bool = True) -> int:
        """Block until the room changes after `since_version` or the timeout passes; return the version.
        With `reply_growth=False` the reply's next words do not wake the caller, any other change does."""
        record = self.record
        with record.lock:
            if reply_growth:
                record.changed.wait_for(
                    lambda: record.state.version > since_version or not self.here, timeout
                )
            else:
                record.news.wait_for(
                    lambda: record.state.news_version > since_version or not self.here, timeout
                )
            return record.state.version
