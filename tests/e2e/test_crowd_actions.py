"""A crowd of real pages pressing Enter while someone replies, reacts and deletes through the Room API.

Two app processes share the room through Redis; a third holder of the room, this test's own hub, is the
person who acts on messages (the pages' buttons for it are the page side's). Every page must still show
every message once, and each deleted one in its place, without its text.
"""

from __future__ import annotations

import contextlib
import random
import re
import threading

import pytest

from shared.config import Settings
from shared.errors import MessageRefused
from shared.hub import Hub
from shared.messages import REACTIONS, Role
from tests.e2e.conftest import DEADLINE_SECONDS, wait_until
from tests.e2e.test_crowd import fill, press_enter, tokens_on, user_bubbles
from tests.e2e.test_two_people import join

pytestmark = pytest.mark.e2e

ROUNDS = 4  # 4 people a round and the one acting: the room stays within one page of messages (50)


class ActingPerson:
    """Zed, in the room through this test's hub: posts (each a reply to one of the assistant's, whose
    quoted first line holds no message's token), reacts to others' messages and deletes every other
    message of his own, until told to stop; keeps his session alive meanwhile."""

    def __init__(self, hub: Hub):
        self.room, self.me = hub.join("lobby", "id-zed", "Zed", "tab-zed")
        self.kept: list[str] = []
        self.deleted: list[str] = []
        self.stop = threading.Event()
        self.problems: list[BaseException] = []
        self.thread = threading.Thread(target=self._act, daemon=True)

    def _act(self) -> None:
        chance = random.Random(7)
        mine: dict[int, str] = {}
        count = 0
        try:
            while not self.stop.wait(chance.uniform(0.1, 0.4)):
                self.room.attach(self.me.id, "tab-zed")
                messages = self.room.view().messages
                others = [
                    m.id for m in messages if m.role is Role.USER and m.author != "Zed" and not m.deleted
                ]
                replies = [m.id for m in messages if m.role is Role.ASSISTANT and m.text]
                if not others or not replies:
                    continue
                with contextlib.suppress(MessageRefused):  # a rare refusal: the page side's to show
                    self.room.react(self.me.id, chance.choice(others), chance.choice(REACTIONS))
                if count < 2 * ROUNDS:
                    token = f"m{count:03d}zed"
                    said = self.room.post(self.me.id, f"{token} says hi", replying_to=chance.choice(replies))
                    mine[said.id] = token
                    count += 1
                    if count % 2 == 0:
                        gone = chance.choice(sorted(mine))
                        self.room.delete_message(self.me.id, gone)
                        self.deleted.append(mine.pop(gone))
            self.kept = list(mine.values())
        except BaseException as problem:  # reported by the test
            self.problems.append(problem)


def blank_zed_bubbles(page) -> list[str]:
    """Zed's messages the page shows without any text of theirs: deleted, in their place."""
    # Zed's own bubbles, by their header (after the avatar's icon): "Zed · 12:00" (reactions show "👍 Zed").
    return [
        t
        for t in user_bubbles(page)
        if re.match(r"(\S+\s+)?Zed · \d", t) and not re.search(r"\bm\d{3}zed\b", t)
    ]


def test_a_crowd_pressing_enter_while_someone_reacts_and_deletes_shows_every_message_once(
    redis_server, redis_apps, new_page
):
    limits = {"RATE_LIMIT_MESSAGES": "1000", "RATE_LIMIT_SECONDS": "1", "LEAVE_GRACE_SECONDS": "1"}
    urls = [server.url for server in redis_apps(2, **limits)]
    names = ["ann", "ben", "cat", "dan"]
    pages = {name: new_page() for name in names}
    for index, (name, page) in enumerate(pages.items()):
        join(page, urls[index % len(urls)], name.title())
    hub = Hub(Settings(redis_url=redis_server.url, rate_limit_messages=1000, rate_limit_seconds=1))
    zed = ActingPerson(hub)
    zed.thread.start()
    sent: list[str] = []
    try:
        for round_number in range(ROUNDS):
            round_tokens = [f"m{round_number:03d}{name}" for name in pages]
            for token, page in zip(round_tokens, pages.values(), strict=True):
                fill(page, f"{token} says hello")
            for page in pages.values():
                press_enter(page)
            sent += round_tokens
            wait_until(
                lambda round_tokens=round_tokens: all(
                    set(round_tokens) <= set(tokens_on(p)) for p in pages.values()
                ),
                DEADLINE_SECONDS,
                f"round {round_number} on every page",
            )
        wait_until(lambda: len(zed.deleted) >= ROUNDS or zed.problems, DEADLINE_SECONDS, "Zed's deletions")
        zed.stop.set()
        zed.thread.join(DEADLINE_SECONDS)
        assert not zed.problems, zed.problems

        expected = sorted(sent + zed.kept)

        def every_page_shows_the_room() -> bool:
            return all(sorted(tokens_on(p)) == expected for p in pages.values())

        wait_until(every_page_shows_the_room, DEADLINE_SECONDS, "every page to show the room as it is")
        for name, page in pages.items():
            shown = tokens_on(page)
            assert sorted(shown) == expected, f"{name}'s page: every message once, no deleted text"
            assert len(blank_zed_bubbles(page)) == len(zed.deleted), (
                f"{name}'s page shows each deleted message in its place"
            )
    finally:
        zed.stop.set()
        hub.shutdown()
