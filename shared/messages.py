"""The values a room is made of: messages and participants (frozen dataclasses), and the turn the
assistant is asked to answer, with its stop signal.

The room replaces a value to change it; nobody mutates one that was handed out.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shared.spending import Purse

log = logging.getLogger(__name__)


class Role(StrEnum):
    USER = "user"
    ASSISTANT = "assistant"
    SYSTEM = "system"


class ReplyPolicy(StrEnum):
    """When the assistant speaks in a room."""

    EVERY_MESSAGE = "every"
    WHEN_MENTIONED = "mentioned"
    # After each batch of messages, a small stateless request decides whether the assistant answers.
    WHEN_HELPFUL = "helpful"


class Status(StrEnum):
    QUEUED = "queued"  # a person's message the assistant has not answered yet
    UNANSWERED = "unanswered"  # its turn failed before the assistant saw it: it goes with the next message
    STREAMING = "streaming"  # the assistant's reply while it is being written
    COMPLETE = "complete"
    ERROR = "error"  # the reply broke off; its partial text stays
    STOPPED = "stopped"  # someone pressed Stop; the partial text stays


@dataclass(frozen=True)
class Attachment:
    """A file attached to a message: what it is, never its bytes (those stay in the room's AttachmentStore)."""

    id: str  # a random token; the key of the bytes in the room's AttachmentStore
    name: str  # the file name as the person's browser sent it
    mime: str  # checked from the content: image/png, image/jpeg, image/gif, image/webp or application/pdf
    size: int  # bytes
    width: int = 0  # pictures only, in pixels
    height: int = 0
    dropped: bool = False  # the room let go of its bytes to stay within MAX_ROOM_ATTACHMENTS_MB

    @property
    def is_image(self) -> bool:
        return self.mime.startswith("image/")


# The reactions anyone can put on a message, in the order the page shows them.
REACTIONS = ("👍", "❤️", "😂", "😮", "🎉")

# How much of a message a reply quotes (its first line, cut to this many characters).
QUOTE_CHARS = 120


@dataclass(frozen=True)
class Quote:
    """The message a person's message replies to, as it was when they replied."""

    id: int  # the quoted message's id in the room
    author: str
    text: str  # its first line, at most QUOTE_CHARS characters ("" for a message of files only)


@dataclass(frozen=True)
class Source:
    """A web page the assistant's reply cites (a `url_citation` of the web search tool)."""

    url: str
    title: str = ""


@dataclass(frozen=True)
class Activity:
    """What the assistant is doing while it writes a reply ("searching the web…", "drawing…"); an
    assistant yields one between pieces of text, and `Activity("")` when that is over."""

    text: str


@dataclass(frozen=True)
class Picture:
    """A picture the assistant made for its reply (the image generation tool): it goes into the room like
    a file a person attached."""

    data: bytes
    mime: str  # image/png, image/jpeg or image/webp
    name: str  # a file name for it, e.g. "drawing-1.png"


# What an assistant's `reply` yields: pieces of text, and now and then what it is doing, a source it
# cites or a picture it made.
ReplyPiece = str | Activity | Source | Picture


@dataclass(frozen=True)
class Message:
    id: int
    role: Role
    text: str
    created_at: datetime
    author: str = ""  # the nickname, or the assistant's name; "" for system lines
    participant_id: str = ""
    status: Status = Status.COMPLETE
    reply_to: tuple[str, ...] = ()  # for a reply: the nicknames it answers
    stopped_by: str = ""  # for a stopped reply: who pressed Stop
    attachments: tuple[Attachment, ...] = ()  # files a person attached, in the order they chose them
    quote: Quote | None = None  # a person's message: the message it replies to
    # Who reacted how: (emoji, nicknames in the order they reacted), emojis in REACTIONS order, none empty.
    reactions: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # The same reactions by participant id, in the same order: a reaction belongs to the person who made
    # it, not to whoever has their nickname later. Stored before ids were kept, a reaction has none here
    # (its id counts as "") and is known by its nickname alone.
    reacted_by: tuple[tuple[str, tuple[str, ...]], ...] = ()
    deleted: bool = False  # its author took it back: text, files, quote and reactions are gone
    sources: tuple[Source, ...] = ()  # an assistant's reply: the web pages it cites, each once
    activity: str = ""  # an assistant's reply while it is written: what it is doing besides writing

    def reactors(self, emoji: str) -> list[tuple[str, str]]:
        """(participant id, nickname) of each person who put `emoji` on the message, in order ("" for an
        id that was not kept)."""
        names, ids = dict(self.reactions).get(emoji, ()), dict(self.reacted_by).get(emoji, ())
        return list(zip(ids + ("",) * (len(names) - len(ids)), names, strict=False))

    def reactions_of(self, participant_id: str, nickname: str) -> tuple[str, ...]:
        """The emojis this person put on the message."""
        return tuple(
            emoji
            for emoji, _ in self.reactions
            if any(is_reactor(who, participant_id, nickname) for who in self.reactors(emoji))
        )


def is_reactor(who: tuple[str, str], participant_id: str, nickname: str) -> bool:
    """Whether a reaction's (participant id, nickname) is this person's: by id, or by nickname for a
    reaction stored before ids were kept."""
    reactor_id, reactor_name = who
    return reactor_id == participant_id if reactor_id else reactor_name == nickname


@dataclass(frozen=True)
class Participant:
    id: str  # a random token the browser keeps, so a reload is the same person
    nickname: str
    joined_at: datetime


def said(messages: Iterable[Message]) -> list[Message]:
    """What people and the assistant said (text or files): no system lines, no empty reply yet, and no
    message its author took back (its page still shows "message deleted"; nothing else may use it)."""
    return [m for m in messages if m.role is not Role.SYSTEM and not m.deleted and (m.text or m.attachments)]


def nothing_missed(nickname: str) -> str:
    """A catch-up's answer when nobody said anything."""
    return f"Nothing was said while you were away, {nickname}."


# Markdown's own markup, HTML's `<` and `&`, and Streamlit's additions: `:red[...]` and `:material/...:`
# directives, `$...$` math.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~&$:\"'])")


def escape_markdown(text: str) -> str:
    """Show a nickname (or a file's name) exactly as typed, never as formatting, links, HTML or math."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


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
class Decision:
    """Whether the assistant answers a batch of messages (reply policy "When it can help"), and why."""

    answer: bool
    reason: str = ""


@dataclass(frozen=True)
class Batch:
    """Messages said since the last decision (reply policy "When it can help"): should the assistant answer?"""

    room: str
    messages: tuple[Message, ...]  # the new messages, oldest first
    history: tuple[Message, ...]  # finished messages before them, for judging what the new ones need
    # The room's instructions, for an assistant to read, not to obey: the OpenAI assistant leaves them out
    # of a decision (its people cannot change when it answers, nor make every batch cost a turn).
    room_instructions: str = ""


class NoteKind(StrEnum):
    """The three lists of a room's notes."""

    DECISION = "decision"
    ACTION = "action"  # an action item: who does what
    QUESTION = "question"  # an open question


NOTE_LISTS = {
    NoteKind.DECISION: "Decisions",
    NoteKind.ACTION: "Action items",
    NoteKind.QUESTION: "Open questions",
}


@dataclass(frozen=True)
class NoteItem:
    """One line of the room's notes; its `id` (never reused in the room) is how an edit names it."""

    id: int
    kind: NoteKind
    text: str  # the decision, the thing to do, or the question
    who: str = ""  # an action item's: who does it (a name, as written)
    by: str = ""  # who put it there: a person's nickname, or the assistant's name


@dataclass(frozen=True)
class Notes:
    """The room's notes ("Room notes"): decisions, action items and open questions, in the order noted."""

    items: tuple[NoteItem, ...] = ()
    next_id: int = 1

    def of(self, kind: NoteKind) -> tuple[NoteItem, ...]:
        return tuple(item for item in self.items if item.kind is kind)

    def item(self, item_id: int) -> NoteItem | None:
        return next((item for item in self.items if item.id == item_id), None)


@dataclass(frozen=True)
class NotesBatch:
    """Messages said since the assistant last kept the room's notes, and the notes as they are."""

    room: str
    messages: tuple[Message, ...]  # the new messages, oldest first
    history: tuple[Message, ...]  # a few finished messages before them
    notes: Notes
    through: int = 0  # the newest message id it answers for: older ones wait no more


@dataclass(frozen=True)
class NotesUpdate:
    """What the assistant would change in the notes after a batch; empty: no change."""

    decisions: tuple[str, ...] = ()
    action_items: tuple[tuple[str, str], ...] = ()  # (who, what)
    open_questions: tuple[str, ...] = ()
    answered: tuple[int, ...] = ()  # ids of open questions the new messages answered: they leave the list

    @property
    def empty(self) -> bool:
        return not (self.decisions or self.action_items or self.open_questions or self.answered)


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
    # What the room's people wrote about its purpose ("Room instructions"): their wishes, which the
    # assistant takes below the app's own instructions (a labelled, quoted item), so they cannot change them.
    room_instructions: str = ""
    # The room's notes as they are now ("Room notes"): given to the assistant like the room's instructions,
    # as a labelled item below the app's own rules.
    room_notes: Notes = field(default_factory=Notes)
    # What the room may spend on the model (`shared.spending.Purse`): every response of the turn,
    # tool rounds included, reserves its tokens there first. None: no budget (tests of the assistant alone).
    purse: Purse | None = field(default=None, compare=False, repr=False)

    @property
    def addressees(self) -> tuple[str, ...]:
        """The people this reply answers, in the order they spoke, each once."""
        return tuple(dict.fromkeys(m.author for m in self.messages if m.role is Role.USER))
