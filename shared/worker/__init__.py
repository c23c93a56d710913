"""The reply worker: one thread per room that asks the assistant to answer, one turn at a time.

It belongs to the room, not to a browser tab, so a reply finishes even if its sender closes the page. It
holds the room's lease while it writes (`lease.py`), and keeps what only it needs: the turn it
writes, the reply as written so far and the pace of its writes. What it may spend on the model is the
room's rule (`Room.purse`, `shared.spending`), asked before every call. The room's
rules it runs are the room's (`WorkerRoom`, in `contract.py`): it never changes the room's state itself.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from shared.errors import (
    AssistantError,
    AttachmentRefused,
    BudgetSpent,
    ChatError,
    ConversationLost,
    ReplyNotWritten,
    RoomClosed,
)
from shared.messages import Activity, Decision, NotesUpdate, ReplyPiece, Source
from shared.spending import spent_sentence
from shared.store import LOST, Growth, StoreUnavailable
from shared.worker.contract import WorkerRoom, WorkerTask
from shared.worker.lease import LEASE_RETRY_SECONDS, Lease

if TYPE_CHECKING:
    from shared.messages import Turn

__all__ = ["REPLY_WRITE_SECONDS", "SHARED_REPLY_WRITE_SECONDS", "ReplyWorker", "WorkerRoom", "WorkerTask"]

log = logging.getLogger(__name__)

# A reply's words are written into the room at most this often (pages redraw a reply at most ten times
# a second anyway); its first words at once. Through Redis each write is a script of six commands
# whose notice every process takes in, so words are gathered longer; pages still reveal them one by one
# at WORD_DELAY_MS from the text in hand.
REPLY_WRITE_SECONDS = 0.1
SHARED_REPLY_WRITE_SECONDS = 0.3


def _failure_text(assistant_name: str, error: Exception) -> str:
    if isinstance(error, AssistantError):
        return f"{assistant_name} could not reply: {error}"
    return f"{assistant_name} could not reply because of an unexpected error ({type(error).__name__})."


class ReplyWorker(threading.Thread):
    """One room's worker. It owns what only it needs: its lease (fence, renewal), the turn it writes, that
    turn's reply as written so far (its id and length), and the pace of its writes."""

    def __init__(self, room: WorkerRoom):
        super().__init__(name=f"reply-worker-{room.name}", daemon=True)
        self.room = room
        self._lease: Lease | None = None
        self._next_try = 0.0  # when to try again for the lease of a room another worker holds
        self._turn: Turn | None = None  # the turn being written, if any
        self._reply_id: int | None = None  # its reply's message, once begun
        self._reply_bytes = 0  # that reply's length in UTF-8 bytes, as written

    def run(self) -> None:
        # The conversation is opened by the first turn, not by a join: a room where nobody asks costs no call.
        recheck = LEASE_RETRY_SECONDS if self.room.store.shared else None
        while self.room.next_task(self._next_try, recheck) is WorkerTask.ANSWER:
            with self._leased() as held:  # with Redis, one worker per room across processes
                while held and self.holding() and self._answer_one_turn():
                    pass

    # --- the lease -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _leased(self) -> Iterator[bool]:
        """Hold the room's lease while the block runs; False if another worker holds it. Taking it, the
        worker adopts the room (ending a turn a dead worker left open)."""
        room = self.room
        lease = Lease.take(room.store, room.name, on_lost=self._stop_turn)
        if lease is None:
            self._next_try = time.monotonic() + LEASE_RETRY_SECONDS
            yield False
            return
        self._lease = lease
        try:
            room.adopt(lease.fence)
        except (RoomClosed, StoreUnavailable):
            adopted = False
        else:
            adopted = True
        try:
            yield adopted
        finally:
            self._lease = None
            lease.release()

    @property
    def fence(self) -> int | None:
        """The fence this worker writes with; None once its lease is lost or given back."""
        lease = self._lease
        return lease.fence if lease is not None and lease.held else None

    def holding(self) -> bool:
        """Whether this worker may go on writing turns: it holds the lease and the room is served here."""
        return self.fence is not None and self.room.serving

    def hear(self, turn_number: int | None, fence: int) -> None:
        """The room's copy changed: the turn in it and the fence that writes it. If that is no longer this
        worker's turn (someone pressed Stop, another worker took over), the assistant gives up at once."""
        turn, lease = self._turn, self._lease
        if turn is not None and (turn_number != turn.number or lease is None or fence != lease.fence):
            turn.stop.set()

    def stop(self, wait: float) -> None:
        """This process stops serving the room (it closed, or the process is told to stop): the turn
        being written stops at once; wait up to `wait` seconds for the worker to give its lease back (one
        that was opening a conversation closes it before the process exits)."""
        self._stop_turn()
        if self is not threading.current_thread() and self.is_alive():
            self.join(timeout=wait)

    def _stop_turn(self) -> None:
        turn = self._turn
        if turn is not None:
            turn.stop.set()

    # --- the turn and its reply ----------------------------------------------------------------

    def _start_turn(self) -> Turn | None:
        self._reply_id, self._reply_bytes = None, 0
        fence = self.fence if self.holding() else None
        try:
            self._turn = self.room.start_turn(fence)
        except (RoomClosed, StoreUnavailable):
            self._turn = None
        return self._turn

    def _write(self, turn: Turn, text: str) -> bool:
        """Write streamed text into the turn's reply, which appears with its first piece; False: the turn is
        over (stopped, taken over, the room closed), write no more: its late words are dropped.

        Raises `ReplyNotWritten` when the store could not take them: the turn did not end, its words were
        lost, so it must not end as complete. The first piece makes the reply's message in a change of
        the room; the next ones are appended to it by the store (with Redis a few commands each).
        """
        room, reply_id = self.room, self._reply_id
        if reply_id is not None and text:
            fence = self.fence
            if fence is None or not self.holding():
                return False
            try:
                version = room.store.grow(room.name, reply_id, fence, self._reply_bytes, text)
            except StoreUnavailable:
                raise ReplyNotWritten from None
            if version == LOST:  # the store came back without some of the words: not complete
                raise ReplyNotWritten
            if version is None:
                return False
            room.took_growth(Growth(reply_id, self._reply_bytes, text), version)
            self._reply_bytes += len(text.encode())
            return True
        try:
            writing, made = room.begin_reply(turn, self.fence, text)
        except RoomClosed:
            return False
        except StoreUnavailable:
            raise ReplyNotWritten from None
        if made is not None:
            self._reply_id, self._reply_bytes = made, len(text.encode())
        return writing

    def _dress(self, turn: Turn, piece: ReplyPiece) -> bool:
        """Put what is not words on the reply at once (what the assistant is doing, a source, a picture),
        making the reply if no words came yet; False: the turn is over, write no more.

        A picture the room refuses (no real picture, too big) ends the turn with a sentence saying so.
        """
        if self.fence is None or not self.holding():
            return False
        if isinstance(piece, Activity):
            dressing = {"activity": piece.text}
        elif isinstance(piece, Source):
            dressing = {"sources": (piece,)}
        else:
            dressing = {"pictures": (piece,)}
        try:
            writing, made = self.room.dress_reply(turn, self.fence, **dressing)
        except AttachmentRefused as refused:
            raise AssistantError(f"The picture it drew was refused: {refused}", delivered=True) from None
        except RoomClosed:
            return False
        except StoreUnavailable:
            raise ReplyNotWritten from None
        if made is not None and self._reply_id is None:
            self._reply_id, self._reply_bytes = made, 0  # made without words: they are appended to it
        return writing

    def _finish(self, turn: Turn, error: str | None = None, *, carry_over: bool = False) -> None:
        """End the turn: complete, or kept as far as it got with `error` shown to all; with `carry_over`
        the assistant never saw its messages. A turn already over stays as it ended; its tokens count.

        A worker whose process stopped serving the room (SIGTERM, a redeploy) abandons the turn: its
        tokens count, but its reply was cut short by the stop, not complete, and the next holder of the
        lease ends it as broken off (in memory, closing the room did)."""
        fence = self.fence if self.room.serving else None
        try:
            self.room.finish_turn(turn, fence, self._reply_id, error, carry_over=carry_over)
        except (RoomClosed, StoreUnavailable) as problem:
            # Unreachable store: the turn stays open until a worker takes the room again and ends it.
            log.warning("room %s: the turn could not be finished: %s", self.room.name, problem)
        finally:
            self._turn = None

    def _open_conversation(self) -> str | None:
        room = self.room
        conversation = room.conversation()
        if conversation is not None:
            return conversation
        try:
            conversation = room.assistant.open_conversation(room.name)
        except Exception as error:
            log.warning("room %s: opening a conversation failed: %s", room.name, error)
            failure = _failure_text(room.settings.assistant_name, error).rstrip(".")
            with contextlib.suppress(ChatError):
                room.notice(f"{failure}. It will try again with the next message.", failure=True)
            return None
        if not room.set_conversation(conversation, self.fence):
            room.assistant.close_conversation(conversation)
            return None
        return conversation

    def _decide(self) -> bool:
        """Reply policy "When it can help": decide whether to answer the messages said since the last
        decision (one stateless request); False if there were none to decide about."""
        room = self.room
        try:
            batch = room.take_batch(self.fence)
        except ChatError:
            return False
        if batch is None:
            return False
        usage: dict[str, int] = {}
        if room.budget_spent() is not None:
            # Past a budget no request is made; a mention still gets the budget's sentence.
            decision = Decision(False, "a daily token budget is spent")
        else:
            try:
                decision = room.assistant.decide(batch, usage, purse=room.purse)
            except BudgetSpent:  # spent meanwhile (another room, another process): no request was made
                decision = Decision(False, "a daily token budget is spent")
            except Exception as error:
                if not isinstance(error, AssistantError):
                    log.exception("room %s: deciding whether to answer failed", room.name)
                name = room.settings.assistant_name
                failure = _failure_text(name, error).replace(
                    "could not reply", "could not decide whether to answer"
                )
                with contextlib.suppress(ChatError):
                    room.notice(f"{failure.rstrip('.')}. Mention @{name} to ask it directly.", failure=True)
                decision = Decision(False, "the decision failed")
            finally:
                room.record_usage(usage)  # in the room's totals; the budgets counted it as it was paid
        log.info(
            "room %s: %s a batch of %d (%s)",
            room.name,
            "answering" if decision.answer else "letting pass",
            len(batch.messages),
            decision.reason,
        )
        with contextlib.suppress(ChatError):
            room.settle_batch(self.fence, batch, decision)
        return True

    def _keep_notes(self) -> bool:
        """Keep the room's notes after a batch (when the assistant keeps them with a model): one small
        stateless request about the messages said since it last did, between turns; skipped once a daily
        budget is spent (the batch is dropped: no request, no tokens). False if there was no batch."""
        room = self.room
        try:
            batch = room.take_notes_batch(self.fence)
        except ChatError:
            return False
        if batch is None:
            return False
        update, usage = NotesUpdate(), {}
        if batch.messages and room.budget_spent() is None:
            try:
                update = room.assistant.keep_notes(batch, usage, purse=room.purse)
            except BudgetSpent:  # spent meanwhile: no request was made
                pass
            except Exception as error:  # the notes stay as they are; the batch is not asked about again
                if not isinstance(error, AssistantError):
                    log.exception("room %s: keeping the notes failed", room.name)
                else:
                    log.warning("room %s: keeping the notes failed: %s", room.name, error)
            finally:
                room.record_usage(usage)  # in the room's totals; the budgets counted it as it was paid
        with contextlib.suppress(ChatError):
            room.settle_notes(self.fence, batch, update)
        return True

    def _forget(self) -> bool:
        """Take messages their authors deleted out of the conversation, between turns (never while a
        response runs on it); False if there were none, or the room could not be told."""
        room, fence = self.room, self.fence
        messages = room.to_forget(fence) if fence is not None else []
        if not messages:
            return False
        conversation = room.conversation()
        if conversation is not None:  # none open: the next one never holds them
            try:
                room.assistant.forget(conversation, messages)
            except Exception as error:
                # Tried once: a failing server would otherwise hold every turn behind it. Everyone is told.
                log.warning("room %s: taking %d deleted messages back failed", room.name, len(messages))
                failure = _failure_text(room.settings.assistant_name, error)
                failure = failure.replace("could not reply", "could not forget a deleted message")
                with contextlib.suppress(ChatError):
                    room.notice(f"{failure.rstrip('.')}; it may still remember it.", failure=True)
        try:
            return room.forgot(fence, [m.id for m in messages])
        except (RoomClosed, StoreUnavailable):
            return False

    def _answer_one_turn(self) -> bool:
        """Take deleted messages out of the conversation, decide about a batch if there is one, then
        answer the queued messages in one turn; False if there was nothing to do."""
        forgot = self._forget()
        decided = self._decide()
        turn = self._start_turn()
        if turn is None:  # between turns: the notes after the last batch (the reply included)
            return self._keep_notes() or decided or forgot
        if self._over_budget(turn):
            return True
        conversation = self._open_conversation()
        if conversation is None:
            self._finish(turn, carry_over=True)
            return True
        # Every way out of `_reply` finishes the turn, which counts its tokens in the room (whatever
        # happened: a reply that broke off was still paid for), by whichever process wrote it.
        self._reply(conversation, turn)
        return True

    def _over_budget(self, turn: Turn) -> bool:
        """Past the room's or the app's daily token budget, the assistant says which instead of calling
        the model."""
        room = self.room
        spent = room.budget_spent()
        if spent is None:
            return False
        try:
            self._write(turn, spent_sentence(spent, room.settings))
        except ReplyNotWritten as error:
            self._finish(turn, _failure_text(room.settings.assistant_name, error))
        else:
            self._finish(turn)
        return True

    def _reply(self, conversation: str, turn: Turn) -> None:
        room = self.room
        try:
            pieces = iter(room.assistant.reply(conversation, turn))
            pending, written_at, writing = "", 0.0, True
            every = SHARED_REPLY_WRITE_SECONDS if room.store.shared else REPLY_WRITE_SECONDS
            try:
                for piece in pieces:
                    if not isinstance(piece, str):
                        # After the words before it, and at once: everyone sees what the assistant does.
                        if pending:
                            sending, pending, writing = pending, "", False
                            writing = self._write(turn, sending)
                        writing = writing and self._dress(turn, piece)
                        if not writing:
                            break
                        continue
                    pending += piece
                    # The first words at once, then at most one write per `every`: each write
                    # is a change every page (and with Redis, every process) takes in.
                    if time.monotonic() - written_at >= every:
                        # Never sent twice: words the store may have taken are not written again.
                        sending, pending, writing = pending, "", False
                        writing = self._write(turn, sending)
                        written_at = time.monotonic()
                        if not writing:
                            break
            finally:
                if pending and writing:  # the rest, also when the stream broke off: the text so far stays
                    self._write(turn, pending)
                # Ends the assistant's stream (and its HTTP request) as soon as the room says stop.
                getattr(pieces, "close", lambda: None)()
        except Exception as error:
            if not isinstance(error, AssistantError):
                log.exception("room %s: the reply failed", room.name)
            if isinstance(error, ConversationLost):
                room.forget_conversation()  # the next turn opens a new one and sends the messages again
            delivered = getattr(error, "delivered", True)
            self._finish(turn, _failure_text(room.settings.assistant_name, error), carry_over=not delivered)
        except BaseException:
            # SystemExit, CancelledError and the like end this thread, but the room must not stay busy:
            # messages would wait behind it for ever.
            self._finish(turn, f"{room.settings.assistant_name} could not reply because its worker stopped.")
            raise
        else:
            self._finish(turn)
