"""Rooms on Redis under faults, with real processes, Debian's redis-server and Chromium pages.

Each case makes a part fail (an app process killed or hung, Redis hung, restarted, back without its last
writes, slow or full, one process's connections cut right after a command went out or black-holed, a
page's websocket cut). Some faults must change nothing people see (the process that does not write the
reply hung or cut off from Redis, a page's network gone for a moment): those cases show the fault hit
(the page stood still, connected again) and that the reply was written whole. Just before
the fault it sees the reply in progress in Redis (streaming, its key grown past its first words by the
growth script, not finished); after it, it checks how that reply ended (broken off, with the line that
says why) and ends with the same checks on every page of every surviving process:
- the page shows the room exactly as Redis holds it: each message once, in order, its whole text, its
  author and status, every system line (`tests/e2e/room_on_page.py`);
- no reply is marked complete that was cut short;
- the next message is answered and shown within `NEXT_REPLY_SECONDS`.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator

import pytest
import redis

from shared.assistant.offline import OFFLINE_NOTICE
from shared.room.turns import BROKE_OFF, LOST_REPLY
from shared.store.redis import LEASE_SECONDS
from tests.e2e.conftest import DEADLINE_SECONDS, AppServer, lease_holder, wait_until
from tests.e2e.room_on_page import every_page_shows_the_room
from tests.e2e.test_redis import OFFLINE_REPLY_END, finished_reply, no_tracebacks, shown
from tests.e2e.test_two_people import join, main_text, reply_text, send, sidebar_text, turn_over
from tests.redis_room import (
    ReplyKey,
    fence,
    load_scripts,
    message_in_redis,
    newest_reply,
    reply_in_progress,
    room_in_redis,
    room_version,
    script_sha,
    words_of_reply,
)
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.e2e

NEXT_REPLY_SECONDS = 15
STORY = "A story, please"  # asks neither the time nor who is here: its offline reply is known in full
BROKE_OFF_NOTE = "This reply broke off before it was finished."  # under a reply that was cut short
# The line a reply that broke off leaves: ended by the worker that took the room over, or by its own
# worker, whose words could not be written (Redis unreachable, or back without them).
TAKEN_OVER = (BROKE_OFF,)
NOT_WRITTEN = ("CatGPT could not reply", LOST_REPLY)


def first_offline_reply(nickname: str, text: str) -> str:
    """The offline assistant's whole reply to the first message of a room, when it asks neither the time
    nor who is here."""
    return f"Hi {nickname}! 🐾\n\n{nickname}, you said `{text}`.\n\n{OFFLINE_NOTICE}"


def reply_growing(db) -> ReplyKey:
    """Wait for a reply in progress whose key the growth script has grown past its first words (written
    with the message), and see it unfinished; return it as its key holds it."""

    def grown() -> bool:
        growing = reply_in_progress(db)
        return growing is not None and len(growing.text) > len(message_in_redis(db, growing.id)["text"])

    wait_until(grown, DEADLINE_SECONDS, "a reply in progress, grown past its first words")
    growing = reply_in_progress(db)
    assert growing is not None and OFFLINE_REPLY_END not in growing.text, f"not in progress: {growing}"
    return growing


def ended_broken_off(db, reply_id: int, why: tuple[str, ...]) -> dict:
    """The reply in progress at the fault ended broken off (its status `error`, its words kept), and the
    first failure line after it says why (starts with one of `why`); returns the reply."""
    wait_until(
        lambda: message_in_redis(db, reply_id)["status"] != "streaming",
        DEADLINE_SECONDS,
        "the reply in progress at the fault to end",
    )
    reply = message_in_redis(db, reply_id)
    assert reply["status"] == "error", (
        f"the reply cut by the fault ended {reply['status']}: {reply['text']!r}"
    )
    failures = [
        m["text"]
        for m in room_in_redis(db)
        if m["id"] > reply_id and m["role"] == "system" and m["status"] == "error"
    ]
    assert failures and failures[0].startswith(why), f"the line after the broken-off reply: {failures}"
    print(f"\nthe reply ended {reply['status']} after {len(reply['text'])} characters: {failures[0]!r}")
    return reply


def whole_offline_replies(db) -> None:
    """Every reply marked complete is whole: the offline assistant's greeting, then lines that each end in
    a full stop with their quotes closed, and a room's first reply ends with the offline notice. A reply
    cut short ("Hi Alice!", "Alice, you said `Take your") is marked broken off instead."""
    replies = [m for m in room_in_redis(db) if m["role"] == "assistant"]
    for index, reply in enumerate(replies):
        if reply["status"] != "complete":
            continue
        greeting, *lines = reply["text"].split("\n\n")
        whole = greeting.startswith("Hi ") and greeting.endswith("! 🐾") and bool(lines)
        whole = whole and all(line.endswith(".") and line.count("`") % 2 == 0 for line in lines)
        if index == 0:  # no reply before it: it says it is the offline demo
            whole = whole and lines[-1] == OFFLINE_NOTICE
        assert whole, f"complete but cut short: {reply['text']!r}"


def the_next_message_is_answered(page, nickname: str, text: str) -> None:
    """`text` sent from `page` is answered there within NEXT_REPLY_SECONDS (after any turn under way), and
    the answer is then written to its end."""
    wait_until(lambda: turn_over(page), DEADLINE_SECONDS, f"{nickname}: the room to be free")
    sent = time.monotonic()
    send(page, text)
    answer = f"{nickname}, you said {text}"
    wait_until(lambda: answer in reply_text(page), NEXT_REPLY_SECONDS, f"the answer to {nickname}'s {text!r}")
    print(f"\n{nickname}'s message answered on their page after {time.monotonic() - sent:.2f} s")
    wait_until(lambda: finished_reply(page, answer), DEADLINE_SECONDS, "the answer to be written to its end")


def two_people_on_two_processes(redis_apps, new_page, **env: str):
    a, b = redis_apps(2, WORD_DELAY_MS="20", **env)
    alice, bob = new_page(), new_page()
    join(alice, a.url, "Alice")
    join(bob, b.url, "Bob")
    wait_until(lambda: "Alice" in sidebar_text(bob), DEADLINE_SECONDS, "Bob to see Alice")
    send(alice, "Hello from A")
    for page in (alice, bob):
        wait_until(lambda page=page: finished_reply(page, OFFLINE_REPLY_END), DEADLINE_SECONDS, "the reply")
    return a, b, alice, bob


def test_a_process_killed_and_the_survivors_pages_show_every_reply(redis_apps, redis_server, new_page):
    a, b, alice, bob = two_people_on_two_processes(
        redis_apps, new_page, HEARTBEAT_TIMEOUT_SECONDS="6", LEAVE_GRACE_SECONDS="1"
    )
    a.kill()
    the_next_message_is_answered(bob, "Bob", "Are you still there?")
    wait_until(
        lambda: "Alice left." in main_text(bob), DEADLINE_SECONDS, "Alice, whose process died, to leave"
    )
    the_next_message_is_answered(bob, "Bob", "And now?")
    every_page_shows_the_room(redis_server, {"Bob": bob})
    whole_offline_replies(redis_server.client())
    no_tracebacks(b)


def alice_and_bob_and_a_slow_reply(redis_apps, new_page, **env: str):
    """Alice on process A and Bob on B; Alice asks, and a slow reply (300 ms a word) starts on both pages.
    Returns the processes and the pages."""
    a, b = redis_apps(2, WORD_DELAY_MS="300", **env)
    alice, bob = new_page(), new_page()
    join(alice, a.url, "Alice")
    join(bob, b.url, "Bob")
    send(alice, STORY)
    wait_until(lambda: "writing…" in reply_text(bob), DEADLINE_SECONDS, "Bob to see the reply start")
    return a, b, alice, bob


def test_redis_hung_longer_than_the_lease_mid_reply_and_every_page_shows_every_reply(
    redis_apps, redis_server, new_page
):
    a, b, alice, bob = alice_and_bob_and_a_slow_reply(redis_apps, new_page)
    db = redis_server.client()
    growing = reply_growing(db)
    redis_server.pause()
    time.sleep(LEASE_SECONDS + 1)  # the fault itself: Redis answers nothing for longer than a worker's lease
    redis_server.resume()
    ended_broken_off(db, growing.id, TAKEN_OVER + NOT_WRITTEN)
    wait_until(lambda: turn_over(bob), DEADLINE_SECONDS, "the reply under way to end")
    the_next_message_is_answered(bob, "Bob", "Back after the pause?")
    wait_until(lambda: shown(alice, "Back after the pause?"), DEADLINE_SECONDS, "Alice to see Bob's message")
    the_next_message_is_answered(alice, "Alice", "Me too?")
    every_page_shows_the_room(redis_server, {"Alice": alice, "Bob": bob})
    whole_offline_replies(db)
    no_tracebacks(a, b)


def a_reply_being_written(redis_apps, redis_server, new_page):
    """Alice on process A and Bob on B; a slow reply to Alice is in progress (grown, not finished).
    Returns the processes, the pages, the reply as its key holds it, and the process whose worker writes
    it (holds the lease)."""
    a, b, alice, bob = alice_and_bob_and_a_slow_reply(redis_apps, new_page)
    growing = reply_growing(redis_server.client())
    holder = lease_holder(redis_server, [a, b])
    assert holder is not None, "a reply is being written, so one process holds the room's lease"
    return a, b, alice, bob, growing, holder


def test_the_lease_holder_killed_mid_reply_and_the_survivors_pages_show_every_reply(
    redis_apps, redis_server, new_page
):
    a, b, alice, bob, growing, holder = a_reply_being_written(redis_apps, redis_server, new_page)
    survivor, page, nickname = (b, bob, "Bob") if holder is a else (a, alice, "Alice")
    holder.kill()
    db = redis_server.client()
    ended_broken_off(db, growing.id, TAKEN_OVER)
    wait_until(
        lambda: BROKE_OFF_NOTE in main_text(page) and BROKE_OFF in main_text(page),
        DEADLINE_SECONDS,
        f"{nickname}'s page to show the reply cut short",
    )
    send(page, "Are you still there?")
    wait_until(
        lambda: turn_over(page) and "you said Are you still there?" in reply_text(page),
        DEADLINE_SECONDS,
        "the next turn to be answered",
    )
    the_next_message_is_answered(page, nickname, "And now?")
    every_page_shows_the_room(redis_server, {nickname: page})
    whole_offline_replies(db)
    no_tracebacks(survivor)


def test_the_lease_holder_hung_longer_than_the_lease_mid_reply_is_taken_over_and_writes_nothing_more(
    redis_apps, redis_server, new_page
):
    a, b, alice, bob, growing, holder = a_reply_being_written(redis_apps, redis_server, new_page)
    other_page, other_name = (bob, "Bob") if holder is a else (alice, "Alice")
    hung_page, hung_name = (alice, "Alice") if holder is a else (bob, "Bob")
    db = redis_server.client()

    holder.pause()
    hung = time.monotonic()
    try:
        wait_until(
            lambda: reply_in_progress(db) is None and time.monotonic() - hung > LEASE_SECONDS,
            DEADLINE_SECONDS,
            "the other process to take the room over, and the hang to outlast the lease",
        )
        cut = ended_broken_off(db, growing.id, TAKEN_OVER)
        print(f"the room was taken over; the holder hung {time.monotonic() - hung:.1f} s")
    finally:
        holder.resume()

    assert lease_holder(redis_server, [a, b]) is not holder
    wait_until(
        lambda: BROKE_OFF_NOTE in main_text(other_page) and BROKE_OFF in main_text(other_page),
        DEADLINE_SECONDS,
        f"{other_name}'s page to show the reply cut short",
    )
    the_next_message_is_answered(other_page, other_name, "Are you still there?")
    the_next_message_is_answered(hung_page, hung_name, "Back after the hang?")
    every_page_shows_the_room(redis_server, {"Alice": alice, "Bob": bob})
    whole_offline_replies(db)
    assert message_in_redis(db, cut["id"]) == cut, "the woken process wrote into the old turn"
    assert main_text(other_page).count(BROKE_OFF) == 1
    no_tracebacks(a, b)


@pytest.mark.parametrize("redis_server", [{"appendfsync": "everysec"}], ids=["everysec"], indirect=True)
def test_redis_killed_and_restarted_from_its_append_only_file_mid_reply_and_every_page_shows_every_reply(
    redis_apps, redis_server, new_page
):
    """Redis (`appendonly yes`, `appendfsync everysec`) is SIGKILLed while a reply is being written and
    started again on the same port and folder.

    What the restart keeps: every write Redis acknowledged. With `everysec` Redis fsyncs once a second,
    but it writes each command to its append-only file (into the kernel's cache) before it answers, so
    killing the redis-server process loses nothing a client was told is stored (20,000 INCRs, all
    acknowledged, were all there after a SIGKILL here). The second `everysec` may lose is lost only when
    the machine itself goes down (the next test). So the reply keeps every word written before the kill.
    A write of the reply that fails while Redis is away ends the worker's stream; the reply must then be
    marked broken off, not complete, whoever ends it: the worker itself if Redis is back before its lease
    is up, or the worker that takes the room over ("It will try again with the next message.").
    """
    a, b, alice, bob = alice_and_bob_and_a_slow_reply(redis_apps, new_page)
    db = redis_server.client()
    acknowledged = reply_growing(db)  # at least this much Redis has said it stored

    redis_server.kill()
    killed = time.monotonic()
    wait_until(
        lambda: all("Redis" in main_text(page) for page in (alice, bob)),
        DEADLINE_SECONDS,
        "both pages to say Redis is away",
    )
    redis_server.start()
    print(f"\nRedis was away {time.monotonic() - killed:.2f} s")

    # The worker may already have ended the reply broken off (Redis was back within its lease): its words
    # are then in its message, not in its key.
    kept = words_of_reply(db, acknowledged.id)
    assert kept.startswith(acknowledged.text), f"a word Redis acknowledged was lost: {kept!r}"
    ended_broken_off(db, acknowledged.id, TAKEN_OVER + NOT_WRITTEN)
    wait_until(lambda: turn_over(bob), DEADLINE_SECONDS, "the reply under way to end")
    the_next_message_is_answered(bob, "Bob", "Back after the restart?")
    wait_until(
        lambda: shown(alice, "Back after the restart?"), DEADLINE_SECONDS, "Alice to see Bob's message"
    )
    the_next_message_is_answered(alice, "Alice", "Me too?")
    every_page_shows_the_room(redis_server, {"Alice": alice, "Bob": bob})
    whole_offline_replies(db)
    users = [m["text"] for m in room_in_redis(db) if m["role"] == "user"]
    assert users == [STORY, "Back after the restart?", "Me too?"]
    no_tracebacks(a, b)


@pytest.mark.parametrize("redis_server", [{"appendfsync": "everysec"}], ids=["everysec"], indirect=True)
def test_redis_back_without_its_last_second_of_writes_mid_reply_and_every_page_shows_the_room_as_redis_holds_it(
    redis_apps, redis_server, new_page, tmp_path
):
    """What `appendfsync everysec` loses when the machine under Redis goes down (or what a replica that
    lagged behind lacks when it takes over): the last second or so of writes Redis had acknowledged.

    Simulated without a machine crash: a copy of the append-only files is taken while a reply is being
    written, the reply grows for a second and six writes more (the room's version key counts them: the
    growth leaves the state's own version alone), then Redis is killed and started from the copy while
    the reply's worker is still writing, and Bob sends a message at once. The worker finds the reply
    shorter than it wrote it; the reply may lose its last words (the README says it does not survive
    this), but it must end broken off, not complete with words missing; and every page must then show
    the room as Redis holds it, Bob's message included, and the next message be answered.
    """
    a, b, alice, bob = alice_and_bob_and_a_slow_reply(redis_apps, new_page)
    db = redis_server.client()
    at_copy = reply_growing(db)
    saved = tmp_path / "appendonlydir"
    redis_server.copy_files(saved)
    copied, on_disk = time.monotonic(), room_version(db)
    wait_until(
        lambda: time.monotonic() - copied > 1 and room_version(db) >= on_disk + 6,
        DEADLINE_SECONDS,
        "a second and six changes more of the room",
    )
    before = reply_growing(db)
    assert before.id == at_copy.id and len(before.text) > len(at_copy.text), "the reply grew since the copy"

    redis_server.crash_back_to(saved)
    send(bob, "Back after the crash?")  # lands while each process's copy of the room is ahead of Redis

    reply = ended_broken_off(db, before.id, TAKEN_OVER + NOT_WRITTEN)
    assert before.text.startswith(reply["text"]) and len(reply["text"]) < len(before.text), (
        f"Redis came back without the reply's last words, and nothing was written after them: {reply['text']!r}"
    )
    for name, page in (("Alice", alice), ("Bob", bob)):
        wait_until(
            lambda page=page: shown(page, "Back after the crash?"),
            DEADLINE_SECONDS,
            f"{name}'s page to show Bob's message",
        )
    the_next_message_is_answered(alice, "Alice", "Is everything back?")
    the_next_message_is_answered(bob, "Bob", "Me too?")
    every_page_shows_the_room(redis_server, {"Alice": alice, "Bob": bob})
    whole_offline_replies(db)
    no_tracebacks(a, b)


@pytest.fixture
def apps_behind_proxies(redis_apps, redis_server) -> Iterator[list[tuple[AppServer, TcpProxy]]]:
    """Two app processes sharing the room through Redis, each reaching it through a TCP proxy of its own
    (`tests/tcp_proxy.py`), so one process's connections can fail while the other's do not."""
    secret = secrets.token_hex(32)  # one cookie secret, as `redis_apps` gives the processes it starts
    proxies = [TcpProxy(redis_server.port) for _ in range(2)]
    try:
        pairs = []
        for proxy in proxies:  # slow words: a reply is still being written when its connection fails
            (app,) = redis_apps(
                1, REDIS_URL=proxy.url(), STREAMLIT_SERVER_COOKIE_SECRET=secret, WORD_DELAY_MS="300"
            )
            pairs.append((app, proxy))
        yield pairs
    finally:
        for proxy in proxies:
            proxy.close()


def test_the_lease_holders_connection_cut_and_black_holed_mid_reply_and_every_page_shows_every_reply(
    apps_behind_proxies, redis_server, new_page
):
    (a, proxy_a), (b, proxy_b) = apps_behind_proxies
    alice, bob = new_page(), new_page()
    join(alice, a.url, "Alice")
    join(bob, b.url, "Bob")
    db = redis_server.client()

    def holders_proxy() -> TcpProxy:
        holder = lease_holder(redis_server, [a, b])
        assert holder is not None, "a reply is being written, so one process holds the room's lease"
        return proxy_a if holder is a else proxy_b

    # A write of the reply reaches Redis and its answer is lost: the worker cannot know it took effect.
    send(alice, STORY)
    load_scripts(db)  # or the cut may throw away the -NOSCRIPT of the growth's first call
    wait_until(lambda: reply_in_progress(db), DEADLINE_SECONDS, "the reply to start")
    proxy = holders_proxy()
    proxy.cut_after(b"EVALSHA", script_sha("GROW").encode())  # the script that appends the reply's words
    wait_until(lambda: proxy.cuts == 1, DEADLINE_SECONDS, "a write of the reply to be cut after it went out")
    assert proxy.lost[0].startswith(b":"), f"the growth took effect, its answer lost: {proxy.lost[0]!r}"
    wait_until(lambda: finished_reply(bob, OFFLINE_REPLY_END), DEADLINE_SECONDS, "the reply to end")
    reply = newest_reply(db)
    assert reply is not None and (reply["text"], reply["status"]) == (
        first_offline_reply("Alice", STORY),
        "complete",
    ), "each word once"

    # The next reply's writer hears nothing from Redis (nor Redis from it) for longer than its lease.
    send(bob, "Another one, please")
    wait_until(
        lambda: getattr(reply_in_progress(db), "id", reply["id"]) != reply["id"],
        DEADLINE_SECONDS,
        "the next reply to start",
    )
    growing = reply_growing(db)
    proxy = holders_proxy()
    proxy.black_hole()
    silent = time.monotonic()
    try:
        wait_until(
            lambda: reply_in_progress(db) is None and time.monotonic() - silent > LEASE_SECONDS,
            DEADLINE_SECONDS,
            "the other process to take the room over, and the black hole to outlast the lease",
        )
        cut = ended_broken_off(db, growing.id, TAKEN_OVER)
        print(
            f"the room was taken over; the holder's connections were black-holed {time.monotonic() - silent:.1f} s"
        )
    finally:
        proxy.restore()

    the_next_message_is_answered(alice, "Alice", "Is the network back?")
    wait_until(lambda: shown(bob, "Is the network back?"), DEADLINE_SECONDS, "Bob to see Alice's message")
    the_next_message_is_answered(bob, "Bob", "Me too?")
    every_page_shows_the_room(redis_server, {"Alice": alice, "Bob": bob})
    whole_offline_replies(db)
    assert message_in_redis(db, cut["id"]) == cut, "the black-holed worker wrote into the old turn"
    no_tracebacks(a, b)


# --- faults that must change nothing people see ------------------------------------------------------


def joins_and_leaves(db) -> list[str]:
    return [
        m["text"]
        for m in room_in_redis(db)
        if m["role"] == "system" and m["text"].endswith(("joined.", "left."))
    ]


def ended_whole(db, reply_id: int, nickname: str, text: str) -> None:
    """The reply in progress at the fault was written to its end and marked complete."""
    wait_until(
        lambda: message_in_redis(db, reply_id)["status"] != "streaming", DEADLINE_SECONDS, "the reply to end"
    )
    reply = message_in_redis(db, reply_id)
    assert (reply["status"], reply["text"]) == ("complete", first_offline_reply(nickname, text)), reply


def test_a_pages_websocket_cut_mid_reply_and_back_shows_the_room_exactly_and_nobody_left(
    redis_apps, redis_server, new_page
):
    """Alice's network to her process drops while a reply is written (her websocket is closed, and every
    attempt to reconnect hangs) and comes back while the reply is still being written."""
    a, b = redis_apps(2, WORD_DELAY_MS="300")
    with TcpProxy(a.port) as network:  # between Alice's browser and process A
        alice, bob = new_page(), new_page()
        join(alice, f"http://127.0.0.1:{network.port}/", "Alice")
        join(bob, b.url, "Bob")
        wait_until(lambda: "Bob" in sidebar_text(alice), DEADLINE_SECONDS, "Alice to see Bob")
        db = redis_server.client()
        send(bob, STORY)
        growing = reply_growing(db)
        wait_until(lambda: "writing…" in reply_text(alice), DEADLINE_SECONDS, "Alice to see the reply start")

        network.black_hole()
        network.drop_all()  # her websocket closes; each new connection hangs
        cut, connections = time.monotonic(), network.accepted
        wait_until(
            lambda: len(getattr(reply_in_progress(db), "text", "")) > len(growing.text) + 20,
            DEADLINE_SECONDS,
            "the reply to grow while Alice's page is cut off",
        )
        print(f"\nAlice's page was cut off {time.monotonic() - cut:.1f} s, the reply in progress throughout")
        shown_at_cut = len(reply_text(alice))
        network.restore()
        back = time.monotonic()
        wait_until(lambda: len(reply_text(alice)) > shown_at_cut, DEADLINE_SECONDS, "Alice's page to follow")
        print(
            f"Alice's page followed the reply again {time.monotonic() - back:.1f} s after her network was back"
        )
        wait_until(
            lambda: finished_reply(alice, OFFLINE_REPLY_END), DEADLINE_SECONDS, "Alice's page to catch up"
        )
        assert network.accepted > connections, "Alice's page connected again: its websocket was cut"
        ended_whole(db, growing.id, "Bob", STORY)
        assert not alice.get_by_role("textbox", name="Nickname").count(), "Alice had to pick a nickname again"
        the_next_message_is_answered(alice, "Alice", "Did I miss anything?")
        every_page_shows_the_room(redis_server, {"Alice": alice, "Bob": bob})
    assert joins_and_leaves(db) == ["Alice joined.", "Bob joined."]
    whole_offline_replies(db)
    no_tracebacks(a, b)


def test_a_process_that_does_not_hold_the_lease_paused_past_the_lease_mid_reply_changes_nothing(
    redis_apps, redis_server, new_page
):
    a, b, alice, bob, growing, holder = a_reply_being_written(redis_apps, redis_server, new_page)
    paused, paused_name, paused_page = (b, "Bob", bob) if holder is a else (a, "Alice", alice)
    db = redis_server.client()
    fenced = fence(db)

    paused.pause()
    stopped, frozen = time.monotonic(), reply_text(paused_page)
    try:
        wait_until(
            lambda: (
                time.monotonic() - stopped > LEASE_SECONDS
                and len(getattr(reply_in_progress(db), "text", "")) > len(growing.text)
            ),
            DEADLINE_SECONDS,
            "the pause to outlast a lease while the reply grows",
        )
        assert reply_in_progress(db) is not None, "the reply was still being written when the process woke"
        assert reply_text(paused_page) == frozen, "the paused process's page stood still"
    finally:
        paused.resume()
    print(f"\n{paused_name}'s process was paused {time.monotonic() - stopped:.1f} s")

    ended_whole(db, growing.id, "Alice", STORY)
    assert fence(db) == fenced and lease_holder(redis_server, [a, b]) in (holder, None), (
        "the room changed hands"
    )
    wait_until(lambda: finished_reply(paused_page, OFFLINE_REPLY_END), DEADLINE_SECONDS, "the woken page")
    the_next_message_is_answered(paused_page, paused_name, "Was I away?")
    every_page_shows_the_room(redis_server, {"Alice": alice, "Bob": bob})
    assert joins_and_leaves(db) == ["Alice joined.", "Bob joined."]
    no_tracebacks(a, b)


def test_the_process_that_does_not_write_the_reply_cut_off_from_redis_past_the_lease_changes_nothing(
    apps_behind_proxies, redis_server, new_page
):
    (a, proxy_a), (b, proxy_b) = apps_behind_proxies
    alice, bob = new_page(), new_page()
    join(alice, a.url, "Alice")
    join(bob, b.url, "Bob")
    db = redis_server.client()
    send(alice, STORY)
    growing = reply_growing(db)
    holder = lease_holder(redis_server, [a, b])
    assert holder is not None
    proxy, cut_name, cut_page = (proxy_b, "Bob", bob) if holder is a else (proxy_a, "Alice", alice)
    fenced = fence(db)

    proxy.black_hole()
    silent, said_away, frozen = time.monotonic(), False, reply_text(cut_page)
    try:

        def outlasted() -> bool:
            nonlocal said_away
            said_away = said_away or "Redis" in main_text(cut_page)
            grown = len(getattr(reply_in_progress(db), "text", "")) > len(growing.text)
            return time.monotonic() - silent > LEASE_SECONDS + 1 and grown

        wait_until(outlasted, DEADLINE_SECONDS, "the cut to outlast a lease while the reply grows")
        assert reply_text(cut_page) == frozen, "the cut-off process heard nothing of the reply's growth"
    finally:
        proxy.restore()
    print(
        f"\n{cut_name}'s process was cut off from Redis {time.monotonic() - silent:.1f} s;"
        f" its page {'said' if said_away else 'did not say'} Redis was away"
    )
    ended_whole(db, growing.id, "Alice", STORY)
    assert fence(db) == fenced, "the room changed hands"
    wait_until(lambda: finished_reply(cut_page, OFFLINE_REPLY_END), DEADLINE_SECONDS, f"{cut_name}'s page")
    the_next_message_is_answered(cut_page, cut_name, "Back in touch?")
    every_page_shows_the_room(redis_server, {"Alice": alice, "Bob": bob})
    assert joins_and_leaves(db) == ["Alice joined.", "Bob joined."]
    no_tracebacks(a, b)


def test_redis_slow_to_answer_the_lease_holder_mid_reply_and_every_page_shows_the_room(
    apps_behind_proxies, redis_server, new_page
):
    """Every packet between the reply's writer and Redis waits 1.5 s, both ways, for longer than a lease:
    a renewal takes 3 s to come back, the lease's third (1.7 s) is its pace. Whatever the writer then
    manages, the reply ends whole or broken off, never complete and cut short, and pages show the room."""
    (a, proxy_a), (b, proxy_b) = apps_behind_proxies
    alice, bob = new_page(), new_page()
    join(alice, a.url, "Alice")
    join(bob, b.url, "Bob")
    db = redis_server.client()
    send(alice, STORY)
    growing = reply_growing(db)
    holder = lease_holder(redis_server, [a, b])
    assert holder is not None
    proxy = proxy_a if holder is a else proxy_b

    proxy.delay(1.5)
    slow = time.monotonic()
    try:
        with redis.Redis(port=proxy.port, socket_timeout=10) as through:
            through.ping()
        assert time.monotonic() - slow >= 3, "a command through the slow proxy took 2 x 1.5 s"
        wait_until(
            lambda: time.monotonic() - slow > 2 * LEASE_SECONDS,
            DEADLINE_SECONDS,
            "two leases of a slow Redis",
        )
        during = message_in_redis(db, growing.id)
    finally:
        proxy.restore()
    wait_until(
        lambda: message_in_redis(db, growing.id)["status"] != "streaming",
        DEADLINE_SECONDS,
        "the reply to end",
    )
    reply = message_in_redis(db, growing.id)
    print(f"\nslow Redis: the reply was {during['status']} after two leases, ended {reply['status']}")
    if reply["status"] == "error":
        ended_broken_off(db, growing.id, TAKEN_OVER + NOT_WRITTEN)
    else:
        assert (reply["status"], reply["text"]) == ("complete", first_offline_reply("Alice", STORY)), reply
    the_next_message_is_answered(bob, "Bob", "Faster now?")
    every_page_shows_the_room(redis_server, {"Alice": alice, "Bob": bob})
    whole_offline_replies(db)
    assert joins_and_leaves(db) == ["Alice joined.", "Bob joined."]
    no_tracebacks(a, b)


def test_redis_full_at_maxmemory_refuses_a_message_in_one_sentence_and_loses_nothing(
    redis_apps, redis_server, new_page
):
    """Redis at `maxmemory` with `noeviction` refuses every write (reads still work): a message sent then
    is refused with one sentence and handed back, nothing in the room is lost or half-written, and once
    Redis has room again the room carries on."""
    a, b, alice, bob = two_people_on_two_processes(redis_apps, new_page)
    db = redis_server.client()
    before = room_in_redis(db)
    db.config_set("maxmemory-policy", "noeviction")
    db.config_set("maxmemory", 1)  # below what Redis uses already: every write is refused
    try:
        send(bob, "While Redis is full")
        wait_until(lambda: "was not sent" in main_text(bob), DEADLINE_SECONDS, "Bob to be told")
        lines = [line for line in main_text(bob).splitlines() if "not sent" in line or "Redis" in line]
        print(f"\nBob's page while Redis is full: {lines}")
        assert sum("not sent" in line for line in lines) == 1, lines
        bob.get_by_text("Your unsent message, to copy and shorten").click()
        wait_until(lambda: "While Redis is full" in main_text(bob), DEADLINE_SECONDS, "the text handed back")
        assert room_in_redis(db) == before, "a refused write changed the room"
    finally:
        db.config_set("maxmemory", 0)
    the_next_message_is_answered(bob, "Bob", "Is there room now?")
    every_page_shows_the_room(redis_server, {"Alice": alice, "Bob": bob})
    users = [m["text"] for m in room_in_redis(db) if m["role"] == "user"]
    assert users == ["Hello from A", "Is there room now?"]
    assert joins_and_leaves(db) == ["Alice joined.", "Bob joined."]
    whole_offline_replies(db)
    no_tracebacks(a, b)
