"""A rolling redeploy: two app processes behind the shipped `deploy/nginx.conf`, sharing the room through
Redis, each stopped in turn with SIGTERM (what every deploy sends) and started again, while a reply is
being written and two people watch it in Chromium.

What people must not notice, besides a page that reconnects for a moment: nobody picks a nickname again,
nobody "left" or "joined" because of it, the reply under way is finished or marked broken off (never
complete and cut short), the next message is answered, and every page shows the room exactly as Redis
holds it. How long each page took to come back is printed (the README's *Upgrading without downtime*).
"""

from __future__ import annotations

import time

import pytest

from tests.e2e.conftest import DEADLINE_SECONDS, lease_holder, wait_until
from tests.e2e.room_on_page import every_page_shows_the_room
from tests.e2e.test_redis import affinity_cookie_for, finished_reply, no_tracebacks, open_streams, shown
from tests.e2e.test_redis_faults import STORY, reply_growing, whole_offline_replies
from tests.e2e.test_two_people import join, reply_text, send, sidebar_text, turn_over
from tests.redis_room import message_in_redis, room_in_redis

pytestmark = pytest.mark.e2e


class CompleteButCutShort(AssertionError):
    """A reply marked complete that was cut short: what a redeploy did on this code (ops-worker's fix)."""


def no_reply_complete_but_cut_short(db) -> None:
    """Each reply is whole (the offline assistant's lines, each ending in a full stop, quotes closed; a
    room's first reply ends with the offline notice) or marked broken off."""
    try:
        whole_offline_replies(db)
    except AssertionError as cut:
        raise CompleteButCutShort(str(cut)) from None


def asked_for_a_nickname(page) -> bool:
    return page.get_by_role("textbox", name="Nickname").count() > 0


def test_a_rolling_redeploy_mid_reply_keeps_everyone_in_the_room_and_every_page_equal_to_the_store(
    redis_apps, redis_server, nginx_in_front, new_page
):
    a, b = redis_apps(2, WORD_DELAY_MS="300")  # slow words: each stop lands while a reply is written
    nginx = nginx_in_front(a.port, b.port)
    alice, bob = new_page(), new_page()
    for page, server in ((alice, a), (bob, b)):
        cookie = affinity_cookie_for(nginx, server, [a, b])
        page.context.add_cookies([{"name": "chat_affinity", "value": cookie, "url": nginx.url}])
    join(alice, nginx.url, "Alice")
    join(bob, nginx.url, "Bob")
    for page, other in ((alice, "Bob"), (bob, "Alice")):
        wait_until(lambda page=page, other=other: other in sidebar_text(page), DEADLINE_SECONDS, f"{other}")
    db = redis_server.client()
    pages = {"Alice": alice, "Bob": bob}
    prompted: list[str] = []  # the pages that ever asked for a nickname while a process was away

    def watching(condition):
        """`condition`, noting on the way any page that asks its person for a nickname."""

        def check() -> bool:
            prompted.extend(name for name, page in pages.items() if asked_for_a_nickname(page))
            return bool(condition())

        return check

    # Each process in turn, the one writing the reply first: a reply is being written at each stop.
    first = None
    for number, (asker, question) in enumerate([(alice, STORY), (bob, "Another story, please")], 1):
        send(asker, question)
        growing = reply_growing(db)  # in progress: its key grown past its first words, not finished
        holder = lease_holder(redis_server, [a, b])
        assert holder is not None, "a reply is being written, so one process holds the room's lease"
        if first is None:
            first = stopping = holder
        else:
            stopping = b if first is a else a
        serving = b if stopping is a else a
        stopped = time.monotonic()
        stopping.process.terminate()  # SIGTERM, as a deploy sends; the process exits on its own
        wait_until(
            watching(lambda p=stopping: p.process.poll() is not None), DEADLINE_SECONDS, "the process to exit"
        )
        print(
            f"\nround {number}: the process {'writing' if stopping is holder else 'not writing'} reply"
            f" {growing.id} exited {time.monotonic() - stopped:.1f} s after SIGTERM"
        )
        wait_until(
            watching(lambda s=serving: open_streams(s) >= 2),
            DEADLINE_SECONDS,
            "both pages on the other process",
        )
        for name, page in pages.items():
            wait_until(
                watching(lambda page=page: "Alice" in sidebar_text(page) and "Bob" in sidebar_text(page)),
                DEADLINE_SECONDS,
                f"{name}'s page to show both people",
            )
        print(f"both pages back in the room {time.monotonic() - stopped:.1f} s after SIGTERM")
        wait_until(
            watching(lambda growing=growing: message_in_redis(db, growing.id)["status"] != "streaming"),
            DEADLINE_SECONDS,
            "the reply under way to end",
        )
        reply = message_in_redis(db, growing.id)
        print(f"reply {growing.id} ended {reply['status']} after {len(reply['text'])} characters")
        started = time.monotonic()
        stopping.start()  # the new version, on the same port
        print(f"the process served again {time.monotonic() - started:.1f} s after it was started")
        for name, page in pages.items():
            wait_until(
                watching(lambda page=page: turn_over(page)), DEADLINE_SECONDS, f"{name}: the turn over"
            )
        assert not prompted, f"the redeploy asked for a nickname again: {prompted}"

    # The room goes on, on both processes: each person's message is answered and seen by the other.
    for (page, name), other_page in (((alice, "Alice"), bob), ((bob, "Bob"), alice)):
        text = f"After the redeploy, from {name}"
        send(page, text)
        answer = f"{name}, you said {text}"
        wait_until(
            lambda page=page, answer=answer: finished_reply(page, answer), DEADLINE_SECONDS, "answered"
        )
        try:
            wait_until(lambda o=other_page, t=text: shown(o, t), DEADLINE_SECONDS, f"{name}'s message seen")
        except AssertionError:
            every_page_shows_the_room(redis_server, pages)  # says how the pages differ from the room
            raise

    every_page_shows_the_room(redis_server, pages)
    for page in pages.values():
        assert not asked_for_a_nickname(page)
    lines = [m["text"] for m in room_in_redis(db) if m["role"] == "system"]
    assert [line for line in lines if line.endswith((" joined.", " left."))] == [
        "Alice joined.",
        "Bob joined.",
    ], f"the redeploy made people leave or join: {lines}"
    assert reply_text(alice) == reply_text(bob)
    no_tracebacks(a, b)
    no_reply_complete_but_cut_short(db)
