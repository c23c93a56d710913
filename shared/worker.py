"""The reply worker: one thread per room that asks the assistant to answer, one turn at a time.

It belongs to the room, not to a browser tab, so a reply finishes even if its sender closes the page.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import threading
import time
from typing import TYPE_CHECKING, Protocol

from shared.errors import AssistantError, ChatError, ConversationLost, ReplyNotWritten
from shared.messages import Decision

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from shared.assistant import Assistant
    from shared.config import Settings
    from shared.messages import Batch, Turn
    from shared.store import Store

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


class WorkerTask(enum.Enum):
    """What the room gives its worker to do next."""

    ANSWER = "answer"  # messages wait: answer them in one turn (opening the conversation if none is open)
    STOP = "stop"  # the room closed


class WorkerRoom(Protocol):
    """What the worker needs of its room (`shared.room.Room` is the one): the whole contract between them."""

    name: str
    settings: Settings
    assistant: Assistant
    store: Store

    def next_task(self) -> WorkerTask: ...
    def lease(self) -> AbstractContextManager[bool]: ...
    def holding(self) -> bool: ...
    def start_turn(self) -> Turn | None: ...
    def add_to_reply(self, turn: Turn, text: str) -> bool:
        """False: the turn is over, write no more; raises `ReplyNotWritten` if the words were lost."""

    def finish_turn(self, turn: Turn, error: str | None = None, *, carry_over: bool = False) -> None:
        """End the turn (unless it is over already) and count its tokens (`turn.usage`)."""

    def conversation(self) -> str | None: ...
    def set_conversation(self, conversation: str) -> bool: ...
    def forget_conversation(self) -> None: ...
    def notice(self, text: str, *, failure: bool = False) -> None: ...
    def record_usage(self, usage: dict[str, int]) -> None: ...
    def tokens_today(self) -> int: ...
    def take_batch(self) -> Batch | None: ...
    def settle_batch(self, batch: Batch, decision: Decision) -> bool: ...


class ReplyWorker(threading.Thread):
    def __init__(self, room: WorkerRoom):
        super().__init__(name=f"reply-worker-{room.name}", daemon=True)
        self.room = room

    def run(self) -> None:
        # The conversation is opened by the first turn, not by a join: a room where nobody asks costs no call.
        while self.room.next_task() is WorkerTask.ANSWER:
            with self.room.lease() as held:  # with Redis, one worker per room across processes
                while held and self.room.holding() and self._answer_one_turn():
                    pass

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
        if not room.set_conversation(conversation):
            room.assistant.close_conversation(conversation)
            return None
        return conversation

    def _decide(self) -> bool:
        """Reply policy "When it can help": decide whether to answer the messages said since the last
        decision (one stateless request); False if there were none to decide about."""
        room = self.room
        try:
            batch = room.take_batch()
        except ChatError:
            return False
        if batch is None:
            return False
        budget = room.settings.daily_token_budget
        usage: dict[str, int] = {}
        if budget and room.tokens_today() >= budget:
            # Past the budget no request is made; a mention still gets the budget's sentence.
            decision = Decision(False, "the room's daily token budget is spent")
        else:
            try:
                decision = room.assistant.decide(batch, usage)
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
                room.record_usage(usage)  # a decision counts against DAILY_TOKEN_BUDGET like a turn
        log.info(
            "room %s: %s a batch of %d (%s)",
            room.name,
            "answering" if decision.answer else "letting pass",
            len(batch.messages),
            decision.reason,
        )
        with contextlib.suppress(ChatError):
            room.settle_batch(batch, decision)
        return True

    def _answer_one_turn(self) -> bool:
        """Decide about a batch if there is one, then answer the queued messages in one turn; False if
        there was nothing to do."""
        room = self.room
        decided = self._decide()
        turn = room.start_turn()
        if turn is None:
            return decided
        if self._over_budget(turn):
            return True
        conversation = self._open_conversation()
        if conversation is None:
            room.finish_turn(turn, carry_over=True)
            return True
        # Every way out of `_reply` finishes the turn, which counts its tokens in the room (whatever
        # happened: a reply that broke off was still paid for), by whichever process wrote it.
        self._reply(conversation, turn)
        return True

    def _over_budget(self, turn: Turn) -> bool:
        """Past the room's daily token budget, the assistant says so instead of calling the model."""
        room = self.room
        budget = room.settings.daily_token_budget
        if not budget or room.tokens_today() < budget:
            return False
        try:
            room.add_to_reply(
                turn,
                f"This room has used its daily budget of {budget:,} tokens, so I will answer again "
                "tomorrow (from midnight UTC).",
            )
        except ReplyNotWritten as error:
            room.finish_turn(turn, _failure_text(room.settings.assistant_name, error))
        else:
            room.finish_turn(turn)
        return True

    def _reply(self, conversation: str, turn: Turn) -> None:
        room = self.room
        try:
            pieces = iter(room.assistant.reply(conversation, turn))
            pending, written_at, writing = "", 0.0, True
            every = SHARED_REPLY_WRITE_SECONDS if room.store.shared else REPLY_WRITE_SECONDS
            try:
                for text in pieces:
                    pending += text
                    # The first words at once, then at most one write per `every`: each write
                    # is a change every page (and with Redis, every process) takes in.
                    if time.monotonic() - written_at >= every:
                        # Never sent twice: words the store may have taken are not written again.
                        sending, pending, writing = pending, "", False
                        writing = room.add_to_reply(turn, sending)
                        written_at = time.monotonic()
                        if not writing:
                            break
            finally:
                if pending and writing:  # the rest, also when the stream broke off: the text so far stays
                    room.add_to_reply(turn, pending)
                # Ends the assistant's stream (and its HTTP request) as soon as the room says stop.
                getattr(pieces, "close", lambda: None)()
        except Exception as error:
            if not isinstance(error, AssistantError):
                log.exception("room %s: the reply failed", room.name)
            if isinstance(error, ConversationLost):
                room.forget_conversation()  # the next turn opens a new one and sends the messages again
            delivered = getattr(error, "delivered", True)
            room.finish_turn(
                turn, _failure_text(room.settings.assistant_name, error), carry_over=not delivered
            )
        except BaseException:
            # SystemExit, CancelledError and the like end this thread, but the room must not stay busy:
            # messages would wait behind it for ever.
            room.finish_turn(
                turn, f"{room.settings.assistant_name} could not reply because its worker stopped."
            )
            raise
        else:
            room.finish_turn(turn)
