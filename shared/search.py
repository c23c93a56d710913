"""Search a room: the messages that hold every word asked for, whatever their case and accents.

It reads the messages this process already holds: in memory the room itself, and with Redis the process's
copy of the room (`shared.room.mirror.Mirror`), which holds every message of each room the process serves
(read once when the process opens the room, then only what changes). So a search costs no Redis command
and loads nothing more into any process; it runs when its person submits it, never per keystroke, and
only for them. If a process ever holds a window of a room instead, this is the one place that would read
the rest (`chat:room:NAME:msgs` with HSCAN).

What is searched: what people and the assistant said (`shared.messages.said`), so never a deleted message
(its text is gone) nor a system line. A word matches anywhere in a message, inside a longer word too, as
the browser's find does; case and accents do not matter (`fold`).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from shared.errors import ChatError
from shared.messages import Message, Role, said

MAX_QUERY_CHARS = 200  # a search is a few words, not a paragraph: bounded, with a sentence past it
MAX_RESULTS = 10  # shown, newest first; the rest are counted ("and N more")
EXCERPT_CHARS = 90  # of each message found, around its first match
BEFORE_MATCH_CHARS = 25  # of the excerpt, before the match

# Letters with a stroke or a ligature, which Unicode does not decompose into a letter and an accent.
_LETTERS = str.maketrans({"ø": "o", "đ": "d", "ð": "d", "ł": "l", "ħ": "h", "ŧ": "t", "æ": "ae", "œ": "oe"})
_WORD = re.compile(r"\w+")
_SPACE = re.compile(r"\s+")
# Markdown's code and strong marks: an excerpt shows the words, and drawn escaped they would show as marks.
_MARKS = re.compile(r"`+|\*\*|__")


class SearchRefused(ChatError):
    """The search was not made (no word to look for, or too long); the sentence says why."""


@dataclass(frozen=True)
class Found:
    """A message found: who said it, when, and a few words of it around what matched."""

    message_id: int
    author: str
    role: Role
    created_at: datetime
    excerpt: str


@dataclass(frozen=True)
class Results:
    words: tuple[str, ...]  # as folded
    found: tuple[Found, ...]  # newest first, at most MAX_RESULTS
    total: int  # every message that matched

    @property
    def more(self) -> int:
        return self.total - len(self.found)


def fold(text: str) -> str:
    """`text` as a search compares it: compatibility forms unfolded (NFKD), accents dropped, case folded."""
    return _folded(text) if len(text) <= CACHED_CHARS else _fold(text)


# A room's messages are folded again at every search; the latest folds are kept instead (by text: a message
# never changes in place, and a reply being written is a new text at each step). Measured with
# `python -m bench.search` on the shared 2-core machine: over 5,000 messages 155-170 ms the first time, 7-9 ms
# with the folds kept; past CACHED_FOLDS messages every search folds them all again (30,000: 0.7-0.95 s).
CACHED_FOLDS = 20_000
CACHED_CHARS = 2_000  # longer texts are folded each time, so the kept folds stay within a few megabytes


@functools.lru_cache(maxsize=CACHED_FOLDS)
def _folded(text: str) -> str:
    return _fold(text)


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold().translate(_LETTERS))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def search_words(query: str) -> tuple[str, ...]:
    """The words a search looks for, folded, each once; raises `SearchRefused` for none or too long."""
    if len(query) > MAX_QUERY_CHARS:
        raise SearchRefused(f"Search for at most {MAX_QUERY_CHARS} characters (this has {len(query):,}).")
    words = tuple(dict.fromkeys(_WORD.findall(fold(query))))
    if not words:
        raise SearchRefused("Type a word to look for.")
    return words


def search(messages: Iterable[Message], query: str) -> Results:
    """The messages that hold every word of `query`, newest first."""
    words = search_words(query)
    found: list[Found] = []
    total = 0
    for message in reversed(said(messages)):
        text = fold(message.text)
        if all(word in text for word in words):
            total += 1
            if len(found) < MAX_RESULTS:
                found.append(_found(message, words))
    return Results(words, tuple(found), total)


def _found(message: Message, words: tuple[str, ...]) -> Found:
    return Found(
        message.id, message.author, message.role, message.created_at, excerpt(message.text, words[0])
    )


def excerpt(text: str, word: str) -> str:
    """A few words of `text` around the first place it holds `word` (folded), on one line, without
    Markdown's code and strong marks."""
    at = _original_index(text, word)
    start = max(0, at - BEFORE_MATCH_CHARS)
    end = start + EXCERPT_CHARS
    start = _word_start(text, start)
    piece = _SPACE.sub(" ", _MARKS.sub("", text[start:end])).strip()
    return ("…" if start > 0 else "") + piece + ("…" if end < len(text) else "")


def _original_index(text: str, word: str) -> int:
    """Where in `text` the first match of the folded `word` begins: folding one character at a time maps
    each folded character back to the character it came from (folding changes lengths: "ß" is "ss")."""
    folded, origin = [], []
    for index, character in enumerate(text):
        piece = fold(character)
        folded.append(piece)
        origin.extend([index] * len(piece))
    at = "".join(folded).find(word)
    return origin[at] if at >= 0 else 0


def _word_start(text: str, index: int) -> int:
    """`index`, moved forward to the start of a word if it falls inside one (a few characters at most)."""
    if index == 0 or not text[index - 1].isalnum():
        return index
    for step in range(index, min(index + 12, len(text))):
        if not text[step].isalnum():
            return step + 1
    return index
