"""The room as its reply worker sees it (`shared.worker.WorkerRoom`): waiting for work, and every rule of
`turns` and `decisions` the worker runs, each with the fence of the lease it holds.

The worker keeps its own lease, turn and reply; this side keeps nothing of them. Each method is one rule
run as an atomic change of the room; a `RoomClosed` or `StoreUnavailable` reaches the worker, which
decides what it means for the turn it writes.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING

from shared.errors import RoomClosed
from shared.room import decisions, turns
from shared.store import StoreUnavailable, T
from shared.worker import WorkerTask

if TYPE_CHECKING:
    from shared.messages import Batch, Decision, Turn
    from shared.room.mirror import Mirror
    from shared.room.room import Room
    from shared.store import Growth, RoomChange


def utc_day(now: datetime) -> str:
    """The UTC day (ISO) a room's daily token budget counts."""
    return now.astimezone(UTC).date().isoformat()


def keep_spending(room: Room, today: str, tokens: int | None) -> None:
    """A room's count for the day is kept apart from it too: its next opening today (on any process)
    starts from it."""
    if tokens is not None:
        with contextlib.suppress(StoreUnavailable):
            room.store.keep_spending(room.name, today, tokens)


class RoomForWorker:
    def __init__(
        self,
        room: Room,
        mirror: Mirror,
        change: Callable[[Callable[[RoomChange], T]], T],
        now: Callable[[], datetime],
    ):
        self.room = room
        self.name, self.settings, self.assistant, self.store = (
            room.name,
            room.settings,
            room.assistant,
            room.store,
        )
        self._mirror = mirror
        self._change = change
        self._now = now

    @property
    def serving(self) -> bool:
        return self._mirror.here

    def next_task(self, not_before: float, recheck: float | None) -> WorkerTask:
        """Block until the worker has something to do: answer the queued messages, or stop.

        "Answer" also when a turn is open that no worker of this process writes (its writer may have
        died, and taking the lease tells), and for messages awaiting a decision.
        """
        record = self._mirror.record
        with record.lock:
            while True:
                state = record.state
                if not self._mirror.here or state.closed:
                    return WorkerTask.STOP
                wanted = bool(state.queue) or state.turn is not None or bool(state.undecided)
                wait = not_before - time.monotonic()
                if wanted and wait <= 0:
                    return WorkerTask.ANSWER
                record.changed.wait(wait if wanted else recheck)

    def adopt(self, fence: int) -> None:
        self._change(lambda change: turns.adopt(change, fence, self._now()))

    def start_turn(self, fence: int | None) -> Turn | None:
        files = self.room.attachments.get
        return self._change(lambda change: turns.start_turn(change, self.name, fence, self._now(), files))

    def begin_reply(self, turn: Turn, fence: int | None, text: str) -> tuple[bool, int | None]:
        author = self.settings.assistant_name
        return self._change(lambda change: turns.begin_reply(change, turn, fence, text, author, self._now()))

    def took_growth(self, growth: Growth, version: int) -> None:
        self._mirror.take_growth(growth, version)

    def finish_turn(
        self, turn: Turn, fence: int | None, began: int | None, error: str | None, *, carry_over: bool
    ) -> None:
        today = utc_day(self._now())
        rule = partial(turns.finish_turn, turn=turn, fence=fence, began=began, today=today, error=error)
        tokens = self._change(lambda change: rule(change, carry_over=carry_over, now=self._now()))
        keep_spending(self.room, today, tokens)

    def conversation(self) -> str | None:
        return self.room.conversation()

    def set_conversation(self, conversation: str, fence: int | None) -> bool:
        """Keep the opened conversation; False if the room closed or another worker took it (close it)."""
        try:
            return self._change(partial(turns.set_conversation, conversation=conversation, fence=fence))
        except (RoomClosed, StoreUnavailable):
            return False

    def forget_conversation(self) -> None:
        with contextlib.suppress(RoomClosed, StoreUnavailable):
            self._change(turns.forget_conversation)

    def take_batch(self, fence: int | None) -> Batch | None:
        return self._change(partial(decisions.take_batch, fence=fence, room=self.name))

    def settle_batch(self, fence: int | None, batch: Batch, decision: Decision) -> bool:
        return self._change(partial(decisions.settle_batch, fence=fence, batch=batch, decision=decision))

    def notice(self, text: str, *, failure: bool = False) -> None:
        self.room.notice(text, failure=failure)

    def record_usage(self, usage: dict[str, int]) -> None:
        self.room.record_usage(usage)

    def tokens_today(self) -> int:
        return self.room.tokens_today()
