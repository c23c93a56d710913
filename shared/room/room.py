"""`Room`: the one object a process holds for a room. It runs the room's rules as atomic changes in the
store, keeps this process's copy of the room (`Mirror`), the browser sessions here and what their pages
drew, and the room's reply worker; every method that changes the room is a few lines around one rule."""

from __future__ import annotations

import contextlib
import hmac
import logging
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING

from shared.attachments import MB, check_upload
from shared.errors import ChatError, MessageRefused, RoomClosed
from shared.messages import (
    Attachment,
    Batch,
    Decision,
    Message,
    NoteKind,
    Notes,
    NotesBatch,
    NotesUpdate,
    Participant,
    Picture,
    ReplyPolicy,
    Role,
    Source,
    Status,
    Turn,
)
from shared.nicknames import clean_nickname
from shared.room import decisions, dress, hosting, lifetime, notes, presence, talk, turns
from shared.room.mirror import Mirror
from shared.room.seen import SeenMarks
from shared.room.unread import Unread
from shared.room.unread import unread as count_unread
from shared.room.views import RoomChanges, RoomStatus, RoomView
from shared.spending import Budget, Purse
from shared.store import Growth, RoomChange, RoomGone, RoomState, Store, StoreUnavailable, T
from shared.store.memory import MemoryStore
from shared.worker import ReplyWorker, WorkerTask

if TYPE_CHECKING:
    from shared.assistant import Assistant
    from shared.config import Settings

log = logging.getLogger(__name__)

CLOSE_WAIT_SECONDS = 5.0
INVITE_BYTES = 24  # of a private room's invite secret (32 characters in the link)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Room:
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
        hosted: bool = True,
    ):
        self.name = name
        self.settings = settings
        self.assistant = assistant
        self.store: Store = store if store is not None else MemoryStore()
        self._now = now
        self._clock = clock  # presence, rate limits and emptiness; wall time when processes share rooms
        self._worker: ReplyWorker | None = None
        self._worker_lock = threading.Lock()
        fresh, welcome = lifetime.fresh_room(
            settings.assistant_name, now(), clock(), invite_secret, hosted=hosted
        )
        self._mirror = Mirror.open(
            self.store, name, fresh, welcome, open_only=open_only, on_synced=self._tell_worker
        )
        self._record = self._mirror.record  # read under its lock: this process's copy of the room
        self.generation = self._record.state.generation
        self.created_at = self._record.state.created_at
        # Attached files' bytes, kept apart from the messages (which carry only what each file is).
        self.attachments = self.store.files(name)
        self._files_limit = settings.max_room_attachments_mb * MB
        # Every call to the model for this room goes through it (`shared.spending.may_spend`).
        self.purse = Purse(self.store, name, settings, now)
        self._seen = SeenMarks(self.store, name)  # this process's sessions and what their pages drew
        if self.store.shared:
            self._ensure_worker()  # any process may have to take over a room whose worker died

    # --- changing the room ---------------------------------------------------------------------

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
            self._mirror.gone()
            raise RoomClosed(presence.CLOSED) from None
        self._mirror.take_own(last[0])
        for attachment_id in last[0].files_let_go:  # let go of in the change: its messages say so already
            with contextlib.suppress(StoreUnavailable):
                self.attachments.drop(attachment_id)
        return result

    def sync(self, version: int | None = None, grown: Growth | None = None, *, again: bool = False) -> None:
        """Catch up with a change another process announced (see `Mirror.sync`)."""
        self._mirror.sync(version, grown, again=again)

    def notice(self, text: str, *, failure: bool = False) -> None:
        """A system line everyone sees; a failure is shown as one."""
        status = Status.ERROR if failure else Status.COMPLETE
        self._change(lambda change: change.add(Role.SYSTEM, text, self._now(), status=status))

    # --- reading -------------------------------------------------------------------------------

    @property
    def version(self) -> int:
        return self._record.state.version

    @property
    def resets(self) -> int:
        """How often this copy was taken afresh (a page that drew it before draws it all again)."""
        return self._record.resets

    def view(self) -> RoomView:
        return self._mirror.view(self.created_at)

    def changes_since(self, version: int) -> RoomChanges:
        return self._mirror.changes_since(version)

    def wait_for_change(self, since_version: int, timeout: float, *, reply_growth: bool = True) -> int:
        return self._mirror.wait_for_change(since_version, timeout, reply_growth=reply_growth)

    def _read(self, what: Callable[[RoomState], T]) -> T:
        with self._record.lock:
            return what(self._record.state)

    @property
    def busy(self) -> bool:
        """Whether a reply is being written or messages wait for one."""
        with self._record.lock:
            return RoomStatus.of(self._record).busy

    @property
    def closed(self) -> bool:
        return not self._mirror.here or self._record.state.closed

    @property
    def serving(self) -> bool:
        """Whether this process still serves the room (it did not close, and the process goes on)."""
        return self._mirror.here

    def token_usage(self) -> dict[str, int]:
        """Tokens the model has used for this room since it opened (turns and catch-ups), on any process."""
        return self._read(lambda state: dict(state.usage))

    def tokens_today(self) -> int:
        """Tokens this room's assistant used since midnight UTC (under its name, on any process)."""
        return self.purse.state()[0]

    def spending_today(self) -> tuple[int, int, Budget | None]:
        """Tokens used since midnight UTC by this room and by every room, and the budget that stops the
        assistant now, if any."""
        return self.purse.state()

    def budget_spent(self) -> Budget | None:
        """The daily budget (the room's or the app's) that stops the assistant now, if any."""
        return self.purse.refusal()

    def conversation(self) -> str | None:
        return self._read(lambda state: state.conversation)

    @property
    def instructions(self) -> str:
        return self._read(lambda state: state.instructions)

    @property
    def host(self) -> str | None:
        return self._read(lambda state: state.host)

    @property
    def locked(self) -> bool:
        return self._read(lambda state: state.locked)

    def removed(self, participant_id: str) -> bool:
        """Whether the host removed this browser's person from the room (for the room's life)."""
        return self._read(lambda state: participant_id in state.removed)

    @property
    def notes(self) -> Notes:
        """The room's notes ("Room notes") as this process's copy holds them."""
        return self._read(lambda state: state.notes)

    def decisions(self) -> tuple[int, int]:
        """Reply policy "When it can help": how many batches the assistant answered, and let pass."""
        return self._read(lambda state: (state.batches_answered, state.batches_passed))

    @property
    def invite_secret(self) -> str | None:
        return self._record.state.invite_secret

    @property
    def private(self) -> bool:
        return self.invite_secret is not None

    def admits(self, invite: str | None) -> bool:
        """Whether `invite` opens this room: any public room, a private one only with its secret."""
        secret = self.invite_secret
        if secret is None:
            return True
        return bool(invite) and hmac.compare_digest(invite.encode(), secret.encode())

    def here(self, participant_id: str) -> bool:
        """Whether the person is in the room now, as this process's copy says."""
        return self._read(lambda state: participant_id in state.participants) and not self.closed

    def member(self, participant_id: str) -> Participant | None:
        """The person as they are in the room now (their nickname here), None if they are not in it."""
        found = self._read(lambda state: state.participants.get(participant_id))
        return None if self.closed else found

    def messages_after(self, message_id: int) -> tuple[int, tuple[Message, ...]]:
        """The room's version and its messages after `message_id`, from this process's copy."""
        return self._mirror.after(message_id)

    def unread(self, participant_id: str) -> Unread | None:
        """What others said here that no page of the person showed yet; None if they are not in the room.

        Before any page of theirs showed the room (with Redis, another process may not have told the store
        yet), what was said before they joined does not count."""
        me = self.member(participant_id)
        if me is None:
            return None
        seen = self.last_seen(participant_id)
        _, messages = self.messages_after(seen or 0)
        if seen is None:
            messages = tuple(m for m in messages if m.created_at >= me.joined_at)
        return count_unread(messages, participant_id, me.nickname)

    def left_on_purpose(self, participant_id: str) -> bool:
        return self._read(lambda state: participant_id in state.left_on_purpose)

    # --- people --------------------------------------------------------------------------------

    def join(self, participant_id: str, nickname: str, session_id: str) -> Participant:
        """Add a person, or attach one more browser session of a person already here."""
        nickname = clean_nickname(nickname, self.settings.assistant_name)
        self.store.seen(self.name, participant_id, session_id, self._clock())  # before: the reaper sees it
        most = self.settings.max_participants
        participant = self._change(lambda c: presence.join(c, participant_id, nickname, most, self._now()))
        self._seen.attach(session_id)
        return participant

    def attach(self, participant_id: str, session_id: str) -> Participant | None:
        """A browser session shows the room (a heartbeat); None if the person is no longer here."""
        return self.attach_all([(participant_id, session_id)]).get(session_id)

    def attach_all(self, sessions: list[tuple[str, str]]) -> dict[str, Participant]:
        """Browser sessions (participant, session) show the room: one heartbeat for all of them, one
        store command. Returns the sessions whose person is still here, by session id."""
        here = self._read(
            lambda state: {s: state.participants[p] for p, s in sessions if p in state.participants}
        )
        if not here or self.closed:
            return {}
        self._seen.beat(sessions, here, self._clock())
        return here

    def detach(self, participant_id: str, session_id: str) -> None:
        """A browser session went away; the person leaves after the grace period unless one comes back."""
        here = self._read(lambda state: participant_id in state.participants)
        self._seen.detach(participant_id, session_id, self._clock(), here=here)

    def leave(self, participant_id: str) -> None:
        """The person pressed Leave: they leave from every tab, and no tab of theirs rejoins them quietly."""
        timeout = self.settings.heartbeat_timeout_seconds
        self._change(lambda c: presence.leave(c, participant_id, timeout, self._clock(), self._now()))
        self.store.forget_presence(self.name, participant_id)

    def reap(self) -> None:
        """Remove people whose tabs closed more than the grace period ago, or went silent."""
        timeout, grace = self.settings.heartbeat_timeout_seconds, self.settings.leave_grace_seconds
        present = self._read(lambda state: set(state.participants))
        seen = self.store.presence(self.name)  # a look first: in most rounds nobody goes
        leaving, strangers = presence.who_went_away(seen, present, self._clock(), timeout, grace)
        if leaving or strangers:  # judged again, in one change with the forgetting of their sessions
            rule = presence.reap_who_went_away
            self._change(lambda change: rule(change, self._clock(), timeout, grace, self._now()))

    def watchers(self) -> int:
        """How many browser sessions of this process show the room now."""
        return self._seen.watchers()

    def mark_seen(self, participant_id: str, session_id: str, message_id: int) -> None:
        self._seen.mark(participant_id, session_id, message_id)

    def flush_seen(self, *, now: bool = False) -> None:
        self._seen.flush(now=now)

    def last_seen(self, participant_id: str) -> int | None:
        return self._seen.last(participant_id)

    # --- the room's host -----------------------------------------------------------------------

    def set_instructions(self, participant_id: str, text: str) -> None:
        text = hosting.clean_instructions(text)
        self._change(lambda change: hosting.set_instructions(change, participant_id, text, self._now()))

    def may_edit_instructions(self, participant_id: str) -> bool:
        """Whether this person may change the room's instructions now (the host, or anyone in a room
        without one; nobody while they are locked); `set_instructions` checks again."""
        return self._read(lambda state: hosting.may_edit_instructions(state, participant_id))

    def lock_instructions(self, host_id: str, locked: bool = True) -> None:
        """Raises `HostOnly` unless `host_id` is the host now."""
        self._change(lambda change: hosting.set_instructions_locked(change, host_id, locked, self._now()))

    def remove_participant(self, host_id: str, participant_id: str) -> None:
        """Raises `HostOnly` unless `host_id` is the host now. A private room gets a new invite link."""
        new_invite = secrets.token_urlsafe(INVITE_BYTES)
        self._change(lambda change: hosting.remove(change, host_id, participant_id, self._now(), new_invite))
        self.store.forget_presence(self.name, participant_id)

    def lock(self, host_id: str, locked: bool = True) -> None:
        """Raises `HostOnly` unless `host_id` is the host now."""
        self._change(lambda change: hosting.set_locked(change, host_id, locked, self._now()))

    # --- talk ----------------------------------------------------------------------------------

    def post(
        self,
        participant_id: str,
        text: str,
        attachments: Sequence[tuple[Attachment, bytes]] = (),
        *,
        replying_to: int | None = None,
    ) -> Message:
        """Add a person's message (and the files they attached, already checked) and queue it for the
        assistant. `replying_to`: the id of the message it replies to, which it quotes (its first line);
        raises `MessageRefused` if that is no message a person or the assistant said."""
        settings = self.settings
        text = talk.clean_message(text, settings.max_message_chars, attached=bool(attachments))
        # "When it can help": the worker decides about every batch, so it must be there too.
        likely_asks = self._read(lambda state: state.policy is not ReplyPolicy.WHEN_MENTIONED)
        if likely_asks or talk.mentions(text, settings.assistant_name):
            self._ensure_worker()  # before the message: it waits for it, and the sender sees it first
        # The bytes go first (a change may run more than once); a refused message takes them back. Older
        # files go only in the change that accepts the message (`talk.keep_files`).
        for attachment, data in attachments:
            self.attachments.put(attachment.id, data)
        rule = partial(
            talk.post,
            participant_id=participant_id,
            text=text,
            attachments=[attachment for attachment, _ in attachments],
            files_limit=self._files_limit,
            replying_to=replying_to,
            keeps_notes=self.assistant.keeps_notes,
            assistant_name=settings.assistant_name,
            rate=(settings.rate_limit_messages, settings.rate_limit_seconds),
        )
        try:
            message = self._change(lambda change: rule(change, clock=self._clock(), now=self._now()))
        except (MessageRefused, RoomClosed, StoreUnavailable) as refused:
            for attachment, _ in attachments:
                with contextlib.suppress(StoreUnavailable):
                    self.attachments.drop(attachment.id)
            if isinstance(refused, RoomClosed):
                raise MessageRefused(talk.GONE) from None
            raise
        if message.status is Status.QUEUED or likely_asks or self.assistant.keeps_notes:
            self._ensure_worker()
        return message

    def react(self, participant_id: str, message_id: int, emoji: str) -> None:
        """Put one of `REACTIONS` on a message, or take it away again (one of each per person). Raises
        `MessageRefused` (nothing changes) for another emoji, a room notice, an unknown or deleted message,
        or past the person's flood limit."""
        rate = (self.settings.rate_limit_messages, self.settings.rate_limit_seconds)
        rule = partial(
            talk.react, participant_id=participant_id, message_id=message_id, emoji=emoji, rate=rate
        )
        self._refusing_when_gone(lambda change: rule(change, clock=self._clock()))

    def delete_message(self, participant_id: str, message_id: int) -> None:
        """Take back one's own message: everyone sees "message deleted" in its place, its files' bytes go,
        it leaves the queue if it is still waiting, and if the assistant saw it the worker takes it out of
        the conversation before its next turn (or soon, when idle). Raises `MessageRefused` (nothing
        changes) for someone else's message, a room notice, an unknown one, or past the flood limit."""
        rate = (self.settings.rate_limit_messages, self.settings.rate_limit_seconds)
        with self._record.lock:  # the replies quoting it, as this copy knows them: no index to keep
            messages = self._record.messages
            quoted_in = [
                m.id
                for m in messages[message_id if isinstance(message_id, int) and message_id > 0 else 0 :]
                if m.quote is not None and m.quote.id == message_id
            ]
            known = len(messages)
        rule = partial(
            talk.delete,
            participant_id=participant_id,
            message_id=message_id,
            rate=rate,
            quoted_in=quoted_in,
            known=known,
        )
        files = self._refusing_when_gone(lambda change: rule(change, clock=self._clock()))
        for attachment_id in files:
            with contextlib.suppress(StoreUnavailable):
                self.attachments.drop(attachment_id)
        if self._read(lambda state: bool(state.to_forget)):
            self._ensure_worker()

    def _refusing_when_gone(self, rule: Callable[[RoomChange], T]) -> T:
        try:
            return self._change(rule)
        except RoomClosed:
            raise MessageRefused(talk.GONE) from None

    def check_rate(self, participant_id: str) -> None:
        """Count a request other than a message (a catch-up) against the person's flood limit."""
        limit, window = self.settings.rate_limit_messages, self.settings.rate_limit_seconds
        self._change(lambda change: talk.check_rate(change, participant_id, limit, window, self._clock()))

    # --- the room's notes: anyone present adds, edits or removes an item; everyone is told ----------

    def add_note(self, participant_id: str, kind: NoteKind, text: str, who: str = "") -> None:
        """Raises `NoteRefused` (nothing changes) for an empty or too long item, or a full list."""
        text, who = notes.clean_note(text, who, kind=kind)
        self._change(lambda change: notes.add_note(change, participant_id, kind, text, who, self._now()))

    def edit_note(self, participant_id: str, item_id: int, text: str, who: str = "") -> None:
        """Raises `NoteRefused` (nothing changes) for an item no longer there, or text it would refuse."""
        self._change(lambda change: notes.edit_note(change, participant_id, item_id, text, who, self._now()))

    def remove_note(self, participant_id: str, item_id: int) -> None:
        self._change(lambda change: notes.remove_note(change, participant_id, item_id, self._now()))

    def set_reply_policy(self, participant_id: str, policy: ReplyPolicy) -> None:
        """Anyone present may change when the assistant speaks; everyone is told."""
        name = self.settings.assistant_name
        self._change(lambda change: talk.set_policy(change, participant_id, policy, name, self._now()))

    def stop_reply(self, participant_id: str, turn_number: int | None = None) -> None:
        """Stop the reply being written, at once for everyone; its text so far stays.

        The turn ends here, whatever the assistant is doing (a tool round, a retry, a stalled stream): the
        worker hears it (on another process, when the change reaches it), the assistant's stream closes,
        and its late words are dropped. With `turn_number`, only that turn is stopped.
        """
        self._change(lambda change: talk.stop(change, participant_id, turn_number, self._now()))
        self._tell_worker()

    # --- the reply worker --------------------------------------------------------------------

    def record_usage(self, usage: dict[str, int]) -> None:
        """Count the tokens a catch-up or a decision used (a turn's are counted as it finishes) in the
        room's totals, kept in the store so every process counts them. The daily budgets counted them
        already, as each call was paid through `purse`; `tokens_today` reads those."""
        with contextlib.suppress(RoomClosed, StoreUnavailable):
            self._change(partial(turns.record_usage, usage=usage))

    def holding(self) -> bool:
        """Whether this process's worker holds the room's lease and may write turns."""
        worker = self._worker
        return worker is not None and worker.holding()

    # --- what the worker asks of the room (`shared.worker.WorkerRoom`): each rule with its fence --

    def next_task(self, not_before: float, recheck: float | None) -> WorkerTask:
        """Block until the worker has something to do: answer the queued messages, or stop.

        "Answer" also when a turn is open that no worker of this process writes (its writer may have
        died, and taking the lease tells), and for messages awaiting a decision.
        """
        record = self._record
        with record.lock:
            while True:
                state = record.state
                if not self._mirror.here or state.closed:
                    return WorkerTask.STOP
                wanted = bool(state.queue or state.undecided or state.to_forget or state.notes_pending)
                wanted = wanted or state.turn is not None
                wait = not_before - time.monotonic()
                if wanted and wait <= 0:
                    return WorkerTask.ANSWER
                record.changed.wait(wait if wanted else recheck)

    def adopt(self, fence: int) -> None:
        self._change(lambda change: turns.adopt(change, fence, self._now()))

    def start_turn(self, fence: int | None) -> Turn | None:
        files = self.attachments.get
        turn = self._change(lambda change: turns.start_turn(change, self.name, fence, self._now(), files))
        return None if turn is None else replace(turn, purse=self.purse)  # every response pays through it

    def begin_reply(self, turn: Turn, fence: int | None, text: str) -> tuple[bool, int | None]:
        author = self.settings.assistant_name
        return self._change(lambda change: turns.begin_reply(change, turn, fence, text, author, self._now()))

    def dress_reply(
        self,
        turn: Turn,
        fence: int | None,
        *,
        activity: str | None = None,
        sources: Sequence[Source] = (),
        pictures: Sequence[Picture] = (),
    ) -> tuple[bool, int | None]:
        """Put on the turn's reply what the assistant is doing (`activity`; None leaves it, "" clears it),
        the sources it cites and the pictures it drew (making the reply if no words came yet). Returns
        whether the worker still writes the turn, and the reply's id.

        A picture is checked like a person's attachment (`AttachmentRefused` if it is no real picture or
        too big) and kept in the room's files, within MAX_ROOM_ATTACHMENTS_MB.
        """
        checked = [(check_upload(p.name, p.data, self.settings.max_attachment_mb), p.data) for p in pictures]
        # The bytes go first (a change may run more than once); a turn that is over takes them back. Older
        # files go only in the change that puts the pictures on the reply.
        for attachment, data in checked:
            self.attachments.put(attachment.id, data)
        rule = partial(
            dress.dress_reply,
            turn=turn,
            fence=fence,
            activity=activity,
            sources=sources,
            pictures=[attachment for attachment, _ in checked],
            files_limit=self._files_limit,
            author=self.settings.assistant_name,
        )
        writing = False
        try:
            writing, reply_id = self._change(lambda change: rule(change, now=self._now()))
        finally:
            if not writing:
                for attachment, _ in checked:
                    with contextlib.suppress(StoreUnavailable):
                        self.attachments.drop(attachment.id)
        return writing, reply_id

    def took_growth(self, growth: Growth, version: int) -> None:
        self._mirror.take_growth(growth, version)

    def finish_turn(
        self, turn: Turn, fence: int | None, began: int | None, error: str | None, *, carry_over: bool
    ) -> None:
        rule = partial(turns.finish_turn, turn=turn, fence=fence, began=began, error=error)
        self._change(lambda change: rule(change, carry_over=carry_over, now=self._now()))

    def set_conversation(self, conversation: str, fence: int | None) -> bool:
        """Keep the opened conversation; False if the room closed or another worker took it (close it)."""
        try:
            return self._change(partial(turns.set_conversation, conversation=conversation, fence=fence))
        except (RoomClosed, StoreUnavailable):
            return False

    def forget_conversation(self) -> None:
        with contextlib.suppress(RoomClosed, StoreUnavailable):
            self._change(turns.forget_conversation)

    def to_forget(self, fence: int | None = None) -> list[Message]:
        """Deleted messages the assistant saw, as they were sent, for the worker to take out of the
        conversation; with `fence`, none unless that worker writes the room's turns (a stale one must
        not delete items twice: the second time it could find another message's twin)."""
        return self._read(lambda state: list(state.to_forget) if fence in (None, state.fence) else [])

    def forgot(self, fence: int | None, message_ids: list[int]) -> bool:
        """Those messages are out of the conversation (or the worker gave up on them)."""
        return self._change(partial(turns.forgotten, fence=fence, message_ids=message_ids))

    def take_batch(self, fence: int | None) -> Batch | None:
        return self._change(partial(decisions.take_batch, fence=fence, room=self.name))

    def settle_batch(self, fence: int | None, batch: Batch, decision: Decision) -> bool:
        return self._change(partial(decisions.settle_batch, fence=fence, batch=batch, decision=decision))

    def take_notes_batch(self, fence: int | None) -> NotesBatch | None:
        return self._change(partial(notes.take_notes_batch, fence=fence, room=self.name))

    def settle_notes(self, fence: int | None, batch: NotesBatch, update: NotesUpdate) -> bool:
        author = self.settings.assistant_name
        return self._change(
            partial(notes.settle_notes, fence=fence, batch=batch, update=update, author=author)
        )

    def _ensure_worker(self) -> None:
        with self._worker_lock:
            if not self._mirror.here or (self._worker is not None and self._worker.is_alive()):
                return
            died = self._worker is not None
            self._worker = ReplyWorker(self)
            self._worker.start()
        if died:
            log.error("room %s: the reply worker stopped unexpectedly; starting a new one", self.name)
            with contextlib.suppress(ChatError):
                self.notice("The assistant's worker stopped unexpectedly and was restarted.")

    def _tell_worker(self) -> None:
        """The copy changed: the worker hears whether the turn it writes is still its own (a Stop)."""
        worker = self._worker
        if worker is not None:
            with self._record.lock:
                state = self._record.state
                number, fence = (state.turn.number if state.turn else None), state.fence
            worker.hear(number, fence)

    # --- closing -------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the room for good: stop the worker and close the assistant's conversation."""
        with contextlib.suppress(RoomClosed):
            self._change(lambda change: lifetime.mark_closed(change, self._now()))
        self.finish_closing()

    def close_if_idle_and_empty(self) -> bool:
        """Close the room if it is idle and empty; True if this call did. Decided and marked in one change,
        which leaves the rest (its data, its conversation) as a job in the store (`shared.room.lifetime`)."""
        grace = self.settings.room_empty_grace_seconds
        with self._record.lock:  # this process's copy says it is in use: no need to ask the store
            state = self._record.state
            if state.empty_since is None or state.turn is not None or state.queue:
                return False
        try:  # the clock is read inside the change: with Redis, each run reads it afresh
            return self._change(lambda c: lifetime.close_if_idle(c, self._clock(), grace, self._now()))
        except RoomClosed:
            return False

    def finish_closing(self) -> None:
        """Finish closing this room, marked closed, now (`lifetime.finish_closing`): for `close`; the hub's
        reaper finishes the closings it finds in the store. May wait on the model's server."""
        for closing in self.store.closings():
            if (closing.room, closing.generation) == (self.name, self.generation):
                try:
                    lifetime.finish_closing(self.store, self.assistant, closing)
                except Exception:
                    log.exception("room %s: closing it failed; the reaper tries again", self.name)
        self.leave_process(closing=True)

    def leave_process(self, *, closing: bool = False) -> None:
        """This process stops serving the room: it closed (`closing`), or the process is told to stop
        (SIGTERM, every redeploy) and the room lives on in Redis. Either way the reply being written stops
        here at once. A process that stops abandons its turn rather than end it: the reply was cut short,
        and the next worker to take the lease (on another process, or on the next start) ends it as
        broken off; the worker gives its lease back as it goes, so that comes soon."""
        self._mirror.gone()
        worker = self._worker
        if worker is not None:
            if not closing:
                log.info("room %s: this process stops serving it; another takes it over", self.name)
            worker.stop(wait=CLOSE_WAIT_SECONDS)
