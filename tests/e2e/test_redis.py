"""Rooms on Redis: two `streamlit run app.py` processes share one room through a real Redis, in Chromium.

Alice's page is served by process A and Bob's by process B, so everything one sees of the other went
through Redis. The processes are killed, restarted, put behind nginx, and Redis itself is restarted.
"""

from __future__ import annotations

import psutil
import pytest
from websockets.sync.client import connect

from shared.room.turns import BROKE_OFF
from tests.e2e.conftest import ARTIFACTS, DEADLINE_SECONDS, AppServer, lease_holder, wait_until
from tests.e2e.room_on_page import every_page_shows_the_room
from tests.e2e.test_two_people import (
    bubble_texts,
    join,
    main_text,
    reply_text,
    send,
    sidebar_text,
    turn_over,
)
from tests.openai_server import API_KEY
from tests.redis_room import message_in_redis, reply_in_progress

pytestmark = pytest.mark.e2e

OFFLINE_REPLY_END = "to talk to a real model."  # the offline assistant's last words


def shown(page, text: str) -> int:
    """How many message bubbles on the page hold `text`."""
    return sum(text in bubble for bubble in bubble_texts(page))


def said(page, author: str, text: str) -> int:
    """How many of `author`'s bubbles (their header: "Alice · 20:01", "Alice (you) · ...") hold `text`."""
    return sum(
        text in bubble and (f"{author} ·" in bubble or f"{author} (you) ·" in bubble)
        for bubble in bubble_texts(page)
    )


def finished_reply(page, words: str) -> bool:
    """The newest reply holds `words` and is no longer being written, and the turn is over."""
    reply = reply_text(page)
    return words in reply and "writing…" not in reply and turn_over(page)


def no_tracebacks(*servers: AppServer) -> None:
    for server in servers:
        assert "Traceback" not in server.log(), f"a traceback in {server.log_path}"


def alice_then_bob(alice, bob, first: str, second: str) -> None:
    """Alice says `first`: Bob sees it, and both pages see the offline reply stream and end; then Bob
    says `second` and Alice sees it."""
    send(alice, first)
    wait_until(lambda: shown(bob, first), DEADLINE_SECONDS, "Bob to see Alice")
    for name, page in (("Alice", alice), ("Bob", bob)):
        wait_until(lambda page=page: "writing…" in reply_text(page), DEADLINE_SECONDS, f"{name}: streaming")
    for name, page in (("Alice", alice), ("Bob", bob)):
        wait_until(
            lambda page=page: finished_reply(page, OFFLINE_REPLY_END), DEADLINE_SECONDS, f"{name}: the reply"
        )
    send(bob, second)
    wait_until(lambda: shown(alice, second), DEADLINE_SECONDS, "Alice to see Bob")


def test_alice_on_one_process_and_bob_on_another_see_each_other_and_one_reply(redis_apps, new_page):
    a, b = redis_apps(2)
    alice, bob = new_page(), new_page()
    join(alice, a.url, "Alice")
    join(bob, b.url, "Bob")
    for page, other in ((alice, "Bob"), (bob, "Alice")):
        wait_until(
            lambda page=page, other=other: other in sidebar_text(page),
            DEADLINE_SECONDS,
            f"{other} in the other sidebar",
        )
    assert "Alice (you)" in sidebar_text(alice) and "Bob (you)" in sidebar_text(bob)
    assert "(host)" not in sidebar_text(alice) + sidebar_text(bob), "the lobby belongs to nobody"

    alice_then_bob(alice, bob, "Hello Bob, this is process A", "Hi Alice, this is process B")
    wait_until(lambda: finished_reply(alice, "Bob, you said"), DEADLINE_SECONDS, "the reply to Bob")
    wait_until(lambda: finished_reply(bob, "Bob, you said"), DEADLINE_SECONDS, "the reply to Bob, on B")
    alice.screenshot(path=str(ARTIFACTS / "redis-two-processes-alice.png"), full_page=True)

    for page in (alice, bob):
        assert said(page, "Alice", "Hello Bob, this is process A") == 1
        assert said(page, "Bob", "Hi Alice, this is process B") == 1
        assert said(page, "CatGPT", "Alice, you said") == 1 and said(page, "CatGPT", "Bob, you said") == 1
        assert reply_text(alice) == reply_text(bob)
        assert "Alice" in sidebar_text(page) and "Bob" in sidebar_text(page)
    no_tracebacks(a, b)


def test_when_the_lease_holder_is_killed_mid_reply_the_other_process_reports_the_reply_broken_off(
    redis_apps, redis_server, new_page
):
    # Slow words: the reply is still being written when its process dies (killed within its first words,
    # long before it quotes the message).
    a, b = redis_apps(2, WORD_DELAY_MS="600")
    alice, bob = new_page(), new_page()
    join(alice, a.url, "Alice")
    join(bob, b.url, "Bob")
    send(alice, "Take your time with this one")
    for name, page in (("Alice", alice), ("Bob", bob)):
        wait_until(lambda page=page: "writing…" in reply_text(page), DEADLINE_SECONDS, f"{name}: streaming")
    db = redis_server.client()
    growing = reply_in_progress(db)
    assert growing is not None and "with this one" not in growing.text, f"the reply is in progress: {growing}"
    holder = lease_holder(redis_server, [a, b])
    assert holder is not None, "a reply is being written, so one process holds the room's lease"
    survivor, watcher = (b, bob) if holder is a else (a, alice)

    holder.kill()

    wait_until(lambda: BROKE_OFF in main_text(watcher), DEADLINE_SECONDS, "the survivor to report the turn")
    wait_until(lambda: turn_over(watcher), DEADLINE_SECONDS, "the turn to be over")
    watcher.screenshot(path=str(ARTIFACTS / "redis-lease-holder-killed.png"), full_page=True)
    cut = message_in_redis(db, growing.id)
    assert cut["status"] == "error" and "with this one" not in cut["text"], (
        f"the reply cut by the kill: {cut}"
    )
    assert main_text(watcher).count(BROKE_OFF) == 1
    assert said(watcher, "Alice", "Take your time with this one") == 1  # nothing lost, nothing doubled
    assert said(watcher, "CatGPT", "Alice, you said") == 0, "the cut reply was not finished by another"

    # The room goes on, on the surviving process.
    send(watcher, "Are you still there?")
    # The answer quotes it early (a carried-over turn answers both messages, slowly: no need to wait out).
    wait_until(
        lambda: "you said Are you still there?" in reply_text(watcher),
        DEADLINE_SECONDS,
        "the next turn to be answered",
    )
    assert said(watcher, "Alice" if watcher is alice else "Bob", "Are you still there?") == 1
    assert main_text(watcher).count(BROKE_OFF) == 1  # no second report
    assert lease_holder(redis_server, [a, b]) in (None, survivor)
    every_page_shows_the_room(redis_server, {"Alice" if watcher is alice else "Bob": watcher})
    no_tracebacks(survivor)


def test_both_processes_restarted_and_a_newcomer_sees_the_whole_history_once(
    redis_apps,
    new_page,
    openai_server,
):
    a, b = redis_apps(
        2,
        OPENAI_API_KEY=API_KEY,
        OPENAI_BASE_URL=openai_server.base_url,
        ROOM_EMPTY_GRACE_SECONDS="600",  # the restarts' disconnections must not empty and close the room
    )
    alice, bob = new_page(), new_page()
    join(alice, a.url, "Alice")
    join(bob, b.url, "Bob")
    send(alice, "First, from Alice")
    wait_until(
        lambda: finished_reply(bob, "You said: First, from Alice"), DEADLINE_SECONDS, "the first reply"
    )
    send(bob, "Second, from Bob")
    wait_until(lambda: finished_reply(alice, "You said: Second, from Bob"), DEADLINE_SECONDS, "the reply")
    (conversation,) = openai_server.conversations

    a.restart()
    b.restart()
    assert openai_server.sent("DELETE", "/v1/conversations/") == [], "a restart closed the room"

    carol = new_page()
    join(carol, b.url, "Carol")
    wait_until(
        lambda: shown(carol, "You said: Second, from Bob"), DEADLINE_SECONDS, "Carol to see the history"
    )
    carol.screenshot(path=str(ARTIFACTS / "redis-after-restart-carol.png"), full_page=True)
    history = [
        ("Alice", "First, from Alice"),
        ("CatGPT", "You said: First, from Alice"),
        ("Bob", "Second, from Bob"),
        ("CatGPT", "You said: Second, from Bob"),
    ]
    for author, text in history:
        assert said(carol, author, text) == 1, f"{author}'s {text!r} shown {said(carol, author, text)} times"

    # The same conversation goes on: the restarts neither lost nor replaced it.
    send(carol, "Third, from Carol")
    wait_until(
        lambda: finished_reply(carol, "You said: Third, from Carol"), DEADLINE_SECONDS, "Carol's reply"
    )
    assert list(openai_server.conversations) == [conversation]
    assert len(openai_server.sent("POST", "/v1/conversations")) == 1
    no_tracebacks(a, b)


def test_the_room_closes_once_when_it_empties(redis_apps, new_page, openai_server):
    a, b = redis_apps(
        2,
        OPENAI_API_KEY=API_KEY,
        OPENAI_BASE_URL=openai_server.base_url,
        LEAVE_GRACE_SECONDS="1",
        ROOM_EMPTY_GRACE_SECONDS="3",
    )
    alice, bob = new_page(), new_page()
    join(alice, a.url, "Alice")
    join(bob, b.url, "Bob")
    send(alice, "Hello?")  # a room opens its conversation on its first turn
    wait_until(lambda: finished_reply(bob, "You said: Hello?"), DEADLINE_SECONDS, "the reply")
    (conversation,) = openai_server.conversations

    alice.close()
    bob.close()
    deletes = lambda: [r.path for r in openai_server.sent("DELETE", "/v1/conversations/")]  # noqa: E731
    wait_until(deletes, DEADLINE_SECONDS, "the empty room to close")

    # Both processes have reaped many times since; a newcomer starts a fresh room with a new conversation.
    dave = new_page()
    join(dave, b.url, "Dave")
    assert shown(dave, "Hello?") == 0, "the closed room's history is gone"
    send(dave, "Anyone?")
    wait_until(lambda: finished_reply(dave, "You said: Anyone?"), DEADLINE_SECONDS, "the fresh room's reply")
    a.stop()
    b.stop()  # stopping processes closes nothing in Redis mode: Dave's room stays open
    assert deletes() == [f"/v1/conversations/{conversation}"]
    assert len(openai_server.conversations) == 1 and conversation not in openai_server.conversations
    no_tracebacks(a, b)


def test_redis_restarted_mid_chat_and_the_room_recovers(redis_apps, redis_server, new_page):
    a, b = redis_apps(2, WORD_DELAY_MS="0")
    alice, bob = new_page(), new_page()
    join(alice, a.url, "Alice")
    join(bob, b.url, "Bob")
    send(alice, "Before the outage")
    wait_until(lambda: finished_reply(bob, OFFLINE_REPLY_END), DEADLINE_SECONDS, "the first reply")

    redis_server.stop()
    wait_until(lambda: "Redis" in main_text(alice), DEADLINE_SECONDS, "Alice's page to say Redis is away")
    bob.reload()  # a page that starts during the outage
    wait_until(lambda: "Redis" in bob.locator("body").inner_text(), DEADLINE_SECONDS, "Bob's page to say so")
    bob.screenshot(path=str(ARTIFACTS / "redis-unreachable-bob.png"), full_page=True)
    for page in (alice, bob):
        text = page.locator("body").inner_text()
        assert "Traceback" not in text and "redis.exceptions" not in text
        assert sum("Redis" in line for line in text.splitlines()) == 1, "one sentence about Redis"

    redis_server.start()
    for name, page in (("Alice", alice), ("Bob", bob)):
        wait_until(
            lambda page=page: (
                "Redis" not in page.locator("body").inner_text()
                and page.get_by_placeholder("Send message").count() == 1
            ),
            DEADLINE_SECONDS,
            f"{name}'s page to recover by itself",
        )
    send(bob, "After the outage")
    wait_until(lambda: shown(alice, "After the outage"), DEADLINE_SECONDS, "Alice to see Bob again")
    wait_until(lambda: finished_reply(alice, "Bob, you said"), DEADLINE_SECONDS, "the reply after the outage")
    for page in (alice, bob):
        assert said(page, "Alice", "Before the outage") == 1 and said(page, "Bob", "After the outage") == 1
    no_tracebacks(a, b)


def test_redis_unreachable_at_start_is_one_sentence_and_the_page_carries_on_when_it_is_back(
    redis_apps, redis_server, new_page
):
    redis_server.stop()
    (a,) = redis_apps(1)  # the process starts; the page says what is wrong instead of a traceback
    alice = new_page()
    alice.goto(a.url)
    wait_until(
        lambda: "Redis" in alice.locator("body").inner_text(), DEADLINE_SECONDS, "a sentence about Redis"
    )
    alice.screenshot(path=str(ARTIFACTS / "redis-unreachable-at-start.png"), full_page=True)
    text = alice.locator("body").inner_text()
    assert "Traceback" not in text and sum("Redis" in line for line in text.splitlines()) == 1

    redis_server.start()
    alice.get_by_role("textbox", name="Nickname").wait_for(timeout=DEADLINE_SECONDS * 1000)  # by itself
    join(alice, None, "Alice")
    send(alice, "Hello once Redis is up")
    wait_until(lambda: finished_reply(alice, OFFLINE_REPLY_END), DEADLINE_SECONDS, "the reply")
    assert a.process.poll() is None, "the process kept running through the outage"
    no_tracebacks(a)


# --- behind nginx -------------------------------------------------------------------------------------


def open_streams(server: AppServer) -> int:
    """Connections the app process holds open on its port (through nginx, only websockets stay open)."""
    return sum(
        1
        for c in psutil.Process(server.pid).net_connections(kind="tcp")
        if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == server.port
    )


def affinity_cookie_for(nginx, target: AppServer, servers: list[AppServer]) -> str:
    """An affinity cookie that nginx sends to `target`: try values, see which process each stream opens on."""
    for attempt in range(64):
        cookie = f"probe-{attempt}"
        before = {s.pid: open_streams(s) for s in servers}
        with connect(
            nginx.url.replace("http://", "ws://") + "_stcore/stream",
            subprotocols=["streamlit", "PLACEHOLDER_AUTH_TOKEN"],
            additional_headers={"Cookie": f"chat_affinity={cookie}"},
            open_timeout=10,
        ):
            wait_until(
                lambda before=before: any(open_streams(s) > before[s.pid] for s in servers),
                DEADLINE_SECONDS,
                "the probe's stream to open",
            )
            landed = next(s for s in servers if open_streams(s) > before[s.pid])
        if landed is target:
            return cookie
    raise AssertionError("no affinity cookie reached the process in 64 tries")


def alice_and_bob_through_nginx(redis_apps, nginx_in_front, new_page):
    """Two processes behind deploy/nginx.conf; Alice joins through nginx onto A, Bob onto B (each page is
    given the affinity cookie that lands on its process)."""
    a, b = redis_apps(2)
    nginx = nginx_in_front(a.port, b.port)
    alice, bob = new_page(), new_page()
    for page, server in ((alice, a), (bob, b)):
        cookie = affinity_cookie_for(nginx, server, [a, b])
        page.context.add_cookies([{"name": "chat_affinity", "value": cookie, "url": nginx.url}])
    join(alice, nginx.url, "Alice")
    join(bob, nginx.url, "Bob")
    assert open_streams(a) >= 1 and open_streams(b) >= 1, "each person's page is on its own process"
    return a, b, nginx, alice, bob


def test_the_same_chat_through_nginx_with_each_person_on_another_process(
    redis_apps, nginx_in_front, new_page
):
    a, b, nginx, alice, bob = alice_and_bob_through_nginx(redis_apps, nginx_in_front, new_page)
    for page, other in ((alice, "Bob"), (bob, "Alice")):
        wait_until(
            lambda page=page, other=other: other in sidebar_text(page),
            DEADLINE_SECONDS,
            f"{other} in the other sidebar",
        )

    alice_then_bob(alice, bob, "Hello through nginx", "And back through nginx")
    bob.screenshot(path=str(ARTIFACTS / "redis-nginx-bob.png"), full_page=True)
    for page in (alice, bob):
        assert (
            said(page, "Alice", "Hello through nginx") == 1
            and said(page, "Bob", "And back through nginx") == 1
        )
        assert said(page, "CatGPT", "Alice, you said") == 1
    assert "[emerg]" not in nginx.errors() and "[crit]" not in nginx.errors()
    no_tracebacks(a, b)
