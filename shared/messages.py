"""The values a room is made of: messages and participants, each a frozen dataclass.

The room replaces a value to change it; nobody mutates one that was handed out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Role(StrEnum):
    USER = "user"
    ASSISTANT = "assistant"
    SYSTEM = "system"


class ReplyPolicy(StrEnum):
    """When the assistant speaks in a room."""

    EVERY_MESSAGE = "every"
    WHEN_MENTIONED = "mentioned"


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


@dataclass(frozen=True)
class Participant:
    id: str  # a random token the browser keeps, so a reload is the same person
    nickname: str
    joined_at: datetime


def said(messages: Iterable[Message]) -> list[Message]:
    """What people and the assistant said (text or files): no system lines, no empty reply yet."""
    return [m for m in messages if m.role is not Role.SYSTEM and (m.text or m.attachments)]


def nothing_missed(nickname: str) -> str:
    """A catch-up's answer when nobody said anything."""
    return f"Nothing was said while you were away, {nickname}."


# Markdown's own markup, HTML's `<` and `&`, and Streamlit's additions: `:red[...]` and `:material/...:`
# directives, `$...$` math.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~&$:\"'])")


def escape_markdown(text: str) -> str:
    """Show a nickname (or a file's name) exactly as typed, never as formatting, links, HTML or math."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)
