"""Unread messages and mentions: what a person's pages have not shown yet in a room they are in, whether
any of it calls on them as @nickname, and which mentions a tab has already announced.

"Unread" is what others said after the newest message a page of this person showed (`seen.py`): messages
from other people and the assistant's replies, not the room's own notes (joins, leaves) nor messages
their authors took back. A mention is `@nickname` with the person's nickname in that room, compared the
way nicknames are (`nicknames.nickname_key`: case, width and look-alike letters do not matter), and not
inside a longer word (`@Bobby` does not call Bob). A reply still being written is counted but not read
for mentions until it is finished: its last word may still grow (`@Bob` becoming `@Bobby`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from shared.markdown_pictures import without_code
from shared.messages import Message, Role, Status
from shared.nicknames import MAX_NICKNAME_CHARS, nickname_key

# An @ that starts a mention: not inside a word or an e-mail address, and a name right after it.
_AT = re.compile(r"(?<![\w@])@(?=\S)")
_WORD = re.compile(r"\w")
# How far after the @ a nickname may reach in a message: its characters, and room for compatibility
# forms (a full-width name is as long, a ligature shorter) and a combining mark or two.
_SPAN = 2 * MAX_NICKNAME_CHARS


def mentions_person(text: str, nickname: str) -> bool:
    """Whether `text` calls on `nickname` as @nickname, compared as nicknames are compared.

    Nicknames may hold spaces ("Ali Khan"), so the name after an @ is not one word: every stretch after
    it that ends at a word's end is compared with the nickname. An @ inside code is quoted, not said (the
    offline assistant quotes each message it answers in a code span).
    """
    target = nickname_key(nickname)
    if not target or "@" not in text:
        return False
    text = without_code(text)
    for at in _AT.finditer(text):
        start = at.end()
        if not target.startswith(nickname_key(text[start])):
            continue  # the key is made letter by letter: a name that starts otherwise is another name
        for end in range(start + 1, min(len(text), start + _SPAN) + 1):
            if end < len(text) and _WORD.match(text[end]):
                continue  # the name would end inside a word
            if nickname_key(text[start:end]) == target:
                return True
    return False


def said_by_someone_else(message: Message, participant_id: str, nickname: str) -> bool:
    """A message from another person or the assistant that a page would show as a bubble."""
    if message.deleted or message.role is Role.SYSTEM:
        return False
    if message.role is Role.ASSISTANT:
        return bool(message.text or message.attachments)  # a reply with no words yet is not drawn
    if message.participant_id:
        return message.participant_id != participant_id
    return nickname_key(message.author) != nickname_key(nickname)  # stored before ids were kept


def calls_on(message: Message, participant_id: str, nickname: str) -> bool:
    """Someone else's finished message that mentions the person."""
    return (
        message.status is not Status.STREAMING
        and said_by_someone_else(message, participant_id, nickname)
        and mentions_person(message.text, nickname)
    )


@dataclass(frozen=True)
class Unread:
    """What a person's pages have not shown yet in one room."""

    count: int  # messages by others
    mentions: int  # of those, the ones that call on the person

    def __bool__(self) -> bool:
        return self.count > 0


def unread(messages: Iterable[Message], participant_id: str, nickname: str) -> Unread:
    """Count `messages` (those after the newest one the person's pages showed)."""
    count = mentions = 0
    for message in messages:
        if said_by_someone_else(message, participant_id, nickname):
            count += 1
            mentions += calls_on(message, participant_id, nickname)
    return Unread(count, mentions)


@dataclass
class MentionWatch:
    """One tab's watch on one room for mentions of its person: each is announced once.

    `after`: messages up to this id were there (and shown, or older than the watch) when it began: they
    are never announced. `version`: the room's version the watch has read up to.
    """

    after: int
    version: int
    told: set[int] = field(default_factory=set)  # ids of the mentions announced

    def news(self, messages: Iterable[Message], participant_id: str, nickname: str) -> list[Message]:
        """The mentions among `messages` (new or changed since `version`) not announced yet; they count as
        announced from now on. A reply still being written comes again when it is finished."""
        found = []
        for message in messages:
            new = message.id > self.after and message.id not in self.told
            if new and calls_on(message, participant_id, nickname):
                self.told.add(message.id)
                found.append(message)
        return found
