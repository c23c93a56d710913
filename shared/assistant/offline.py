"""The offline demo assistant: no key, no network, the same seam as the real one.

Deterministic: the same turn always gets the same reply, written word by word like a model would.
"""

from __future__ import annotations

import itertools
import re
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from shared.attachments import kind_and_size
from shared.messages import (
    Attachment,
    Batch,
    Decision,
    Message,
    NotesBatch,
    NotesUpdate,
    Role,
    Turn,
    escape_markdown,
    nothing_missed,
    said,
)
from shared.tools import spoken_time

if TYPE_CHECKING:
    from shared.config import Settings

OFFLINE_NOTICE = (
    "I'm the offline demo assistant: no AI model is connected, so I can only greet you, tell the "
    "time and say who's here. Set `OPENAI_API_KEY` to talk to a real model."
)
_ASKS_TIME = re.compile(r"\b(time|date|day|today|clock)\b", re.IGNORECASE)
_ASKS_WHO = re.compile(r"\b(who|here|people|present|online|room)\b", re.IGNORECASE)
_ASKS = re.compile(r"\?(\s|$)")  # a sentence that ends in a question mark
_QUOTE_WORDS = 24
CATCH_UP_LINES = 3  # the last lines an offline catch-up quotes


def join_names(names: tuple[str, ...] | list[str]) -> str:
    names = list(names)
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def _quote(text: str) -> str:
    words = text.split()
    shown = " ".join(words[:_QUOTE_WORDS]) + (" …" if len(words) > _QUOTE_WORDS else "")
    # Backticks keep the person's Markdown from changing how the reply looks.
    return "`" + shown.replace("`", "'") + "`"


def _describe(attachment: Attachment, received: bool) -> str:
    """What the offline assistant can tell of a file: its name, type, size and a picture's size."""
    name = _quote(attachment.name)
    if not received:
        return f"{name}, which the room no longer keeps"
    pixels = f", {attachment.width}×{attachment.height} pixels" if attachment.is_image else ""
    return f"{name} ({kind_and_size(attachment)}{pixels})"


class OfflineAssistant:
    label = "Offline demo assistant"
    keeps_notes = False  # the room's plain rule notes the lines people mark (`shared.room.notes`)

    def __init__(self, settings: Settings):
        self.name = settings.assistant_name
        self._word_delay = settings.word_delay_ms / 1000
        self._ids = itertools.count(1)

    def open_conversation(self, room: str) -> str:
        return f"offline-{room}-{next(self._ids)}"

    def close_conversation(self, conversation: str) -> None:
        pass

    def forget(self, conversation: str, messages: Sequence[Message]) -> None:
        """Nothing to forget: each reply is made from its turn alone, which leaves deleted messages out."""

    def compose(self, turn: Turn) -> str:
        """The whole reply to a turn."""
        # The reply is Markdown and a nickname may hold Markdown ("# Huge"): every name goes in escaped.
        people = [escape_markdown(n) for n in turn.addressees] or ["everyone"]
        lines = [f"Hi {join_names(people)}! 🐾"]
        if turn.context:
            heard = "; ".join(f"{escape_markdown(m.author)} said {_quote(m.text)}" for m in turn.context)
            lines.append(f"Since I last spoke: {heard}.")
        for message in turn.messages:
            if message.role is Role.USER and message.text:
                lines.append(f"{escape_markdown(message.author)}, you said {_quote(message.text)}.")
            if message.attachments:
                received = "; ".join(_describe(a, a.id in turn.files) for a in message.attachments)
                lines.append(f"{escape_markdown(message.author)}, you sent {received}.")
        asked = " ".join(m.text for m in turn.messages)
        if _ASKS_TIME.search(asked):
            lines.append(f"It is {spoken_time(turn)}.")
        if _ASKS_WHO.search(asked):
            present = [escape_markdown(n) for n in turn.present]
            lines.append(f"In the room right now: {join_names(present) or 'nobody'}.")
        if turn.room_instructions:
            # No model can follow them here, so the demo assistant says what they ask of it.
            lines.append(f"This room's instructions ask of me: {_quote(turn.room_instructions)}.")
        if not any(m.role is Role.ASSISTANT for m in turn.history):
            lines.append(OFFLINE_NOTICE)
        return "\n\n".join(lines)

    def summarize(
        self,
        messages: Sequence[Message],
        for_nickname: str,
        usage: dict[str, int] | None = None,
        *,
        purse: object = None,
    ) -> str:
        """Who said how many messages, and the last few lines: no model needed, no tokens (nothing to
        reserve in `purse`)."""
        spoken = said(messages)
        if not spoken:
            return nothing_missed(escape_markdown(for_nickname))
        counts = Counter(escape_markdown(m.author) for m in spoken)
        who = join_names([f"{name} {n} message{'s' if n != 1 else ''}" for name, n in counts.most_common()])
        last = "\n".join(
            f"- {escape_markdown(m.author)}: {_quote(m.text) if m.text else f'{len(m.attachments)} file(s)'}"
            for m in spoken[-CATCH_UP_LINES:]
        )
        return f"While you were away, {escape_markdown(for_nickname)}: {who}. The last few lines:\n\n{last}"

    def decide(self, batch: Batch, usage: dict[str, int] | None = None, *, purse: object = None) -> Decision:
        """Answer a question (a sentence ending in "?"); let everything else pass. No model, no tokens."""
        asked = [m for m in batch.messages if _ASKS.search(m.text)]
        if asked:
            return Decision(True, f"{asked[-1].author} asked a question")
        return Decision(False, "nobody asked a question")

    def keep_notes(
        self, batch: NotesBatch, usage: dict[str, int] | None = None, *, purse: object = None
    ) -> NotesUpdate:
        """No model to read the chat: the notes hold what people mark (the room's plain rule)."""
        return NotesUpdate()

    def reply(self, conversation: str, turn: Turn) -> Iterator[str]:
        # Split keeping the whitespace, so the pieces join back to exactly the composed text.
        for index, piece in enumerate(re.findall(r"\s*\S+", self.compose(turn))):
            if index and self._word_delay:
                time.sleep(self._word_delay)
            yield piece
