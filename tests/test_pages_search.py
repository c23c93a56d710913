"""Search on the chat page, through AppTest: the box in the sidebar, the results with author and time, and
choosing one brings an early message into the conversation with its anchor."""

from __future__ import annotations

import pytest

from shared.messages import ReplyPolicy
from shared.search import MAX_QUERY_CHARS
from shared.web.window import PAGE_OF_MESSAGES
from tests.pages import conversation, get_room, join, unescape, wait_until

pytestmark = [pytest.mark.usefixtures("fresh_app"), pytest.mark.promise_search]

EARLY = "The Zürich offsite is on Tuesday"


def search_for(at, words: str):
    next(t for t in at.sidebar.text_input if t.label == "Search this room").input(words)
    next(b for b in at.sidebar.button if b.label == "Search").click()
    return at.run()


def results(at) -> list:
    return [b for b in at.sidebar.button if b.key and b.key.startswith("found-")]


def anchors(at) -> list[str]:
    return [h.proto.body for h in at.get("html") if 'class="m-anchor"' in h.proto.body]


def test_a_search_finds_an_early_message_and_choosing_it_shows_it_in_the_conversation(monkeypatch):
    monkeypatch.setenv("RATE_LIMIT_MESSAGES", "1000")
    join("Ann", room="long")
    room = get_room("long")
    [ann] = room.view().participants
    early = room.post(ann.id, EARLY)
    wait_until(lambda: not room.busy)
    for number in range(PAGE_OF_MESSAGES):  # each answered: the early message is two pages back
        room.post(ann.id, f"filler {number}")
        wait_until(lambda: not room.busy)
    bob = join("Bob", room="long")
    assert EARLY not in [text for _, text in conversation(bob)], "not on the first page"

    bob = search_for(bob, "zurich TUESDAY")
    # Ann's message, and the offline assistant's reply, which quotes her: newest first.
    reply, result = results(bob)
    assert unescape(reply.label).startswith("**CatGPT** · ") and "Zürich" in unescape(reply.label)
    label = unescape(result.label)
    assert label.startswith("**Ann** · ") and label.endswith(EARLY), "author, time, the message's words"
    assert any("2 messages found" in c.value for c in bob.sidebar.caption)
    assert not anchors(bob), "nothing chosen yet"

    result.click()
    bob = bob.run()
    texts = [text for _, text in conversation(bob)]
    assert EARLY in texts, "the chosen message is on the page"
    assert texts[-1].startswith("Hi Ann!"), "and everything after it, to the latest"
    assert anchors(bob) == [f'<div id="m-{early.id}" class="m-anchor"></div>'], "with its anchor"
    scrolls = [h for h in bob.sidebar.get("html") if f'data-scroll-to="m-{early.id}"' in h.proto.body]
    assert len(scrolls) == 1 and scrolls[0].proto.unsafe_allow_javascript, "the page scrolls to it"

    bob = bob.run()  # his next run keeps the message on the page, and scrolls nowhere
    assert EARLY in [text for _, text in conversation(bob)]
    assert not [h for h in bob.sidebar.get("html") if "scrollIntoView" in h.proto.body]
    assert not bob.exception


def test_a_deleted_message_is_never_found_and_a_long_search_says_why_it_was_not_made():
    ann = join("Ann")
    room = get_room()
    [me] = room.view().participants
    room.set_reply_policy(me.id, ReplyPolicy.WHEN_MENTIONED)  # no reply that quotes it
    message = room.post(me.id, "my secret plan")
    ann = search_for(ann.run(), "secret plan")
    assert len(results(ann)) == 1
    room.delete_message(me.id, message.id)
    ann = ann.run()
    assert not results(ann), "a result deleted since is no longer offered"
    ann = search_for(ann, "secret")
    assert not results(ann) and any("No message holds" in c.value for c in ann.sidebar.caption)

    too_long = "word " * MAX_QUERY_CHARS
    ann = search_for(ann, too_long)
    assert any(f"at most {MAX_QUERY_CHARS} characters" in w.value for w in ann.sidebar.warning)
    box = next(t for t in ann.sidebar.text_input if t.label == "Search this room")
    assert box.value == too_long, "what was typed stays in the box"
    assert not ann.exception
