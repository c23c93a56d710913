"""A room as one process holds it: how its rules change it, and how pages read and follow it.

Rules change the room through `_change`, an atomic change in the room's store (see `shared.store`). Pages
read this process's record of the room (in memory mode the store's own; with Redis a copy, brought up to
date by `sync` when any process announces a change), so reading never waits for the store.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from shared.attachments import MB
from shared.errors import RoomClosed
from shared.messages import Message, Role, Status
from shared.room.views import RoomChanges, RoomStatus, RoomView
from shared.store import Growth, RoomChange, RoomGone, RoomRecord, RoomState, Store, StoreUnavailable, T
from shared.store.memory import MemoryStore

if TYPE_CHECKING:
    from shared.assistant import Assistant
    from shared.config import Settings

log = logging.getLogger(__name__)

CLOSE_WAIT_SECONDS = 5.0
CLOSED = "This room has just closed. Please reload the page to join it afresh."


def utcnow() -> datetime:
    return datetime.now(UTC)


class RoomCore:
    def __init__(
        self,
        name: str,
        settings: Settings,
        assistant: Assistant,
        store: Store | None = None,
        *,
        now: Callable[[], datetime] = utcnow,
        clock: Callable[[], float] = time.monotonic,
        open_only: bool = False,
        invite_secret: str | None = None,
        spent: tuple[str | None, int] = (None, 0),
    ):
        self.name = name
        self.settings = settings
        self.assistant = assistant
        self.store: Store = store if store is not None else MemoryStore()
        self._now = now
        self._clock = clock  # presence, rate limits and emptiness; wall time when processes share rooms
        self._sessions: set[str] = set()  # this process's browser sessions showing the room
        self._seen_due: dict[str, int] = {}  # participant -> newest message drawn, not yet told the store
        self._sessions_lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._here = True  # False once this process stops serving the room (closed, or shutting down)
        fresh = RoomState.fresh(now())
        fresh.empty_since = clock()
        # A private room is listed nowhere and lets in only who brings its invite secret (see `admits`).
        fresh.invite_secret = invite_secret
        # A room that emptied and reopens the same UTC day carries the day's token count over.
        fresh.usage_day, fresh.tokens_on_day = spent
        welcome = Message(
            id=1,
            role=Role.SYSTEM,
            text=f"Welcome to the room! {settings.assistant_name} answers every message.",
            created_at=fresh.created_at,
        )
        try:
            state = self.store.create(name, fresh, welcome, open_only=open_only)
        except RoomGone:
            raise RoomClosed(CLOSED) from None
        self.generation = state.generation
        self.created_at = state.created_at
        # Attached files' bytes, kept apart from the messages (which carry only what each file is).
        self.attachments = self.store.files(name, settings.max_room_attachments_mb * MB)
        record = self.store.record(name)
        if record is None:  # another process may hold it too: keep a copy, read from the start
            record = RoomRecord(RoomState(generation=state.generation, created_at=state.created_at))
        self._record = record
        self.sync()

    # --- following the store -------------------------------------------------------------------

    def sync(self, version: int | None = None, grown: Growth | None = None, *, again: bool = False) -> None:
        """Catch up with the store (a change up to `version` was announced; `grown`: it was only the
        reply's growth, whose words it carries; `again`: the store came back without its last writes,
        take the room afresh); nothing to do in memory."""
        if not self.store.shared:
            return  # the record is the store's own: every change is in it as it commits
        if again:
            self._take_afresh()
            return
        with self._sync_lock:
            with self._record.lock:
                held = self._record.state.version
                if version is not None and 0 < version <= held:
                    return
                if grown is not None and version == held + 1 and self._record.grows(grown, version):
                    return
            state, changed = self.store.read(self.name, held)
            with self._record.lock:
                if state is None or state.generation != self.generation:
                    self._gone()
                    return
                if state.version <= self._record.state.version:
                    return
                news = state.news_version != self._record.state.news_version
                changed.sort(key=lambda pair: pair[1])
                self._record.apply(state, changed, news=news)
            self._synced(state)

    def _take_afresh(self) -> None:
        """The store restarted: if it came back behind this copy (it lost its last writes), take the room
        afresh; if not, this is an ordinary catch-up and the pages carry on undisturbed."""
        with self._sync_lock:
            state, messages = self.store.read(self.name, 0)
            with self._record.lock:
                if state is None or state.generation != self.generation:
                    self._gone()
                    return
                held = self._record.state.version
                if state.version < held:
                    self._record.reset(state, messages)
                elif state.version > held:
                    changed = sorted(((m, v) for m, v in messages if v > held), key=lambda pair: pair[1])
                    news = state.news_version != self._record.state.news_version
                    self._record.apply(state, changed, news=news)
                else:
                    return
            self._synced(state)

    @property
    def resets(self) -> int:
        """How often this copy was taken afresh (a page that drew it before draws it all again)."""
        return self._record.resets

    def _synced(self, state: RoomState) -> None:
        """Another process's change arrived (the worker side uses it to hear a Stop)."""

    def _gone(self) -> None:
        """The room closed in the store; hold the record's lock."""
        self._here = False
        self._record.changed.notify_all()
        self._record.news.notify_all()

    def _change(self, rule: Callable[[RoomChange], T]) -> T:
        """Apply one rule as an atomic change; raise RoomClosed if the room is gone from the store."""
        last: list[RoomChange] = []  # the run that committed (Redis may run the rule more than once)

        def checked(change: RoomChange) -> T:
            if change.state.generation != self.generation:
                raise RoomGone(self.name)
            last[:] = [change]
            return rule(change)

        try:
            result = self.store.change(self.name, checked)
        except RoomGone:
            with self._record.lock:
                self._gone()
            raise RoomClosed(CLOSED) from None
        self._take_own(last[0])
        return result

    def _take_own(self, change: RoomChange) -> None:
        """Bring this process's copy up to the change it just committed (or found nothing to do in).

        The copy that held the version just before takes the change as it is, without reading back what
        this process has just written; one that is behind reads what changed, as on any notice.
        """
        if not self.store.shared:
            return  # the record is the store's own: the change is in it
        state = change.state
        with self._record.lock:
            applied = not change.skip and self._record.state.version == state.version - 1
            if applied:
                written = [(change.written[i], state.version) for i in sorted(change.written)]
                self._record.apply(state, written, news=not change.growth_only)
        if applied:
            self._synced(state)
        else:
            self.sync(state.version)

    # --- reading ---------------------------------------------------------------------------------

    @property
    def version(self) -> int:
        return self._record.state.version

    def view(self) -> RoomView:
        record = self._record
        with record.lock:
            return RoomView(
                name=self.name,
                version=record.state.version,
                messages=tuple(record.messages),
                participants=tuple(record.state.participants.values()),
                status=RoomStatus.of(record),
                reply_id=record.state.reply_id,
                created_at=self.created_at,
            )

    def changes_since(self, version: int) -> RoomChanges:
        """What changed after `version`: costs what changed, not what the room holds."""
        record = self._record
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

    def wait_for_change(self, since_version: int, timeout: float, *, reply_growth: bool = True) -> int:
        """Block until the room changes after `since_version` or the timeout passes; return the version.

        With `reply_growth=False` the reply's next words do not wake the caller, any other change does.
        """
        record = self._record
        with record.lock:
            if reply_growth:
                record.changed.wait_for(
                    lambda: record.state.version > since_version or not self._here, timeout
                )
            else:
                record.news.wait_for(
                    lambda: record.state.news_version > since_version or not self._here, timeout
                )
            return record.state.version

    def watchers(self) -> int:
        """How many browser sessions of this process show the room now."""
        with self._sessions_lock:
            return len(self._sessions)

    def token_usage(self) -> dict[str, int]:
        """Tokens the model has used for this room since it opened (turns and catch-ups), on any process."""
        with self._record.lock:
            return dict(self._record.state.usage)

    def conversation(self) -> str | None:
        with self._record.lock:
            return self._record.state.conversation

    @property
    def busy(self) -> bool:
        """Whether a reply is being written or messages wait for one."""
        with self._record.lock:
            return RoomStatus.of(self._record).busy

    @property
    def closed(self) -> bool:
        return not self._here or self._record.state.closed

    def notice(self, text: str, *, failure: bool = False) -> None:
        """A system line everyone sees; a failure is shown as one."""
        status = Status.ERROR if failure else Status.COMPLETE
        self._change(lambda change: change.add(Role.SYSTEM, text, self._now(), status=status))

    # --- closing ---------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the room for good: stop the worker and close the assistant's conversation."""
        with contextlib.suppress(RoomClosed):
            self._change(self._mark_closed)
        self.finish_closing()

    def close_if_idle_and_empty(self) -> bool:
        """Close the room if it is idle and empty; True if this call did. Then call `finish_closing`.

        Decided and marked in one change: a join either comes first (the room is no longer empty and
        stays) or finds the room closed (and the hub gives a fresh one). With Redis, exactly one process
        closes it. Nothing here waits for the model's server.
        """

        with self._record.lock:  # this process's copy says it is in use: no need to ask the store
            state = self._record.state
            if state.empty_since is None or state.turn is not None or state.queue:
                return False

        def close_if_idle(change: RoomChange) -> bool:
            state = change.state
            idle = (
                state.empty_since is not None
                and self._clock() - state.empty_since >= self.settings.room_empty_grace_seconds
                and state.turn is None
                and not state.queue
            )
            if state.closed or not idle:
                change.nothing()
                return False
            self._mark_closed(change)
            return True

        try:
            return self._change(close_if_idle)
        except RoomClosed:
            return False

    def _mark_closed(self, change: RoomChange) -> None:
        state = change.state
        if state.closed:
            change.nothing()
            return
        if state.turn is not None:
            self._end_turn(change)  # the reply keeps what it had; its late words are dropped
        state.closed = True
        if state.conversation is not None:
            state.conversation_to_close, state.conversation = state.conversation, None

    def finish_closing(self) -> None:
        """Close the conversation of a room marked closed, forget its data; may wait on the server."""

        def take_conversation(change: RoomChange) -> str | None:
            conversation = change.state.conversation_to_close
            if conversation is None:
                change.nothing()
            change.state.conversation_to_close = None
            return conversation

        try:
            conversation = self._change(take_conversation)
        except RoomClosed:
            conversation = None
        if conversation is not None:
            try:
                self.assistant.close_conversation(conversation)
            except Exception:
                log.exception("room %s: closing the conversation failed", self.name)
        with contextlib.suppress(StoreUnavailable):
            self.attachments.clear()
        self.store.delete(self.name, self.generation)
        self.leave_process(closing=True)

    def leave_process(self, *, closing: bool = False) -> None:
        """This process stops serving the room: it closed (`closing`), or the process stops and the room
        lives on in Redis."""
        with self._record.lock:
            self._gone()
        self._stop_worker(closing=closing)

    def _stop_worker(self, *, closing: bool) -> None:
        """Let the reply worker end; see the worker side."""
