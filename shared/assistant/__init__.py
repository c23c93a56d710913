"""The `Assistant` seam: open a conversation, stream a reply to a turn, close the conversation.

Two implementations: `offline.OfflineAssistant` (no key needed) and `openai.OpenAIAssistant`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Protocol

# What a turn is lives with the other things said in a room (`shared.messages`), so that the tools and
# the room can use it without importing the assistants; it is named here too, as part of the seam.
from shared.messages import (
    Activity,
    Batch,
    Decision,
    Message,
    NotesBatch,
    NotesUpdate,
    Picture,
    ReplyPiece,
    Source,
    StopSignal,
    Turn,
)

if TYPE_CHECKING:
    from shared.config import Settings
    from shared.spending import Purse

__all__ = [
    "USAGE_KEYS",
    "Activity",
    "Assistant",
    "Batch",
    "Decision",
    "NotesBatch",
    "NotesUpdate",
    "Picture",
    "ReplyPiece",
    "Source",
    "StopSignal",
    "Turn",
    "add_usage",
    "make_assistant",
]


class Assistant(Protocol):
    name: str
    label: str  # what the page says the assistant is, e.g. "Offline demo assistant"
    # Whether it keeps the room's notes with a model request after each batch (`keep_notes`); without
    # one, only the plain rule notes the lines people mark.
    keeps_notes: bool

    def open_conversation(self, room: str) -> str:
        """Return a handle for a new conversation; raise AssistantError if that fails."""

    def reply(self, conversation: str, turn: Turn) -> Iterator[ReplyPiece]:
        """Yield the reply's text in pieces as it is written, and between them what the assistant is doing
        (`Activity`), the sources it cites (`Source`) and the pictures it makes (`Picture`); raise
        AssistantError on failure. Every request to the model (each tool round too) goes through
        `turn.purse` first: `BudgetSpent` once it refuses."""

    def forget(self, conversation: str, messages: Sequence[Message]) -> None:
        """Take messages their authors deleted out of the conversation (with their files), so the model
        no longer sees them; one never sent, or already gone, is no error. Raise AssistantError if that
        fails."""

    def close_conversation(self, conversation: str) -> None:
        """Forget the conversation (its token counts too); must not raise for one that is already gone."""

    def summarize(
        self,
        messages: Sequence[Message],
        for_nickname: str,
        usage: dict[str, int] | None = None,
        *,
        purse: Purse | None = None,
    ) -> str:
        """A short summary of `messages` for one person who missed them, made apart from any conversation
        (nothing is stored with the room's); the tokens it cost are added to `usage`; raise AssistantError
        if that fails (`BudgetSpent`, with no request made, once `purse` refuses)."""

    def decide(
        self, batch: Batch, usage: dict[str, int] | None = None, *, purse: Purse | None = None
    ) -> Decision:
        """Whether the assistant should answer `batch` (reply policy "When it can help"): one small request
        apart from any conversation (nothing is stored); its tokens are added to `usage`; raise
        AssistantError if that fails (`BudgetSpent`, with no request made, once `purse` refuses)."""

    def keep_notes(
        self, batch: NotesBatch, usage: dict[str, int] | None = None, *, purse: Purse | None = None
    ) -> NotesUpdate:
        """What to change in the room's notes after `batch` (an empty update: no change): one small
        request apart from any conversation (nothing is stored); its tokens are added to `usage`; raise
        AssistantError if that fails (`BudgetSpent`, with no request made, once `purse` refuses)."""


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
