"""The room: its messages, participants, queue of messages awaiting a reply, and the reply in progress.

All state lives here behind one lock; every change bumps `version` and wakes whoever waits for one. A page
that follows the room asks only for what changed since the version it drew (`changes_since`), and may
sleep through the reply's growth between two redraws (`wait_for_change(..., reply_growth=False)`).
"""

from __future__ import annotations

import hmac
import logging
import re
import threading
import time
import unicodedata
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime

from shared.assistant import Assistant, Turn
from shared.config import Settings
from shared.errors import JoinRefused, MessageRefused, RoomClosed
from shared.messages import Message, Participant, ReplyPolicy, Role, Status
from shared.nicknames import clean_nickname, nickname_key
from shared.worker import ReplyWorker, WorkerTask

log = logging.getLogger(__name__)

# Control characters other than newline and tab would garble the page or the model's input.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
CLOSE_WAIT_SECONDS = 5.0
HISTORY_FOR_TURN = 50  # finished messages handed to assistants that keep no state of their own


def mentions(text: str, name: str) -> bool:
    """Whether `text` calls on `name` as @name (any case), not as part of a longer word."""
    return re.search(rf"(?<![\w@])@{re.escape(name)}(?!\w)", text, re.IGNORECASE) is not None


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class RoomStatus:
    """What the assistant is doing and when it speaks: small, so a page can take it on every wake-up."""

    replying_to: tuple[str, ...]  # whom the reply being written answers; empty between turns
    waiting: tuple[str, ...]  # people whose messages wait for the next turn, in the order they spoke
    turn: int  # counts turns, so that one turn's Stop button is not the next one's
    policy: ReplyPolicy
    policy_changes: int  # counts policy changes, so a page redraws its control when someone changes it

    @property
    def busy(self) -> bool:
        return bool(self.replying_to or self.waiting)


@dataclass(frozen=True)
class RoomChanges:
    """What changed in a room since a version a page drew: all the page needs to catch up."""

    version: int
    messages: tuple[Message, ...]  # added or changed since then, by id
    participants: tuple[Participant, ...] | None  # None: nobody joined or left since then
    status: RoomStatus


@dataclass(frozen=True)
class RoomView:
    """A consistent copy of the room at one version, for a page to render."""

    name: str
    version: int
    messages: tuple[Message, ...]
    participants: tuple[Participant, ...]
    status: RoomStatus
    reply_id: int | None
    created_at: datetime

    @property
    def busy(self) -> bool:
        return self.status.busy

    @property
    def replying_to(self) -> tuple[str, ...]:
        return self.status.replying_to

    @property
    def policy(self) -> ReplyPolicy:
        return self.status.policy

    @property
    def reply(self) -> Message | None:
        """The assistant's reply being written now, if any."""
        return None if self.reply_id is None else self.messages[self.reply_id - 1]

    def participant(self, participant_id: str) -> Participant | None:
        return next((p for p in self.participants if p.id == participant_id), None)


class Room:
    def __init__(
        self,
        name: str,
        settings: Settings,
        assistant: Assistant,
        *,
        now: Callable[[], datetime] = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
        invite_secret: str | None = None,
        spent: tuple[date | None, int] = (None, 0),
    ):
        self.name = name
        # A private room is listed nowhere and lets in only who brings its invite secret (see `admits`).
        self.invite_secret = invite_secret
        self.private = invite_secret is not None
        # The UTC day `_tokens_on_day` counts; `spent` carries it over from a closed room of this name.
        self._usage_day, self._tokens_on_day = spent
        self.settings = settings
        self.assistant = assistant
        self.created_at = now()
        self._now = now
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # any change, the reply's growth included
        self._news = threading.Condition(self._lock)  # any change but the reply's growth
        self._version = 0
        self._news_version = 0
        self._messages: list[Message] = []
        self._message_versions: dict[int, int] = {}  # message id -> version of its last change, oldest first
        self._participants: dict[str, Participant] = {}
        self._people_version = 0  # version of the last join or leave
        self._left_on_purpose: set[str] = set()  # who pressed Leave: their other tabs do not rejoin them
        self._sessions: dict[str, set[str]] = {}  # participant id -> browser sessions showing the room
        self._last_seen: dict[str, float] = {}
        self._recent_posts: dict[str, deque[float]] = {}  # participant id -> times of their latest posts
        self._leaving_since: dict[str, float] = {}
        self._empty_since: float | None = monotonic()
        self._queue: list[int] = []  # ids of people's messages awaiting a reply, in posting order
        self._carried_over: list[int] = []  # messages of a turn that failed before the assistant saw them
        self._context: list[int] = []  # messages said without asking the assistant, for its next turn
        self._policy = ReplyPolicy.EVERY_MESSAGE
        self._policy_changes = 0
        self._turns = 0
        self._turn: Turn | None = None
        self._reply_id: int | None = None
        self._conversation: str | None = None  # opened by the worker on the first turn, not on a join
        self._conversation_to_close: str | None = None  # taken when the room closed, for `finish_closing`
        self._closed = False
        self._worker: threading.Thread | None = None
        self.notice(f"Welcome to the room! {settings.assistant_name} answers every message.")

    # --- reading ---------------------------------------------------------------------------------

    @property
    def version(self) -> int:
        return self._version

    def view(self) -> RoomView:
        with self._lock:
            return RoomView(
                name=self.name,
                version=self._version,
                messages=tuple(self._messages),
                participants=tuple(self._participants.values()),
                status=self._status(),
                reply_id=self._reply_id,
                created_at=self.created_at,
            )

    def changes_since(self, version: int) -> RoomChanges:
        """What changed after `version`: costs what changed, not what the room holds."""
        with self._lock:
            changed = []
            for message_id in reversed(self._message_versions):
                if self._message_versions[message_id] <= version:
                    break
                changed.append(self._messages[message_id - 1])
            return RoomChanges(
                version=self._version,
                messages=tuple(sorted(changed, key=lambda m: m.id)),
                participants=tuple(self._participants.values()) if self._people_version > version else None,
                status=self._status(),
            )

    def wait_for_change(self, since_version: int, timeout: float, *, reply_growth: bool = True) -> int:
        """Block until the room changes after `since_version` or the timeout passes; return the version.

        With `reply_growth=False` the reply's next words do not wake the caller, any other change does.
        """
        with self._lock:
            if reply_growth:
                self._changed.wait_for(lambda: self._version > since_version, timeout)
            else:
                self._news.wait_for(lambda: self._news_version > since_version, timeout)
            return self._version

    def watchers(self) -> int:
        """How many browser sessions show the room now."""
        with self._lock:
            return sum(len(sessions) for sessions in self._sessions.values())

    def token_usage(self) -> dict[str, int]:
        """Tokens the model has used for this room's conversation, as its assistant counted them."""
        with self._lock:
            conversation = self._conversation
        return self.assistant.usage(conversation) if conversation else {}

    @property
    def busy(self) -> bool:
        """Whether a reply is being written or messages wait for one."""
        with self._lock:
            return self._status().busy

    @property
    def closed(self) -> bool:
        return self._closed

    def _status(self) -> RoomStatus:
        # Messages carried over from a failed turn are not waited for: they go with the next message.
        return RoomStatus(
            replying_to=self._turn.addressees if self._turn is not None else (),
            waiting=tuple(dict.fromkeys(self._messages[i - 1].author for i in self._queue)),
            turn=self._turns,
            policy=self._policy,
            policy_changes=self._policy_changes,
        )

    # --- who may come in, and what the room may spend -----------------------------------------------

    def admits(self, invite: str | None) -> bool:
        """Whether `invite` opens this room: any public room, a private one only with its secret."""
        if not self.private:
            return True
        if not invite:
            return False
        return hmac.compare_digest(invite.encode(), self.invite_secret.encode())

    def record_usage(self, tokens: int) -> None:
        """Count tokens the assistant reports for a turn against today's (UTC) budget."""
        with self._lock:
            self._roll_usage_day()
            self._tokens_on_day += max(0, tokens)

    def tokens_today(self) -> int:
        """Tokens this room's assistant used since midnight UTC."""
        with self._lock:
            self._roll_usage_day()
            return self._tokens_on_day

    def spending(self) -> tuple[date | None, int]:
        """The day's count, for the next room of this name (a room that empties and reopens the same
        day keeps its budget spent)."""
        with self._lock:
            self._roll_usage_day()
            return self._usage_day, self._tokens_on_day

    def _roll_usage_day(self) -> None:
        today = self._now().astimezone(UTC).date()
        if self._usage_day != today:
            self._usage_day, self._tokens_on_day = today, 0

    # --- people --------------------------------------------------------------------------------

    def join(self, participant_id: str, nickname: str, session_id: str) -> Participant:
        """Add a person, or attach one more browser session of a person already here."""
        nickname = clean_nickname(nickname, self.settings.assistant_name)
        with self._lock:
            if self._closed:
                raise RoomClosed("This room has just closed. Please reload the page to join it afresh.")
            if participant_id in self._participants:
                self._attach(participant_id, session_id)
                return self._participants[participant_id]
            self._left_on_purpose.discard(participant_id)
            taken = {nickname_key(p.nickname) for p in self._participants.values()}
            if nickname_key(nickname) in taken:
                raise JoinRefused(
                    f"Someone in the room is already called {nickname}. Please pick another nickname."
                )
            if len(self._participants) >= self.settings.max_participants:
                raise JoinRefused(
                    f"The room is full ({self.settings.max_participants} people). Please try again later."
                )
            participant = Participant(participant_id, nickname, self._now())
            self._participants[participant_id] = participant
            self._empty_since = None
            self._attach(participant_id, session_id)
            self._add(Role.SYSTEM, f"{nickname} joined.")
            self._people_version = self._version
            return participant

    def attach(self, participant_id: str, session_id: str) -> Participant | None:
        """A browser session shows the room (a heartbeat); None if the person is no longer here."""
        with self._lock:
            if participant_id not in self._participants:
                return None
            self._attach(participant_id, session_id)
            return self._participants[participant_id]

    def _attach(self, participant_id: str, session_id: str) -> None:
        self._sessions.setdefault(participant_id, set()).add(session_id)
        self._last_seen[participant_id] = self._monotonic()
        self._leaving_since.pop(participant_id, None)

    def detach(self, participant_id: str, session_id: str) -> None:
        """A browser session went away; the person leaves after the grace period unless one comes back."""
        with self._lock:
            sessions = self._sessions.get(participant_id)
            if sessions is None:
                return
            sessions.discard(session_id)
            if not sessions:
                self._leaving_since.setdefault(participant_id, self._monotonic())

    def leave(self, participant_id: str) -> None:
        """The person pressed Leave: they leave from every tab, and no tab of theirs rejoins them quietly."""
        with self._lock:
            if participant_id in self._participants:
                self._left_on_purpose.add(participant_id)
            self._remove(participant_id)

    def left_on_purpose(self, participant_id: str) -> bool:
        with self._lock:
            return participant_id in self._left_on_purpose

    def _remove(self, participant_id: str) -> None:
        participant = self._participants.pop(participant_id, None)
        self._sessions.pop(participant_id, None)
        self._last_seen.pop(participant_id, None)
        self._recent_posts.pop(participant_id, None)
        self._leaving_since.pop(participant_id, None)
        if participant is None:
            return
        if not self._participants:
            self._empty_since = self._monotonic()
        self._add(Role.SYSTEM, f"{participant.nickname} left.")
        self._people_version = self._version

    def reap(self) -> None:
        """Remove people whose tabs closed more than the grace period ago, or went silent."""
        now = self._monotonic()
        with self._lock:
            for pid in list(self._participants):
                leaving = self._leaving_since.get(pid)
                if (
                    leaving is not None
                    and now - leaving >= self.settings.leave_grace_seconds
                    or now - self._last_seen.get(pid, now) >= self.settings.heartbeat_timeout_seconds
                ):
                    self._remove(pid)

    def _idle_and_empty(self) -> bool:
        """True once nobody has been here for the room-emptying grace period and no reply is running."""
        return (
            self._empty_since is not None
            and self._monotonic() - self._empty_since >= self.settings.room_empty_grace_seconds
            and not self._status().busy
        )

    # --- messages --------------------------------------------------------------------------------

    def post(self, participant_id: str, text: str) -> Message:
        """Add a person's message to the room and queue it for the assistant."""
        text = _CONTROL.sub("", unicodedata.normalize("NFC", text.replace("\r\n", "\n"))).strip()
        if not text:
            raise MessageRefused("Your message is empty, so nothing was sent.")
        limit = self.settings.max_message_chars
        if len(text) > limit:
            raise MessageRefused(
                f"Your message has {len(text):,} characters; the limit is {limit:,}. Nothing was sent."
            )
        with self._lock:
            participant = self._participants.get(participant_id)
            if participant is None or self._closed:
                raise MessageRefused("You are no longer in the room. Join again to send messages.")
            self._check_rate(participant_id)
            asks = self._policy is ReplyPolicy.EVERY_MESSAGE or mentions(text, self.settings.assistant_name)
            message = self._add(
                Role.USER,
                text,
                author=participant.nickname,
                participant_id=participant_id,
                status=Status.QUEUED if asks else Status.COMPLETE,
            )
            if asks:
                self._queue.append(message.id)
                self._ensure_worker()
            else:
                self._context.append(message.id)
            return message

    def _check_rate(self, participant_id: str) -> None:
        """One person may not drown the room: at most N messages in any window of S seconds."""
        limit, window = self.settings.rate_limit_messages, self.settings.rate_limit_seconds
        now = self._monotonic()
        recent = self._recent_posts.setdefault(participant_id, deque())
        while recent and now - recent[0] >= window:
            recent.popleft()
        if len(recent) >= limit:
            wait = max(1, round(window - (now - recent[0])))
            raise MessageRefused(
                f"Slow down a little: you can send {limit} messages every {window:g} seconds. "
                f"Try again in {wait} second{'s' if wait != 1 else ''}. Nothing was sent."
            )
        recent.append(now)

    def set_reply_policy(self, participant_id: str, policy: ReplyPolicy) -> None:
        """Anyone present may change when the assistant speaks; everyone is told."""
        with self._lock:
            participant = self._participants.get(participant_id)
            if participant is None or policy is self._policy:
                return
            self._policy = policy
            self._policy_changes += 1
            name = self.settings.assistant_name
            when = (
                "every message" if policy is ReplyPolicy.EVERY_MESSAGE else f"only when mentioned as @{name}"
            )
            self._add(Role.SYSTEM, f"{participant.nickname} set {name} to reply to {when}.")

    def stop_reply(self, participant_id: str, turn_number: int | None = None) -> None:
        """Stop the reply being written, at once for everyone; its text so far stays.

        The turn ends here, whatever the assistant is doing (a tool round, a retry, a stalled stream): the
        worker is told through `Turn.stop` and its late words are dropped. With `turn_number`, only that
        turn is stopped (a Stop pressed just as the next reply started must not stop that one).
        """
        with self._lock:
            participant = self._participants.get(participant_id)
            turn = self._turn
            if participant is None or turn is None or turn_number not in (None, self._turns):
                return
            turn.stop.set()
            self._end_turn(stopped_by=participant.nickname)

    def _add(self, role: Role, text: str, **fields) -> Message:
        message = Message(id=len(self._messages) + 1, role=role, text=text, created_at=self._now(), **fields)
        self._messages.append(message)
        self._bump()
        self._message_versions[message.id] = self._version
        return message

    def _set(self, message: Message, *, growth: bool = False) -> None:
        self._messages[message.id - 1] = message
        self._bump(growth=growth)
        self._message_versions.pop(message.id, None)  # to the end: the order is the order of changes
        self._message_versions[message.id] = self._version

    def _bump(self, *, growth: bool = False) -> None:
        self._version += 1
        self._changed.notify_all()
        if not growth:
            self._news_version = self._version
            self._news.notify_all()

    def notice(self, text: str, *, failure: bool = False) -> None:
        """A system line everyone sees; a failure is shown as one."""
        with self._lock:
            self._add(Role.SYSTEM, text, status=Status.ERROR if failure else Status.COMPLETE)

    # --- the reply worker's side -------------------------------------------------------------------

    def _ensure_worker(self) -> None:
        if self._closed or (self._worker is not None and self._worker.is_alive()):
            return
        if self._worker is not None:
            log.error("room %s: the reply worker stopped unexpectedly; starting a new one", self.name)
            if self._turn is not None:  # it died mid-turn without ending it
                self._end_turn("The assistant's reply broke off because its worker stopped.")
            self._add(Role.SYSTEM, "The assistant's worker stopped unexpectedly and was restarted.")
        self._worker = ReplyWorker(self)
        self._worker.start()

    def next_task(self) -> WorkerTask:
        """Block until the worker has something to do: answer the queued messages, or stop."""
        with self._lock:
            self._changed.wait_for(lambda: self._closed or self._queue)
            return WorkerTask.STOP if self._closed else WorkerTask.ANSWER

    def conversation(self) -> str | None:
        with self._lock:
            return self._conversation

    def forget_conversation(self) -> None:
        """The assistant lost the conversation; the next turn opens a new one."""
        with self._lock:
            self._conversation = None

    def set_conversation(self, conversation: str) -> bool:
        """Keep the opened conversation; False if the room closed meanwhile (the caller closes it)."""
        with self._lock:
            if self._closed:
                return False
            self._conversation = conversation
            return True

    def start_turn(self) -> Turn | None:
        """Take every queued message (and any carried over) into one turn and start its reply."""
        with self._lock:
            ids = self._carried_over + self._queue
            self._carried_over, self._queue = [], []
            if not ids:
                return None
            context = tuple(self._messages[i - 1] for i in self._context)
            self._context = []
            for i in ids:  # taken: no longer "waiting for the assistant"
                self._set(replace(self._messages[i - 1], status=Status.COMPLETE))
            messages = tuple(self._messages[i - 1] for i in ids)
            first = min([ids[0], *(m.id for m in context)]) - 1
            history = tuple(m for m in self._messages[:first] if m.role is not Role.SYSTEM)[
                -HISTORY_FOR_TURN:
            ]
            self._turn = Turn(
                room=self.name,
                messages=messages,
                history=history,
                present=tuple(p.nickname for p in self._participants.values()),
                now=self._now(),
                context=context,
            )
            self._turns += 1
            self._bump()
            return self._turn

    def add_to_reply(self, turn: Turn, text: str) -> bool:
        """Append streamed text to the turn's reply, which appears with its first piece; False: stop writing.

        False once the turn is over (stopped, or the room closed): its late words are dropped.
        """
        with self._lock:
            if self._turn is not turn or self._closed:
                return False
            if not text:
                return True
            if self._reply_id is None:
                reply = self._add(
                    Role.ASSISTANT,
                    text,
                    author=self.settings.assistant_name,
                    status=Status.STREAMING,
                    reply_to=self._turn.addressees,
                )
                self._reply_id = reply.id
            else:
                reply = self._messages[self._reply_id - 1]
                self._set(replace(reply, text=reply.text + text), growth=True)
            return True

    def finish_turn(self, turn: Turn, error: str | None = None, *, carry_over: bool = False) -> None:
        """End the turn: the reply is complete, or kept as far as it got with `error` shown to all.

        With `carry_over`, the assistant never saw the turn's messages: they go into the next turn.
        A turn that is already over (someone stopped it) stays as it ended.
        """
        with self._lock:
            if self._turn is turn:
                self._end_turn(error, carry_over=carry_over)

    def _end_turn(self, error: str | None = None, *, carry_over: bool = False, stopped_by: str = "") -> None:
        turn, self._turn = self._turn, None
        if self._reply_id is not None:
            reply = self._messages[self._reply_id - 1]
            status = Status.ERROR if error else Status.STOPPED if stopped_by else Status.COMPLETE
            self._set(replace(reply, status=status, stopped_by=stopped_by))
            self._reply_id = None
        if turn is not None and carry_over:
            self._carried_over = [m.id for m in turn.messages] + self._carried_over
            self._context = [m.id for m in turn.context] + self._context
            for message in turn.messages:
                self._set(replace(message, status=Status.UNANSWERED))
        if stopped_by and not error:
            self._add(Role.SYSTEM, f"{stopped_by} stopped the reply.")
        if error:
            again = " It will try again with the next message." if carry_over else ""
            self._add(Role.SYSTEM, error + again, status=Status.ERROR)
        self._bump()

    # --- closing ---------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the worker and close the assistant's conversation; the room is not used again."""
        with self._lock:
            self._mark_closed()
        self.finish_closing()

    def close_if_idle_and_empty(self) -> bool:
        """Close the room if it is idle and empty; True if it did. Then call `finish_closing`.

        Decided and marked under the room's lock: a join either comes first (the room is no longer
        empty and stays) or finds the room closed (and the hub gives a fresh one). Nothing here waits
        for the model's server.
        """
        with self._lock:
            if self._closed or not self._idle_and_empty():
                return False
            self._mark_closed()
            return True

    def _mark_closed(self) -> None:
        self._closed = True
        if self._conversation is not None:
            self._conversation_to_close, self._conversation = self._conversation, None
        self._bump()

    def finish_closing(self) -> None:
        """Close the conversation of a room marked closed and let its worker end; may wait on the server."""
        with self._lock:
            conversation, self._conversation_to_close = self._conversation_to_close, None
        if conversation is not None:
            try:
                self.assistant.close_conversation(conversation)
            except Exception:
                log.exception("room %s: closing the conversation failed", self.name)
        worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            # Lets a worker that was opening a conversation close it before the process exits.
            worker.join(timeout=CLOSE_WAIT_SECONDS)
