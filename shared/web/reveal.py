"""Reveal pacing: how fast one page shows the words of the reply being written, and how often it redraws it.

Redrawing a growing reply resends its whole text, so a page redraws it at most ten times a second, and
less often the more pages watch the room: once a second at 100 pages (docs/bench.md, "Levers").
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from shared.messages import Message, Status

# A reply being written is redrawn at most this often on one page, and once more per this many pages
# watching the room, up to the longest pause: each redraw is an element sent to every page, and the
# server wakes its event loop for each one of each page.
REDRAW_SECONDS = 0.1
PAGES_PER_REDRAW_STEP = 10
LONGEST_REDRAW_SECONDS = 1.0
CATCH_UP_WORDS = 20  # a streamed reply this far behind the assistant is shown without pacing


def words(text: str) -> list[str]:
    return re.findall(r"\s*\S+\s*", text)


def redraw_interval(watchers: int) -> float:
    return min(LONGEST_REDRAW_SECONDS, REDRAW_SECONDS * max(1, watchers / PAGES_PER_REDRAW_STEP))


@dataclass
class Reveal:
    """How far this page has shown the reply being written, paced by WORD_DELAY_MS."""

    message: Message
    shown: int = 0  # characters due on the page
    drawn: int = -1  # characters drawn so far (-1: nothing yet)
    at: float = field(default_factory=time.monotonic)  # when the last words were shown

    def step(self, word_delay: float, now: float) -> None:
        """Reveal the words due by now: one per WORD_DELAY_MS since the last, all of them far behind."""
        ahead = words(self.message.text[self.shown :])
        if not ahead:
            return
        due = len(ahead) if not word_delay else max(1, int((now - self.at) / word_delay))
        due = max(due, len(ahead) - CATCH_UP_WORDS)
        self.shown += sum(len(w) for w in ahead[:due])
        # Keep the fraction of a word's delay that has passed, so pacing does not drift with redraws.
        self.at = min(now, self.at + due * word_delay) if word_delay else now

    @property
    def done(self) -> bool:
        return self.message.status is not Status.STREAMING and self.shown >= len(self.message.text)
