"""The `Assistant` seam: open a conversation, stream a reply to a turn, close the conversation.

Two implementations: `offline.OfflineAssistant` (no key needed) and `openai.OpenAIAssistant`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from shared.messages import Message, Role

if TYPE_CHECKING:
    from shared.config import Settings

log = logging.getLogger(__name__)


class StopSignal(threading.Event):
    """Set when a turn must end (Stop, or its worker lost the room); what waits on something else, like a
    model's stream, registers how to be woken (`calling`), so the turn ends at once, not at the next event."""

    def __init__(self) -> None:
        super().__init__()
        self._wakers: list[Callable[[], None]] = []
        self._wakers_lock = threading.Lock()

    def set(self) -> None:
        super().set()
        with self._wakers_lock:
            wakers, self._wakers = self._wakers, []
        for wake in wakers:
            try:
                wake()
            except Exception:
                log.exception("waking a stopped turn failed")

    @contextlib.contextmanager
    def calling(self, wake: Callable[[], None]) -> Iterator[None]:
        """Call `wake` if the signal is set while the block runs (at once if it already is)."""
        with self._wakers_lock:
            self._wakers.append(wake)
        if self.is_set():
            self.set()
        try:
            yield
        finally:
            with self._wakers_lock:
                if wake in self._wakers:
                    self._wakers.remove(wake)


@dataclass(frozen=True)
class Turn:
    """What the assistant is asked to answer: the people's new messages and what it should know."""

    room: str
    messages: tuple[Message, ...]  # the new messages from people, oldest first
    history: tuple[Message, ...]  # finished messages before them, for assistants that keep no state
    present: tuple[str, ...]  # nicknames of the people in the room now
    now: datetime
    # Said since the last turn without asking the assistant (reply policy "only when mentioned"):
    # the assistant should know it, but answers `messages`.
    context: tuple[Message, ...] = ()
    number: int = 0  # which of the room's turns this is
    # Set when someone presses Stop: the room has already ended the turn; the assistant should give up
    # as soon as it can (between events, tool rounds and retries) instead of finishing unseen work.
    stop: StopSignal = field(default_factory=StopSignal, compare=False, repr=False)
    # The bytes of the files attached to `messages` and `context`, by attachment id (those the room still
    # keeps); the messages themselves carry only what each file is.
    files: Mapping[str, bytes] = field(default_factory=dict, compare=False, repr=False)
    # Tokens the model reported for this turn, added up by the assistant as its responses end (also
    # for a reply that broke off: it was paid for). The worker records them in the room's state.
    usage: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    @property
    def addressees(self) -> tuple[str, ...]:
        """The people this reply answers, in the order they spoke, each once."""
        return tuple(dict.fromkeys(m.author for m in self.messages if m.role is Role.USER))


class Assistant(Protocol):
    name: str
    label: str  # what the page says the assistant is, e.g. "Offline demo assistant"

    def open_conversation(self, room: str) -> str:
        """Return a handle for a new conversation; raise AssistantError if that fails."""

    def reply(self, conversation: str, turn: Turn) -> Iterator[str]:
        """Yield the reply's text in pieces as it is written; raise AssistantError on failure."""

    def close_conversation(self, conversation: str) -> None:
        """Forget the conversation (its token counts too); must not raise for one that is already gone."""

    def summarize(
        self, messages: Sequence[Message], for_nickname: str, usage: dict[str, int] | None = None
    ) -> str:
        """A short summary of `messages` for one person who missed them, made apart from any conversation
        (nothing is stored with the room's); the tokens it cost are added to `usage`; raise AssistantError
        if that fails."""


USAGE_KEYS = ("input_tokens", "output_tokens", "total_tokens")


def add_usage(totals: dict[str, int], reported: object) -> None:
    """Add the token counts a response reported (its `usage`, or None) to `totals`."""
    if reported is None:
        return
    for key in USAGE_KEYS:
        totals[key] = totals.get(key, 0) + (getattr(reported, key, 0) or 0)


def make_assistant(settings: Settings) -> Assistant:
    """The OpenAI assistant when a key is set, else the offline demo assistant."""
    if settings.offline:
        from shared.assistant.offline import OfflineAssistant

        return OfflineAssistant(settings)
    from shared.assistant.openai import OpenAIAssistant

    return OpenAIAssistant(settings)
