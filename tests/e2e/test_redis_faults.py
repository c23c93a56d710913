"""Rooms on Redis under faults, with real processes, Debian's redis-server and Chromium pages.

Each case makes a part fail (an app process killed or hung, Redis hung, restarted or back without its
last writes, one process's connections cut right after a command went out or black-holed) and ends with
the same checks on every page of every surviving process:
- each message of the room, as Redis holds it, is shown exactly once, in the room's order;
- no reply is marked complete that was cut short;
- the next message is answered and shown within `NEXT_REPLY_SECONDS`.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.assistant.offline import OFFLINE_NOTICE
from shared.store.redis import LEASE_SECONDS
from tests.e2e.conftest import ARTIFACTS, DEADLINE_SECONDS, AppServer, lease_holder, wait_until
from tests.e2e.test_redis import BROKE_OFF, OFFLINE_REPLY_END, finished_reply, no_tracebacks, shown
from tests.e2e.test_two_people import bubble_texts, join, main_text, reply_text, send, sidebar_text, turn_over
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.e2e

NEXT_REPLY_SECONDS = 15
STORY = "A story, please"  # asks neither the time nor who is here: its offline reply is known in full
BROKE_OFF_NOTE = "This reply broke off before it was finished."  # under a reply that was cut short


def room_in_redis(redis_server, room: str = "lobby") -> list[dict]:
    """The room's messages as Redis holds them, oldest first."""
    raw = redis_server.client().hgetall(f"chat:room:{room}:msgs")
    return sorted((json.loads(value) for value in raw.values()), key=lambda m: m["id"])


def newest_reply(redis_server, room: str = "lobby") -> dict | None:
    """The room's newest assistant message as Redis holds it, or None before the first."""
    replies = [m for m in room_in_redis(redis_server, room) if m["role"] == "assistant"]
    return replies[-1] if replies else None


def message_in_redis(redis_server, message_id: int, room: str = "lobby") -> dict:
    return json.loads(redis_server.client().hget(f"chat:room:{room}:msgs", message_id))


def room_version(redis_server, room: str = "lobby") -> int:
    """The version of the room's state in Redis (raised by every change)."""
    return json.loads(redis_server.client().get(f"chat:room:{room}:state"))["version"]


def first_offline_reply(nickname: str, text: str) -> str:
    """The offline assistant's whole reply to the first message of a room, when it asks neither the time
    nor who is here."""
    return f"Hi {nickname}! 🐾\n\n{nickname}, you said `{text}`.\n\n{OFFLINE_NOTICE}"


def streaming(redis_server) -> bool:
    """A reply is being written into the room in Redis now."""
    reply = newest_reply(redis_server)
    return reply is not None and reply["status"] == "streaming"


def plain(text: str) -> str:
    """Text as a page shows it, for comparing: no Markdown marks, one space between words."""
    return " ".join(re.sub(r"[`*_\\]", "", text).split())


def page_shows_the_room(page, messages: list[dict]) -> str | None:
    """None if the page shows each said message of the room exactly once and in order, else what differs."""
    said = [m for m in messages if m["role"] in ("user", "assistant") and m["status"] != "streaming"]
    bubbles = [plain(b) for b in bubble_texts(page) if "writing…" not in b]
    if len(bubbles) != len(said):
        return (
            f"{len(bubbles)} bubbles for {len(said)} messages: {bubbles} vs {[m['text'][:40] for m in said]}"
        )
    for bubble, message in zip(bubbles, said, strict=True):
        if plain(message["text"])[:60] not in bubble:
            return f"message {message['id']} ({message['text'][:40]!r}) is not where the page shows {bubble[:80]!r}"
    return None


def every_page_shows_the_room(redis_server, pages: dict[str, object]) -> None:
    """Each page shows exactly the room in Redis (waiting for a turn under way to end first)."""
    for name, page in pages.items():
        wait_until(lambda page=page: turn_over(page), DEADLINE_SECONDS, f"{name}: the turn to be over")

    def all_match() -> bool:
        messages = room_in_redis(redis_server)
        return all(page_shows_the_room(page, messages) is None for page in pages.values())

    try:
        wait_until(all_match, DEADLINE_SECONDS, "every page to show the room as Redis holds it")
    except AssertionError:
        messages = room_in_redis(redis_server)
        for name, page in pages.items():
            page.screenshot(path=str(ARTIFACTS / f"fault-{name}.png"), full_page=True)
        problems = {name: page_shows_the_room(page, messages) for name, page in pages.items()}
        raise AssertionError(f"pages differ from the room in Redis: {problems}") from None


def no_complete_reply_was_cut_short(redis_server) -> None:
    """An offline reply that is complete ends its last line with a full stop; a cut one is marked so."""
    for message in room_in_redis(redis_server):
        if message["role"] == "assistant" and message["status"] == "complete":
            assert message["text"].rstrip().endswith("."), f"complete but cut short: {message['text']!r}"


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
    every_page_shows_the_room(redis_server, {"bob": bob})
    no_complete_reply_was_cut_short(redis_server)
    no_tracebacks(b)


def test_redis_hung_for_six_seconds_mid_reply_and_every_page_shows_every_reply(
    redis_apps, redis_server, new_page
):
    a, b = redis_apps(2, WORD_DELAY_MS="300")  # slow words: Redis hangs while the reply is written
    alice, bob = new_page(), new_page()
    join(alice, a.url, "Alice")
    join(bob, b.url, "Bob")
    send(alice, "Hello from A")
    wait_until(lambda: "writing…" in reply_text(bob), DEADLINE_SECONDS, "Bob to see the reply start")
    redis_server.pause()
    time.sleep(6)  # the fault itself: Redis answers nothing for longer than a worker's lease
    redis_server.resume()
    wait_until(lambda: turn_over(bob), DEADLINE_SECONDS, "the reply under way to end or be cut short")
    the_next_message_is_answered(bob, "Bob", "Back after the pause?")
    wait_until(lambda: shown(alice, "Back after the pause?"), DEADLINE_SECONDS, "Alice to see Bob's message")
    the_next_message_is_answered(alice, "Alice", "Me too?")
    every_page_shows_the_room(redis_server, {"alice": alice, "bob": bob})
    no_complete_reply_was_cut_short(redis_server)
    no_tracebacks(a, b)


def a_reply_being_written(redis_apps, redis_server, new_page):
    """Alice on process A and Bob on B; Alice asks, and a slow reply (300 ms a word) is being written.
    Returns the processes, the pages, and the process whose worker writes the reply (holds the lease)."""
    a, b = redis_apps(2, WORD_DELAY_MS="300")
    alice, bob = new_page(), new_page()
    join(alice, a.url, "Alice")
    join(bob, b.url, "Bob")
    send(alice, "Take your time with this one")
    wait_until(lambda: "writing…" in reply_text(bob), DEADLINE_SECONDS, "Bob to see the reply start")
    holder = lease_holder(redis_server, [a, b])
    assert holder is not None, "a reply is being written, so one process holds the room's lease"
    return a, b, alice, bob, holder


def test_the_lease_holder_killed_mid_reply_and_the_survivors_pages_show_every_reply(
    redis_apps, redis_server, new_page
):
    a, b, alice, bob, holder = a_reply_being_written(redis_apps, redis_server, new_page)
    survivor, page, nickname = (b, bob, "Bob") if holder is a else (a, alice, "Alice")
    holder.kill()
    send(page, "Are you still there?")
    wait_until(
        lambda: turn_over(page) and "you said Are you still there?" in reply_text(page),
        DEADLINE_SECONDS,
        "the next turn to be answered",
    )
    the_next_message_is_answered(page, nickname, "And now?")
    every_page_shows_the_room(redis_server, {nickname: page})
    no_complete_reply_was_cut_short(redis_server)
    no_tracebacks(survivor)


def test_the_lease_holder_hung_longer_than_the_lease_mid_reply_is_taken_over_and_writes_nothing_more(
    redis_apps, redis_server, new_page
):
    a, b, alice, bob, holder = a_reply_being_written(redis_apps, redis_server, new_page)
    other_page, other_name = (bob, "Bob") if holder is a else (alice, "Alice")
    hung_page, hung_name = (alice, "Alice") if holder is a else (bob, "Bob")

    holder.pause()
    hung = time.monotonic()
    try:
        wait_until(
            lambda: not streaming(redis_server) and time.monotonic() - hung > LEASE_SECONDS,
            DEADLINE_SECONDS,
            "the other process to take the room over, and the hang to outlast the lease",
        )
        cut = newest_reply(redis_server)
        print(f"\nthe room was taken over; the holder hung {time.monotonic() - hung:.1f} s")
    finally:
        holder.resume()

    assert cut is not None and cut["status"] == "error", f"the reply cut short by the hang: {cut}"
    assert lease_holder(redis_server, [a, b]) is not holder
    wait_until(
        lambda: BROKE_OFF_NOTE in main_text(other_page) and BROKE_OFF in main_text(other_page),
        DEADLINE_SECONDS,
        f"{other_name}'s page to show the reply cut short",
    )
    the_next_message_is_answered(other_page, other_name, "Are you still there?")
    the_next_message_is_answered(hung_page, hung_name, "Back after the hang?")
    every_page_shows_the_room(redis_server, {"alice": alice, "bob": bob})
    no_complete_reply_was_cut_short(redis_server)
    assert message_in_redis(redis_server, cut["id"]) == cut, "the woken process wrote into the old turn"
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
    is up, or the worker that takes the room over ("... broke off because its worker stopped.").
    """
    a, b = redis_apps(2, WORD_DELAY_MS="300")  # slow words: Redis dies while the reply is written
    alice, bob = new_page(), new_page()
    join(alice, a.url, "Alice")
    join(bob, b.url, "Bob")
    send(alice, "Take your time with this one")
    wait_until(lambda: "writing…" in reply_text(bob), DEADLINE_SECONDS, "Bob to see the reply start")
    acknowledged = newest_reply(redis_server)  # at least this much Redis has said it stored
    assert acknowledged is not None and acknowledged["status"] == "streaming"

    redis_server.kill()
    killed = time.monotonic()
    wait_until(
        lambda: all("Redis" in main_text(page) for page in (alice, bob)),
        DEADLINE_SECONDS,
        "both pages to say Redis is away",
    )
    redis_server.start()
    print(f"\nRedis was away {time.monotonic() - killed:.2f} s")

    kept = message_in_redis(redis_server, acknowledged["id"])
    assert kept["text"].startswith(acknowledged["text"]), "a word Redis acknowledged was lost"
    wait_until(lambda: turn_over(bob), DEADLINE_SECONDS, "the reply under way to end or be cut short")
    the_next_message_is_answered(bob, "Bob", "Back after the restart?")
    wait_until(
        lambda: shown(alice, "Back after the restart?"), DEADLINE_SECONDS, "Alice to see Bob's message"
    )
    the_next_message_is_answered(alice, "Alice", "Me too?")
    every_page_shows_the_room(redis_server, {"alice": alice, "bob": bob})
    no_complete_reply_was_cut_short(redis_server)
    users = [m["text"] for m in room_in_redis(redis_server) if m["role"] == "user"]
    assert users == ["Take your time with this one", "Back after the restart?", "Me too?"]
    no_tracebacks(a, b)


def crash_back_to(redis_server, saved: Path) -> None:
    """Kill Redis and start it from `saved`, a copy of its append-only files taken earlier: it comes back
    without the writes made since, as after a machine that went down before they were fsynced."""
    redis_server.kill()
    files = redis_server.folder / "appendonlydir"
    shutil.rmtree(files)
    shutil.copytree(saved, files)
    redis_server.start()


@pytest.mark.parametrize("redis_server", [{"appendfsync": "everysec"}], ids=["everysec"], indirect=True)
def test_redis_back_without_its_last_second_of_writes_mid_reply_and_every_page_shows_the_room_as_redis_holds_it(
    redis_apps, redis_server, new_page, tmp_path
):
    """What `appendfsync everysec` loses when the machine under Redis goes down (or what a replica that
    lagged behind lacks when it takes over): the last second or so of writes Redis had acknowledged.

    Simulated without a machine crash: a copy of the append-only files is taken while a reply is being
    written, the room changes for a second or two more, then Redis is killed and started from the copy,
    and Bob sends a message at once. The reply in progress may lose its last words (the README says it
    does not survive this), but it must not be marked complete with words missing; and every page must
    then show the room as Redis holds it, Bob's message included, and the next message be answered.
    """
    a, b = redis_apps(2, WORD_DELAY_MS="300")  # slow words: the reply is being written throughout
    alice, bob = new_page(), new_page()
    join(alice, a.url, "Alice")
    join(bob, b.url, "Bob")
    send(alice, STORY)
    wait_until(lambda: streaming(redis_server), DEADLINE_SECONDS, "the reply to start")
    saved = tmp_path / "appendonlydir"
    shutil.copytree(redis_server.folder / "appendonlydir", saved)
    copied, on_disk = time.monotonic(), room_version(redis_server)
    wait_until(
        lambda: time.monotonic() - copied > 1 and room_version(redis_server) >= on_disk + 6,
        DEADLINE_SECONDS,
        "a second and six changes more of the room",
    )
    before = newest_reply(redis_server)

    crash_back_to(redis_server, saved)
    send(bob, "Back after the crash?")  # lands while each process's copy of the room is ahead of Redis

    assert len(message_in_redis(redis_server, before["id"])["text"]) < len(before["text"]), (
        "Redis came back without the reply's last words"
    )
    wait_until(
        lambda: message_in_redis(redis_server, before["id"])["status"] != "streaming",
        DEADLINE_SECONDS,
        "the reply in progress at the crash to end",
    )
    for name, page in (("Alice", alice), ("Bob", bob)):
        wait_until(
            lambda page=page: shown(page, "Back after the crash?"),
            DEADLINE_SECONDS,
            f"{name}'s page to show Bob's message",
        )
    the_next_message_is_answered(alice, "Alice", "Is everything back?")
    the_next_message_is_answered(bob, "Bob", "Me too?")
    every_page_shows_the_room(redis_server, {"alice": alice, "bob": bob})
    no_complete_reply_was_cut_short(redis_server)
    reply = message_in_redis(redis_server, before["id"])
    assert reply["status"] == "error" or reply["text"] == first_offline_reply("Alice", STORY), (
        f"marked {reply['status']} with words missing: {reply['text']!r}"
    )
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

    def holders_proxy() -> TcpProxy:
        holder = lease_holder(redis_server, [a, b])
        assert holder is not None, "a reply is being written, so one process holds the room's lease"
        return proxy_a if holder is a else proxy_b

    # A write of the reply reaches Redis and its answer is lost: the worker cannot know it took effect.
    send(alice, STORY)
    wait_until(lambda: streaming(redis_server), DEADLINE_SECONDS, "the reply to start")
    proxy = holders_proxy()
    proxy.cut_after(b"EVALSHA", b"chat:room:lobby:reply")  # the script that appends the reply's words
    wait_until(lambda: proxy.cuts == 1, DEADLINE_SECONDS, "a write of the reply to be cut after it went out")
    wait_until(lambda: finished_reply(bob, OFFLINE_REPLY_END), DEADLINE_SECONDS, "the reply to end")
    reply = newest_reply(redis_server)
    assert reply is not None and (reply["text"], reply["status"]) == (
        first_offline_reply("Alice", STORY),
        "complete",
    ), "each word once"

    # The next reply's writer hears nothing from Redis (nor Redis from it) for longer than its lease.
    send(bob, "Another one, please")
    wait_until(
        lambda: streaming(redis_server) and newest_reply(redis_server)["id"] != reply["id"],
        DEADLINE_SECONDS,
        "the next reply to start",
    )
    proxy = holders_proxy()
    proxy.black_hole()
    silent = time.monotonic()
    try:
        wait_until(
            lambda: not streaming(redis_server) and time.monotonic() - silent > LEASE_SECONDS,
            DEADLINE_SECONDS,
            "the other process to take the room over, and the black hole to outlast the lease",
        )
        cut = newest_reply(redis_server)
        print(
            f"\nthe room was taken over; the holder's connections were black-holed {time.monotonic() - silent:.1f} s"
        )
    finally:
        proxy.restore()
    assert cut is not None and cut["status"] == "error", f"the reply cut short by the black hole: {cut}"

    the_next_message_is_answered(alice, "Alice", "Is the network back?")
    wait_until(lambda: shown(bob, "Is the network back?"), DEADLINE_SECONDS, "Bob to see Alice's message")
    the_next_message_is_answered(bob, "Bob", "Me too?")
    every_page_shows_the_room(redis_server, {"alice": alice, "bob": bob})
    no_complete_reply_was_cut_short(redis_server)
    assert message_in_redis(redis_server, cut["id"]) == cut, "the black-holed worker wrote into the old turn"
    no_tracebacks(a, b)
