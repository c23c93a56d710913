"""The reply worker's side of the room: its lease, its turns, the reply as it grows, the conversation.

One worker writes a room's turns at a time. It takes the room's lease from the store (in memory a plain
flag; with Redis a key that expires unless renewed, so a worker whose process died loses it within
`LEASE_SECONDS`), and every write it makes is fenced: it carries the lease's fence, and the store's state
says which fence may write now. A worker that takes over a room ends the turn its dead predecessor left
open, once, and the messages of that turn go to the assistant again with the next message.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC

from shared.errors import ChatError, ReplyNotWritten, RoomClosed
from shared.messages import Role, Status, Turn
from shared.room.core import CLOSE_WAIT_SECONDS, RoomCore
from shared.store import LOST, Growth, RoomChange, StoreUnavailable, TurnRecord
from shared.worker import ReplyWorker, WorkerTask

log = logging.getLogger(__name__)

HISTORY_FOR_TURN = 50  # finished messages handed to assistants that keep no state of their own
LEASE_RETRY_SECONDS = 1.0  # how often a process checks whether a busy room's worker is still alive
HOLDER = f"{socket.gethostname()}:{os.getpid()}"
BROKE_OFF = "The assistant's reply broke off because its worker stopped."
LOST_REPLY = "The assistant's reply was lost: the rooms' store came back without its last writes."


class Turns(RoomCore):
    _worker: threading.Thread | None = None
    _fence: int | None = None  # the lease this process's worker holds, if any
    _turn: Turn | None = None  # the turn this process's worker is writing, if any
    _reply_id: int | None = None  # the message of the reply this process's worker writes, once begun
    _reply_bytes = 0  # that reply's length in UTF-8 bytes, as written
    _next_try = 0.0  # when this process may next try to take the lease of a room another one holds
    _lease_lost = threading.Event()  # replaced by each lease; set when its renewal failed for good

    def _ensure_worker(self) -> None:
        with self._sessions_lock:
            if not self._here or (self._worker is not None and self._worker.is_alive()):
                return
            died = self._worker is not None
            self._worker = ReplyWorker(self)
            self._worker.start()
        if died:
            log.error("room %s: the reply worker stopped unexpectedly; starting a new one", self.name)
            with contextlib.suppress(ChatError):
                self.notice("The assistant's worker stopped unexpectedly and was restarted.")

    def next_task(self) -> WorkerTask:
        """Block until the worker has something to do: answer the queued messages, or stop.

        "Answer" also when a turn is open that no worker of this process writes: its writer may have
        died, and taking the lease tells (see `lease`).
        """
        record = self._record
        with record.lock:
            while True:
                if not self._here or record.state.closed:
                    return WorkerTask.STOP
                wanted = bool(record.state.queue) or record.state.turn is not None
                wanted = wanted or bool(record.state.undecided)  # "When it can help": a batch to decide
                wait = self._next_try - time.monotonic()
                if wanted and wait <= 0:
                    return WorkerTask.ANSWER
                if wanted:
                    record.changed.wait(wait)
                else:
                    record.changed.wait(LEASE_RETRY_SECONDS if self.store.shared else None)

    @contextlib.contextmanager
    def lease(self) -> Iterator[bool]:
        """Hold the room's lease while the block runs; False if another worker holds it.

        The block ends its work as soon as `holding()` turns False: the lease was lost (a renewal
        failed past the lease's own time) or this process stopped serving the room.
        """
        try:
            fence = self.store.take_lease(self.name, HOLDER)
        except StoreUnavailable:
            fence = None
        if fence is None:
            self._next_try = time.monotonic() + LEASE_RETRY_SECONDS
            yield False
            return
        self._fence = fence
        self._lease_lost = threading.Event()
        done = threading.Event()
        if self.store.shared:
            renewer = threading.Thread(
                target=self._renew,
                args=(fence, done, self._lease_lost),
                name=f"lease-{self.name}",
                daemon=True,
            )
            renewer.start()
        try:
            self._change(self._adopt)
        except (RoomClosed, StoreUnavailable):
            adopted = False
        else:
            adopted = True
        try:
            yield adopted
        finally:
            done.set()
            self._fence = None
            with contextlib.suppress(ChatError):
                self.store.release_lease(self.name, fence)

    def holding(self) -> bool:
        """Whether this process's worker may go on writing turns: it holds the lease and serves the room."""
        return self._fence is not None and not self._lease_lost.is_set() and self._here

    def _renew(self, fence: int, done: threading.Event, lost: threading.Event) -> None:
        """Renew the lease every third of its time; a failed renewal is tried again until the lease's own
        time would be up. Then the lease is lost: the worker stops writing at once, and the worker that
        takes the room over ends the turn as broken off."""
        seconds = self.store.lease_seconds
        renewed = time.monotonic()
        wait = seconds / 3
        while not done.wait(wait):
            try:
                held = self.store.renew_lease(self.name, fence)
            except StoreUnavailable:
                if time.monotonic() - renewed < seconds * 2 / 3:
                    wait = min(seconds / 10, 0.2)  # once more soon: it may still be renewed in time
                    continue
                held = False
            if not held:
                log.warning("room %s: the worker lost its lease; it writes nothing more", self.name)
                lost.set()
                if self._turn is not None:
                    self._turn.stop.set()
                return
            renewed, wait = time.monotonic(), seconds / 3

    def _adopt(self, change: RoomChange) -> None:
        """This worker writes the room's turns from now on; a turn left open by a dead one ends here."""
        state = change.state
        state.fence = self._fence or 0
        if state.turn is not None:
            self._end_turn(change, BROKE_OFF, carry_over=True)

    def _writes(self, change: RoomChange, turn: Turn) -> bool:
        """Whether this worker still writes `turn` (it was not stopped, taken over or closed)."""
        state = change.state
        mine = state.turn is not None and state.turn.number == turn.number and state.fence == self._fence
        return mine and not state.closed and not self._lease_lost.is_set()

    def start_turn(self) -> Turn | None:
        """Take every queued message (and any carried over) into one turn and start its reply."""
        fence = self._fence

        def start(change: RoomChange) -> Turn | None:
            state = change.state
            if (
                state.fence != fence
                or state.closed
                or not state.queue
                or state.turn is not None
                or not self.holding()
            ):
                change.nothing()
                return None
            ids = state.carried_over + state.queue
            state.carried_over, state.queue = [], []
            context = tuple(change.messages(state.context))
            state.context = []
            messages = tuple(replace(m, status=Status.COMPLETE) for m in change.messages(ids))
            for message in messages:  # taken: no longer "waiting for the assistant"
                change.put(message)
            first = min(m.id for m in messages + context)
            state.turns += 1
            turn = Turn(
                room=self.name,
                messages=messages,
                history=change.history(first, HISTORY_FOR_TURN),
                present=tuple(p.nickname for p in state.participants.values()),
                now=self._now(),
                context=context,
                number=state.turns,
                room_instructions=state.instructions,
                files={
                    a.id: data
                    for m in (*context, *messages)
                    for a in m.attachments
                    if (data := self.attachments.get(a.id)) is not None
                },
            )
            state.turn = TurnRecord(
                number=turn.number,
                message_ids=list(ids),
                context_ids=[m.id for m in context],
                addressees=list(turn.addressees),
                fence=fence or 0,
            )
            return turn

        self._reply_id = None
        try:
            self._turn = self._change(start)
        except (RoomClosed, StoreUnavailable):
            self._turn = None
        return self._turn

    def add_to_reply(self, turn: Turn, text: str) -> bool:
        """Append streamed text to the turn's reply, which appears with its first piece; False: stop writing.

        False once the turn is over (stopped, taken over, or the room closed): its late words are dropped.
        Raises `ReplyNotWritten` when the store could not take them: the turn did not end, its words were
        lost, so it must not end as complete. The first piece makes the reply's message in a change of
        the room; the next ones are appended to it by the store (with Redis a few commands each, not a
        rewrite of the room's state).
        """
        reply_id, fence = self._reply_id, self._fence
        if reply_id is not None and text:
            if fence is None or not self.holding():
                return False
            try:
                version = self.store.grow(self.name, reply_id, fence, self._reply_bytes, text)
            except StoreUnavailable:
                raise ReplyNotWritten from None
            if version == LOST:  # the store came back without some of the words: not complete
                raise ReplyNotWritten
            if version is None:
                return False
            self._take_growth(Growth(reply_id, self._reply_bytes, text), version)
            self._reply_bytes += len(text.encode())
            return True

        made: list[int] = []  # the reply's id, from the run of the rule that committed

        def begin(change: RoomChange) -> bool:
            state = change.state
            made.clear()
            if not self._writes(change, turn) or not text or state.reply_id is not None:
                change.nothing()
                return self._writes(change, turn)
            reply = change.add(
                Role.ASSISTANT,
                text,
                self._now(),
                author=self.settings.assistant_name,
                status=Status.STREAMING,
                reply_to=turn.addressees,
            )
            state.reply_id = reply.id
            made.append(reply.id)
            return True

        try:
            writing = self._change(begin)
        except RoomClosed:
            return False
        except StoreUnavailable:
            raise ReplyNotWritten from None
        if made:
            self._reply_id, self._reply_bytes = made[0], len(text.encode())
        return writing

    def _take_growth(self, growth: Growth, version: int) -> None:
        """Bring this process's copy up to the growth it just wrote, without reading it back."""
        if not self.store.shared:
            return  # the record is the store's own: the growth is in it
        with self._record.lock:
            if self._record.state.version == version - 1 and self._record.grows(growth, version):
                return
        self.sync(version)

    def finish_turn(self, turn: Turn, error: str | None = None, *, carry_over: bool = False) -> None:
        """End the turn: the reply is complete, or kept as far as it got with `error` shown to all.

        With `carry_over`, the assistant never saw the turn's messages: they go into the next turn.
        A turn that is already over (someone stopped it, another worker took it) stays as it ended.
        Its tokens (`turn.usage`) are counted either way.
        """

        today, usage, began = self._today(), dict(turn.usage), self._reply_id

        def finish(change: RoomChange) -> int | None:
            # The turn's tokens are counted whatever happened (a reply that broke off was still paid
            # for, and one stopped by someone else too), in the same change.
            tokens = self._count_usage(change, today, usage)
            if self._writes(change, turn):
                lost = began is not None and change.state.reply_id != began  # the store lost it
                self._end_turn(change, LOST_REPLY if lost and not error else error, carry_over=carry_over)
            elif tokens is None:
                change.nothing()
            return tokens

        try:
            tokens = self._change(finish)
        except (RoomClosed, StoreUnavailable) as problem:
            # Unreachable store: the turn stays open until a worker takes the room again and ends it.
            log.warning("room %s: the turn could not be finished: %s", self.name, problem)
        else:
            self._keep_spending(today, tokens)
        finally:
            self._turn = None

    def _end_turn(
        self, change: RoomChange, error: str | None = None, *, carry_over: bool = False, stopped_by: str = ""
    ) -> None:
        state = change.state
        turn, state.turn = state.turn, None
        if state.reply_id is not None:
            reply = change.message(state.reply_id)
            status = Status.ERROR if error else Status.STOPPED if stopped_by else Status.COMPLETE
            change.put(replace(reply, status=status, stopped_by=stopped_by))
            state.reply_id = None
        if turn is not None and carry_over:
            state.carried_over = turn.message_ids + state.carried_over
            state.context = turn.context_ids + state.context
            for message in change.messages(turn.message_ids):
                change.put(replace(message, status=Status.UNANSWERED))
        if stopped_by and not error:
            change.add(Role.SYSTEM, f"{stopped_by} stopped the reply.", self._now())
        if error:
            again = " It will try again with the next message." if carry_over else ""
            change.add(Role.SYSTEM, error + again, self._now(), status=Status.ERROR)

    def _hear_stop(self) -> None:
        """Tell the assistant to give up if the turn it writes has ended (Stop, or taken over)."""
        turn = self._turn
        if turn is None:
            return
        with self._record.lock:
            current = self._record.state.turn
        if current is None or current.number != turn.number or self._record.state.fence != self._fence:
            turn.stop.set()

    def _synced(self, state) -> None:
        self._hear_stop()

    # --- what the room may spend (DAILY_TOKEN_BUDGET) ---------------------------------------------

    def _today(self) -> str:
        return self._now().astimezone(UTC).date().isoformat()

    def record_usage(self, usage: dict[str, int]) -> None:
        """Count the tokens a catch-up used (a turn's are counted as it finishes): in the room's totals
        and against today's (UTC) budget. Kept in the store, so every process counts them."""
        today = self._today()

        def count(change: RoomChange) -> int | None:
            tokens = self._count_usage(change, today, usage)
            if tokens is None:
                change.nothing()
            return tokens

        with contextlib.suppress(RoomClosed, StoreUnavailable):
            self._keep_spending(today, self._change(count))

    @staticmethod
    def _count_usage(change: RoomChange, today: str, usage: dict[str, int]) -> int | None:
        """Add `usage` to the room's totals and today's tokens; today's count, or None if it used none."""
        tokens = usage.get("total_tokens", 0)
        if tokens <= 0:
            return None
        state = change.state
        if state.usage_day != today:
            state.usage_day, state.tokens_on_day = today, 0
        state.tokens_on_day += tokens
        for key, value in usage.items():
            state.usage[key] = state.usage.get(key, 0) + value
        return state.tokens_on_day

    def _keep_spending(self, today: str, tokens: int | None) -> None:
        """Kept apart from the room too: its next opening today (on any process) starts from it."""
        if tokens is not None:
            with contextlib.suppress(StoreUnavailable):
                self.store.keep_spending(self.name, today, tokens)

    def tokens_today(self) -> int:
        """Tokens this room's assistant used since midnight UTC."""
        state = self._record.state
        return state.tokens_on_day if state.usage_day == self._today() else 0

    # --- the conversation ----------------------------------------------------------------------

    def forget_conversation(self) -> None:
        """The assistant lost the conversation; the next turn opens a new one."""

        def forget(change: RoomChange) -> None:
            change.state.conversation = None

        with contextlib.suppress(RoomClosed, StoreUnavailable):
            self._change(forget)

    def set_conversation(self, conversation: str) -> bool:
        """Keep the opened conversation; False if the room closed or another worker took it (close it)."""
        fence = self._fence

        def keep(change: RoomChange) -> bool:
            state = change.state
            if state.closed or state.fence != fence:
                change.nothing()
                return False
            state.conversation = conversation
            return True

        try:
            return self._change(keep)
        except (RoomClosed, StoreUnavailable):
            return False

    def _stop_worker(self, *, closing: bool) -> None:
        if not closing:
            # The process stops but the room lives on (Redis): a reply in progress is not cut short
            # here. If the process exits before it ends, another one takes the room over.
            return
        if self._turn is not None:
            self._turn.stop.set()
        worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            # Lets a worker that was opening a conversation close it before the process exits.
            worker.join(timeout=CLOSE_WAIT_SECONDS)
