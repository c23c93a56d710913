"""Searching a room: every word, whatever its case and accents, across the whole room, never a deleted
message; the same in one process (memory) and on Redis, where another process's copy finds the same."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.messages import Message, ReplyPolicy, Role
from shared.room import Room
from shared.search import (
    EXCERPT_CHARS,
    MAX_QUERY_CHARS,
    MAX_RESULTS,
    SearchRefused,
    fold,
    search,
)
from shared.store.redis import RedisStore
from shared.web.window import PAGE_OF_MESSAGES
from tests.fakes import fast_settings, wait_for_workers_to_end, wait_until

pytestmark = pytest.mark.promise_search

WHEN = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)


def said(*texts: str, role: Role = Role.USER) -> list[Message]:
    return [Message(i, role, text, WHEN, author="Ann") for i, text in enumerate(texts, start=1)]


def found_texts(messages: list[Message], query: str) -> list[str]:
    by_id = {m.id: m.text for m in messages}
    return [by_id[f.message_id] for f in search(messages, query).found]


def test_case_and_accents_do_not_matter_either_way():
    messages = said("Crème brûlée at the CAFÉ", "creme brulee at home", "Straße", "Ørsted and Łódź", "ﬁne")
    assert found_texts(messages, "CREME Brulee") == ["creme brulee at home", "Crème brûlée at the CAFÉ"]
    assert found_texts(messages, "café") == ["Crème brûlée at the CAFÉ"]
    assert found_texts(messages, "strasse") == ["Straße"]
    assert found_texts(messages, "orsted lodz") == ["Ørsted and Łódź"]
    assert found_texts(messages, "fine") == ["ﬁne"], "compatibility forms (a ligature) unfolded"
    assert fold("e\u0301") == fold("é") == "e", "an accent typed as its own character goes too"


def test_every_word_must_be_in_the_message_in_any_order_and_place():
    messages = said("lunch on friday", "friday is the deadline", "Lunch at noon, friday?", "lunches")
    assert found_texts(messages, "friday lunch") == ["Lunch at noon, friday?", "lunch on friday"]
    assert found_texts(messages, "lunch") == ["lunches", "Lunch at noon, friday?", "lunch on friday"]
    assert found_texts(messages, "lunch pizza") == []
    assert search(messages, "friday, lunch!").words == ("friday", "lunch"), "punctuation is no word"


def test_the_newest_come_first_a_bounded_number_and_the_rest_are_counted():
    messages = said(*(f"note {n}" for n in range(MAX_RESULTS + 7)))
    results = search(messages, "note")
    assert [f.message_id for f in results.found] == list(range(MAX_RESULTS + 7, 7, -1))
    assert (results.total, results.more) == (MAX_RESULTS + 7, 7)


def test_a_search_of_no_words_or_too_long_is_refused_with_a_sentence():
    with pytest.raises(SearchRefused, match="Type a word"):
        search(said("hello"), " ?! ")
    with pytest.raises(SearchRefused, match=f"at most {MAX_QUERY_CHARS} characters"):
        search(said("hello"), "hello " * MAX_QUERY_CHARS)
    assert search(said("hello"), "x" * MAX_QUERY_CHARS).total == 0, "the limit itself is allowed"


def test_the_excerpt_is_the_messages_own_words_around_the_match_on_one_line():
    long = "Before " * 20 + "we ate a CRÈME\nbrûlée " + "after " * 30
    [found] = search(said(long), "creme").found
    assert "CRÈME brûlée" in found.excerpt, "as it was written, the line break a space"
    assert found.excerpt.startswith("…") and found.excerpt.endswith("…")
    assert len(found.excerpt) <= EXCERPT_CHARS + 2 and "\n" not in found.excerpt
    [short] = search(said("Straße ß"), "SS").found
    assert short.excerpt == "Straße ß", "a short message whole; a match in a longer folding found"
    [marked] = search(said("Alice, you said `Porto it is` and **Bob** agreed"), "porto").found
    assert marked.excerpt == "Alice, you said Porto it is and Bob agreed", "Markdown's marks shown as marks"


def test_system_lines_are_not_searched_and_the_assistants_replies_are():
    messages = [
        Message(1, Role.SYSTEM, "Ann joined.", WHEN),
        Message(2, Role.ASSISTANT, "Hi Ann, welcome!", WHEN, author="CatGPT"),
    ]
    assert search(messages, "joined").total == 0
    [reply] = search(messages, "welcome").found
    assert (reply.message_id, reply.author, reply.role) == (2, "CatGPT", Role.ASSISTANT)


# --- a real room, on both stores ---


@pytest.fixture
def another_process(request, store, assistant, clock):
    """With Redis, the same room opened by another process (its own store and copy); None in memory."""
    opened: list[Room] = []

    def open_room() -> Room | None:
        if not store.shared:
            return None
        url = f"redis://127.0.0.1:{request.getfixturevalue('shared_redis').server.port}/1"
        other = Room("lobby", fast_settings(), assistant, RedisStore(url), clock=clock)
        opened.append(other)
        return other

    yield open_room
    for room in opened:
        room.close()
    wait_for_workers_to_end(*(room.store for room in opened))
    for room in opened:
        room.store.close()


def test_the_whole_room_is_searched_not_only_its_latest_page_and_never_a_deleted_message(
    room, another_process
):
    ann = room.join("id-ann", "Ann", "tab-ann")
    room.set_reply_policy(ann.id, ReplyPolicy.WHEN_MENTIONED)  # no reply repeats what the early ones say
    early = room.post(ann.id, "The Zürich offsite is on Tuesday")
    taken_back = room.post(ann.id, "zurich: my passport number is 1234")
    room.delete_message(ann.id, taken_back.id)
    for number in range(PAGE_OF_MESSAGES):  # each answered: the early one is two pages back
        room.post(ann.id, f"@CatGPT filler {number}")
        wait_until(lambda: not room.busy, "the reply")

    rooms = [room] + [r for r in [another_process()] if r is not None]
    for copy in rooms:
        wait_until(lambda copy=copy: copy.version == room.version, "the other process's copy")
        view = copy.view()
        assert len(view.messages) - early.id > PAGE_OF_MESSAGES, "beyond the first page"
        results = search(view.messages, "ZURICH tuesday")
        assert [f.message_id for f in results.found] == [early.id]
        assert results.found[0].excerpt == "The Zürich offsite is on Tuesday"
        assert search(view.messages, "passport").total == 0, "a deleted message is never found"
        ids = [f.message_id for f in search(view.messages, "zurich").found]
        assert taken_back.id not in ids
        # The assistant's replies are searched too: the scripted one answers "Answer to ..." each turn.
        replies = search(view.messages, "answer filler").found
        assert replies and all(f.role is Role.ASSISTANT for f in replies)
