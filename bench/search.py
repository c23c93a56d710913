"""How long a search takes over a room of many messages, as a page's run makes it when its person submits.

`python -m bench.search` prints, for rooms of 1,000 to 20,000 messages of chat-sized text (some with
accents), the median time of one search (`shared.search.search`) for one word and for three, the room's
first (every message folded) and a later one (the folds kept), and how many messages each found. A search reads the process's copy of the room and asks the store nothing, so this
is all it costs: CPU in the thread of the page that asked.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from datetime import UTC, datetime

import shared.search
from shared.messages import Message, Role
from shared.search import search

WORDS = [
    "lunch",
    "friday",
    "meeting",
    "the",
    "a",
    "to",
    "of",
    "and",
    "crème",
    "brûlée",
    "café",
    "Zürich",
    "offsite",
    "plan",
    "notes",
    "budget",
    "review",
    "tomorrow",
    "morning",
    "please",
    "thanks",
    "résumé",
    "naïve",
    "coffee",
    "deadline",
    "draft",
    "slides",
    "agenda",
]


def room(size: int, seed: int = 1) -> list[Message]:
    """`size` messages of 8-40 words each, people's and the assistant's, like a busy room's."""
    rng = random.Random(seed)
    when = datetime(2026, 12, 7, tzinfo=UTC)
    return [
        Message(
            i,
            Role.ASSISTANT if i % 2 == 0 else Role.USER,
            " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 40))),
            when,
            author="CatGPT" if i % 2 == 0 else "Ann",
        )
        for i in range(1, size + 1)
    ]


def median_seconds(messages: list[Message], query: str, repeats: int, *, cold: bool) -> tuple[float, int]:
    """The median time of a search; `cold`: with no fold kept from an earlier search (the room's first)."""
    times, total = [], 0
    for _ in range(repeats):
        if cold:
            shared.search._folded.cache_clear()
        start = time.perf_counter()
        total = search(messages, query).total
        times.append(time.perf_counter() - start)
    return statistics.median(times), total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,5000,20000", help="room sizes, comma-separated")
    parser.add_argument("--repeats", type=int, default=5)
    options = parser.parse_args()
    print("| messages | query | found | first search, ms | again, ms |")
    print("|---:|---|---:|---:|---:|")
    for size in (int(s) for s in options.sizes.split(",")):
        messages = room(size)
        for query in ("zurich", "CREME brulee cafe"):
            cold, found = median_seconds(messages, query, options.repeats, cold=True)
            warm, _ = median_seconds(messages, query, options.repeats, cold=False)
            print(f"| {size:,} | {query} | {found:,} | {cold * 1000:.1f} | {warm * 1000:.1f} |")


if __name__ == "__main__":
    main()
