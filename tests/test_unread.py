"""Unread messages and mentions: the rule (`shared/room/unread.py`), and a real room on both stores
counting what a person's pages have not shown yet, the assistant's replies included."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.assistant.openai import OpenAIAssistant
from shared.config import Settings
from shared.messages import Message, Role, Status
from shared.room import Room
from shared.room.unread import MentionWatch, mentions_person, unread
from tests.fakes import wait_until
from tests.openai_server import API_KEY, OpenAIServer, Say
from tests.test_redis_rooms import make_hub  # noqa: F401, F811  (a fixture: several processes' hubs)

pytestmark = pytest.mark.promise_unread_mentions

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "nickname"),
    [
        ("@Bob look", "Bob"),
        ("look, @bob!", "Bob"),
        ("(@BOB)", "Bob"),
        ("@Ｂｏｂ, full width", "Bob"),  # compared as nicknames are: NFKC
        ("@Bob's idea", "Bob"),
        ("@Ali Khan, hello", "Ali Khan"),  # a nickname with a space
        ("@zoë?", "Zoë"),
        ("first line\n@Bob second", "Bob"),
        ("`code` and @Bob", "Bob"),
    ],
)
def test_a_mention_is_at_the_nickname_compared_as_nicknames_are(text, nickname):
    assert mentions_person(text, nickname)


@pytest.mark.parametrize(
    ("text", "nickname"),
    [
        ("@Bobby look", "Bob"),  # inside a longer word
        ("@Bob_x", "Bob"),
        ("mail bob@Bob now", "Bob"),  # an address, not a mention
        ("@ Bob", "Bob"),
        ("Bob, look", "Bob"),  # no @
        ("@Ali, hello", "Ali Khan"),
        ("@Alice", "Ali"),
        ("Alice, you said `@Bob look`.", "Bob"),  # quoted as code (the offline assistant's echo)
        ("see:\n```\n@Bob\n```", "Bob"),
    ],
)
def test_no_mention_inside_a_word_or_without_the_whole_nickname(text, nickname):
    assert not mentions_person(text, nickname)


def message(id: int, text: str, author: str = "Alice", *, role: Role = Role.USER, **fields) -> Message:
    pid = f"id-{author}" if role is Role.USER else ""
    return Message(id=id, role=role, text=text, created_at=NOW, author=author, participant_id=pid, **fields)


def test_unread_counts_others_messages_and_replies_not_notes_own_or_deleted():
    messages = [
        message(1, "Bob joined.", "", role=Role.SYSTEM),
        message(2, "hello @Bob"),
        message(3, "my own @Bob", "Bob"),
        message(4, "Answer to @Bob", "CatGPT", role=Role.ASSISTANT),
        message(5, "", "Alice", deleted=True),
        message(6, "plain"),
        message(7, "", "CatGPT", role=Role.ASSISTANT, status=Status.STREAMING),  # no words yet
    ]
    found = unread(messages, "id-Bob", "Bob")
    assert (found.count, found.mentions) == (3, 2)


def test_a_watch_tells_each_mention_once_and_a_reply_only_when_finished():
    watch = MentionWatch(after=1, version=10)
    old = message(1, "@Bob from before the watch")
    writing = message(2, "Answer to @Bob", "CatGPT", role=Role.ASSISTANT, status=Status.STREAMING)
    said = message(3, "@bob look")
    assert [m.id for m in watch.news([old, writing, said], "id-Bob", "Bob")] == [3]
    assert watch.news([said], "id-Bob", "Bob") == [], "a reaction to it later is no new mention"
    finished = message(2, "Answer to @Bob", "CatGPT", role=Role.ASSISTANT)
    assert [m.id for m in watch.news([finished], "id-Bob", "Bob")] == [2]


# --- a real room, on both stores ----------------------------------------------------------------


def seen_by_page(room: Room, participant_id: str, session_id: str) -> None:
    """A page of the person drew the room as it is now."""
    room.mark_seen(participant_id, session_id, room.view().messages[-1].id)


def test_the_room_counts_what_no_page_showed_and_the_replies_that_mention(room):
    room.join("id-Alice", "Alice", "tab-a")
    room.join("id-Bob", "Bob", "tab-b")
    seen_by_page(room, "id-Bob", "tab-b")
    assert not room.unread("id-Bob")

    room.post("id-Alice", "@Bob look at this")
    wait_until(lambda: not room.busy, "the reply")
    found = room.unread("id-Bob")
    # Alice's message and the scripted reply ("Answer to @Bob look at this") both mention Bob.
    assert (found.count, found.mentions) == (2, 2)
    assert room.unread("id-Alice").count == 1, "Alice's own message is not unread for her"
    assert room.unread("id-Nobody") is None

    seen_by_page(room, "id-Bob", "tab-b")
    assert not room.unread("id-Bob")
    room.flush_seen(now=True)
    assert not room.unread("id-Bob"), "the same once the store holds the mark"


def test_before_any_page_showed_the_room_the_history_before_joining_is_not_unread(room):
    room.join("id-Alice", "Alice", "tab-a")
    room.post("id-Alice", "said before Bob came")
    wait_until(lambda: not room.busy, "the reply")
    room.join("id-Bob", "Bob", "tab-b")
    assert room.unread("id-Bob").count == 0
    room.post("id-Alice", "@Bob welcome")
    wait_until(lambda: not room.busy, "the reply")
    assert room.unread("id-Bob").mentions == 2


def test_with_redis_another_process_counts_what_this_ones_pages_showed(shared_redis, make_hub):  # noqa: F811
    url = shared_redis.fresh_url()
    one, two = make_hub(url), make_hub(url)
    here, _ = one.join("plans", "id-Alice", "Alice", "tab-a")
    # The room opened on process one: process two's reaper finds it listed and keeps a copy, so its
    # pages look at it without asking the store.
    wait_until(lambda: any(r.name == "plans" for r in two.copies()), "process two to keep a copy")
    [there] = [r for r in two.copies() if r.name == "plans"]
    there.join("id-Bob", "Bob", "tab-b")
    seen_by_page(there, "id-Bob", "tab-b")

    here.post("id-Alice", "@Bob over here")
    wait_until(lambda: (u := there.unread("id-Bob")) is not None and u.mentions == 2, "process two to count")
    assert here.unread("id-Bob").mentions == 2, "process one counts from the mark in the store"

    seen_by_page(there, "id-Bob", "tab-b")
    there.flush_seen(now=True)
    assert not here.unread("id-Bob"), "the mark another process told the store"


def test_on_the_openai_path_the_models_reply_that_mentions_bob_counts_and_is_told_once():
    """The real `openai` SDK over loopback HTTP to `tests/openai_server.py`: the model's streamed replies
    count and mention like anyone's messages, and `@Bobby` beside `@Bob` is not a second mention."""
    with OpenAIServer() as server:
        settings = Settings(
            openai_api_key=API_KEY,
            openai_base_url=server.base_url,
            word_delay_ms=0,
            request_timeout_seconds=5.0,
            room_notes_by_assistant=False,  # the scripted answers are the replies' alone
        )
        room = Room("lobby", settings, OpenAIAssistant(settings))
        try:
            room.join("id-Alice", "Alice", "tab-a")
            room.join("id-Bob", "Bob", "tab-b")
            seen_by_page(room, "id-Bob", "tab-b")
            watch = MentionWatch(after=room.view().messages[-1].id, version=room.version)
            server.script(Say("Ask @Bobby, not @Bob"), Say("Sure, @Bob knows."))
            room.post("id-Alice", "Who knows?")
            wait_until(lambda: not room.busy, "the first reply")
            room.post("id-Alice", "Really?")
            wait_until(lambda: not room.busy, "the second reply")

            found = room.unread("id-Bob")
            assert (found.count, found.mentions) == (4, 2)
            changed = room.changes_since(watch.version).messages
            told = watch.news(changed, "id-Bob", "Bob")
            assert [m.text for m in told] == ["Ask @Bobby, not @Bob", "Sure, @Bob knows."]
            assert all(m.role is Role.ASSISTANT for m in told)
            assert watch.news(room.view().messages, "id-Bob", "Bob") == []
        finally:
            room.close()
