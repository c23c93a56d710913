"""What people say and decide: posting (with its limits), when the assistant speaks, and Stop."""

from __future__ import annotations

import contextlib
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import replace

from shared.errors import MessageRefused, RoomClosed
from shared.messages import Attachment, Message, ReplyPolicy, Role, Status
from shared.room.core import RoomCore
from shared.store import RoomChange, StoreUnavailable

# Control characters other than newline and tab would garble the page or the model's input.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
GONE = "You are no longer in the room. Join again to send messages."


def mentions(text: str, name: str) -> bool:
    """Whether `text` calls on `name` as @name (any case), not as part of a longer word."""
    return re.search(rf"(?<![\w@])@{re.escape(name)}(?!\w)", text, re.IGNORECASE) is not None


class Talk(RoomCore):
    def post(
        self, participant_id: str, text: str, attachments: Sequence[tuple[Attachment, bytes]] = ()
    ) -> Message:
        """Add a person's message (and the files they attached, already checked) and queue it for the
        assistant."""
        text = _CONTROL.sub("", unicodedata.normalize("NFC", text.replace("\r\n", "\n"))).strip()
        if not text and not attachments:
            raise MessageRefused("Your message is empty, so nothing was sent.")
        limit = self.settings.max_message_chars
        if len(text) > limit:
            raise MessageRefused(
                f"Your message has {len(text):,} characters; the limit is {limit:,}. Nothing was sent."
            )

        def post(change: RoomChange) -> Message:
            state = change.state
            participant = state.participants.get(participant_id)
            if participant is None or state.closed:
                raise MessageRefused(GONE)
            self._check_rate(change, participant_id)
            asks = state.policy is ReplyPolicy.EVERY_MESSAGE or mentions(text, self.settings.assistant_name)
            deciding = state.policy is ReplyPolicy.WHEN_HELPFUL and not asks
            message = change.add(
                Role.USER,
                text,
                self._now(),
                author=participant.nickname,
                participant_id=participant_id,
                status=Status.QUEUED if asks else Status.COMPLETE,
                attachments=tuple(attachment for attachment, _ in attachments),
            )
            for attachment, _ in attachments:
                state.attachment_messages[attachment.id] = message.id
            self._mark_dropped(change, dropped)
            if asks and state.undecided:  # a mention answers now: what was said before it goes along
                state.context.extend(state.undecided)
                state.undecided = []
            (state.queue if asks else state.undecided if deciding else state.context).append(message.id)
            return message

        with self._record.lock:
            # "When it can help": the worker decides about every batch, so it must be there too.
            likely_asks = self._record.state.policy is not ReplyPolicy.WHEN_MENTIONED
        if likely_asks or mentions(text, self.settings.assistant_name):
            self._ensure_worker()  # before the message: it waits for it, and the sender sees it first
        # The bytes go first (a change may run more than once); a refused message takes them back.
        dropped = [
            old for attachment, data in attachments for old in self.attachments.put(attachment.id, data)
        ]
        try:
            message = self._change(post)
        except (MessageRefused, RoomClosed, StoreUnavailable) as refused:
            for attachment, _ in attachments:
                with contextlib.suppress(StoreUnavailable):
                    self.attachments.drop(attachment.id)
            if isinstance(refused, RoomClosed):
                raise MessageRefused(GONE) from None
            raise
        if message.status is Status.QUEUED or likely_asks:
            self._ensure_worker()
        return message

    @staticmethod
    def _mark_dropped(change: RoomChange, dropped: list[str]) -> None:
        """Older files dropped to make room for new ones: their messages say so, for everyone."""
        owners = change.state.attachment_messages
        for message_id in sorted({owners.pop(a) for a in dropped if a in owners}):
            older = change.message(message_id)
            marked = tuple(replace(a, dropped=True) if a.id in dropped else a for a in older.attachments)
            change.put(replace(older, attachments=marked))

    def check_rate(self, participant_id: str) -> None:
        """Count a request other than a message (a catch-up) against the person's flood limit."""
        self._change(lambda change: self._check_rate(change, participant_id))

    def _check_rate(self, change: RoomChange, participant_id: str) -> None:
        """One person may not drown the room: at most N messages in any window of S seconds."""
        limit, window = self.settings.rate_limit_messages, self.settings.rate_limit_seconds
        now = self._clock()
        recent = [t for t in change.state.recent_posts.get(participant_id, []) if now - t < window]
        if len(recent) >= limit:
            wait = max(1, round(window - (now - recent[0])))
            raise MessageRefused(
                f"Slow down a little: you can send {limit} messages every {window:g} seconds. "
                f"Try again in {wait} second{'s' if wait != 1 else ''}. Nothing was sent."
            )
        change.state.recent_posts[participant_id] = [*recent, now]

    def set_reply_policy(self, participant_id: str, policy: ReplyPolicy) -> None:
        """Anyone present may change when the assistant speaks; everyone is told."""

        def set_policy(change: RoomChange) -> None:
            state = change.state
            participant = state.participants.get(participant_id)
            if participant is None or policy is state.policy:
                change.nothing()
                return
            state.policy = policy
            state.policy_changes += 1
            # Messages not yet decided about were said without asking: the next turn hears them.
            state.context.extend(state.undecided)
            state.undecided = []
            name = self.settings.assistant_name
            when = {
                ReplyPolicy.EVERY_MESSAGE: "every message",
                ReplyPolicy.WHEN_MENTIONED: f"only when mentioned as @{name}",
                ReplyPolicy.WHEN_HELPFUL: f"when it can help (and when mentioned as @{name})",
            }[policy]
            change.add(Role.SYSTEM, f"{participant.nickname} set {name} to reply to {when}.", self._now())

        self._change(set_policy)

    def stop_reply(self, participant_id: str, turn_number: int | None = None) -> None:
        """Stop the reply being written, at once for everyone; its text so far stays.

        The turn ends here, whatever the assistant is doing (a tool round, a retry, a stalled stream): the
        worker is told through `Turn.stop` (on another process, when the change reaches it) and its late
        words are dropped. With `turn_number`, only that turn is stopped (a Stop pressed just as the next
        reply started must not stop that one).
        """

        def stop(change: RoomChange) -> None:
            state = change.state
            participant = state.participants.get(participant_id)
            if participant is None or state.turn is None or turn_number not in (None, state.turns):
                change.nothing()
                return
            self._end_turn(change, stopped_by=participant.nickname)

        self._change(stop)
        self._hear_stop()
