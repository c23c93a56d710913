"""The offline demo assistant: deterministic replies that greet, tell the time and say who is here."""

from __future__ import annotations

import importlib
import re
from datetime import UTC, datetime

import pytest

from shared.assistant import Assistant, Turn, make_assistant
from shared.assistant.offline import OFFLINE_NOTICE, OfflineAssistant
from shared.messages import Message, Role, Status, escape_markdown
from shared.room import Room
from tests.fakes import fast_settings, wait_for_workers_to_end, wait_until

TUESDAY_AFTERNOON = datetime(2024, 3, 5, 14, 7, 30, tzinfo=UTC)


def said(message_id: int, author: str, text: str) -> Message:
    return Message(
        message_id, Role.USER, text, TUESDAY_AFTERNOON, author=author, participant_id=f"id-{author}"
    )


def reply(message_id: int, text: str) -> Message:
    return Message(message_id, Role.ASSISTANT, text, TUESDAY_AFTERNOON, author="CatGPT", reply_to=("Alice",))


def turn_of(*messages: Message, history: tuple[Message, ...] = (), present=("Alice", "Bob", "Carol")) -> Turn:
    return Turn(room="lobby", messages=messages, history=history, present=present, now=TUESDAY_AFTERNOON)


@pytest.fixture
def assistant() -> OfflineAssistant:
    return OfflineAssistant(fast_settings())


def test_no_key_means_the_offline_assistant():
    assistant = make_assistant(fast_settings())

    assert isinstance(assistant, OfflineAssistant)
    assert assistant.name == "CatGPT"
    assert assistant.label == "Offline demo assistant"


def test_same_turn_gets_the_same_reply(assistant):
    turn = turn_of(said(3, "Alice", "Hello!"), said(4, "Bob", "What time is it?"))

    first = "".join(assistant.reply("offline-lobby-1", turn))

    assert "".join(assistant.reply("offline-lobby-1", turn)) == first
    assert "".join(OfflineAssistant(fast_settings()).reply("another", turn)) == first


def test_every_sender_is_addressed_by_nickname(assistant):
    text = assistant.compose(
        turn_of(said(3, "Alice", "Hi"), said(4, "Bob", "Hey"), said(5, "Alice", "Again"))
    )

    assert text.startswith("Hi Alice and Bob!")
    assert "Alice, you said `Hi`." in text
    assert "Bob, you said `Hey`." in text
    assert "Alice, you said `Again`." in text


@pytest.mark.parametrize("question", ["What's the date today?", "what TIME is it", "Which day is it?"])
def test_knows_the_date_and_time_of_the_turn(assistant, question):
    text = assistant.compose(turn_of(said(3, "Alice", question)))

    assert "It is Tuesday, 5 March 2024, 14:07 UTC." in text


@pytest.mark.parametrize("question", ["Who is here?", "How many people are online?"])
def test_knows_who_is_present(assistant, question):
    text = assistant.compose(turn_of(said(3, "Alice", question)))

    assert "In the room right now: Alice, Bob and Carol." in text


def test_says_nothing_about_time_or_people_unless_asked(assistant):
    text = assistant.compose(turn_of(said(3, "Alice", "I like cats")))

    assert "It is" not in text
    assert "In the room right now" not in text


def test_offline_notice_only_until_it_has_replied_once(assistant):
    hello = said(3, "Alice", "Hello")
    first = assistant.compose(turn_of(hello))
    later = assistant.compose(turn_of(said(5, "Alice", "Me again"), history=(hello, reply(4, first))))

    assert OFFLINE_NOTICE in first
    assert OFFLINE_NOTICE not in later


@pytest.mark.promise_markup
def test_someone_elses_words_cannot_restyle_the_reply(assistant):
    text = assistant.compose(turn_of(said(3, "Alice", "`code` and **bold**")))

    assert "Alice, you said `'code' and **bold**`." in text


# Nicknames the rules allow that Markdown would turn into a heading, a list, a quote, emphasis, code,
# HTML or math if they went into the reply as they are.
MARKUP_NICKNAMES = (
    "# Huge",
    "- Item",
    "1. First",
    "> Quote",
    "**Bold**",
    "_Em_",
    "`Code`",
    "<b>Bob</b>",
    "$x$",
)


def assert_every_nickname_is_escaped(text: str) -> None:
    rest = text
    for nickname in MARKUP_NICKNAMES:
        assert escape_markdown(nickname) in text
        rest = rest.replace(escape_markdown(nickname), "")
    assert [n for n in MARKUP_NICKNAMES if n in rest] == [], "went into the Markdown as they are"
    # No line of the reply starts a heading, a list, a quote or a numbered list.
    assert not [line for line in text.splitlines() if re.match(r"\s*(#|>|[-*+]\s|\d+\.\s)", line)], text


@pytest.mark.promise_markup
def test_nicknames_go_into_the_reply_as_text_never_as_markdown(assistant):
    earlier = said(2, MARKUP_NICKNAMES[-1], "before you spoke")
    messages = [said(3 + n, nickname, "who is here?") for n, nickname in enumerate(MARKUP_NICKNAMES[:-1])]

    text = assistant.compose(
        Turn(
            room="lobby",
            messages=tuple(messages),
            history=(),
            present=MARKUP_NICKNAMES,
            now=TUESDAY_AFTERNOON,
            context=(earlier,),
        )
    )

    assert f"{escape_markdown('# Huge')}, you said `who is here?`." in text.splitlines()
    assert_every_nickname_is_escaped(text)


@pytest.mark.promise_markup
def test_a_catch_up_shows_nicknames_as_text_never_as_markdown(assistant):
    missed = [said(3 + n, nickname, "hello") for n, nickname in enumerate(MARKUP_NICKNAMES)]

    summary = assistant.summarize(missed[:-1], for_nickname=MARKUP_NICKNAMES[-1])
    assert "- " + escape_markdown(MARKUP_NICKNAMES[-2]) + ": `hello`" in summary.splitlines()
    assert_every_nickname_is_escaped(summary.replace("\n- ", "\n"))  # its own list of the last lines
    assert assistant.summarize([], for_nickname="# Huge") == "Nothing was said while you were away, \\# Huge."


def test_long_message_is_quoted_shortened(assistant):
    words = " ".join(f"w{i}" for i in range(30))

    text = assistant.compose(turn_of(said(3, "Alice", words)))

    assert "w23 …`" in text
    assert "w24" not in text


@pytest.mark.parametrize(
    "message",
    ["Hello", "  several   spaces\n\nand\tnew lines  ", "who is here and what time is it?", "🐱 " * 40],
)
def test_streamed_pieces_join_exactly_to_the_composed_text(assistant, message):
    turn = turn_of(said(3, "Alice", message), said(4, "Bob", "ok"))

    pieces = list(assistant.reply("offline-lobby-1", turn))

    assert len(pieces) > 1
    assert all(pieces)
    assert "".join(pieces) == assistant.compose(turn)


def test_each_conversation_gets_its_own_handle(assistant):
    first, second = assistant.open_conversation("lobby"), assistant.open_conversation("lobby")

    assert first != second
    assistant.close_conversation(first)
    assistant.close_conversation(first)  # closing twice is harmless


def test_offline_assistant_answers_in_a_room():
    room = Room("lobby", fast_settings(), OfflineAssistant(fast_settings()), now=lambda: TUESDAY_AFTERNOON)
    try:
        alice = room.join("id-alice", "Alice", "tab-alice")
        room.post(alice.id, "Hello! What time is it?")
        wait_until(lambda: not room.busy, "the first reply")
        room.post(alice.id, "And who is here?")
        wait_until(lambda: not room.busy, "the second reply")
    finally:
        room.close()
    wait_for_workers_to_end(room.store)

    first, second = [m for m in room.view().messages if m.role is Role.ASSISTANT]
    assert first.status is second.status is Status.COMPLETE
    assert "It is Tuesday, 5 March 2024, 14:07 UTC." in first.text
    assert OFFLINE_NOTICE in first.text
    assert "In the room right now: Alice." in second.text
    assert OFFLINE_NOTICE not in second.text


@pytest.mark.parametrize(
    "implementation",
    [
        "shared.assistant.offline.OfflineAssistant",
        "shared.assistant.openai.OpenAIAssistant",
        "tests.fakes.ScriptedAssistant",
        "tests.pages.GatedAssistant",
    ],
)
def test_every_assistant_implements_the_whole_seam(implementation):
    # Callers use only the seam (no getattr for extras), so every assistant, fakes included, has all of it.
    module, name = implementation.rsplit(".", 1)
    cls = getattr(importlib.import_module(module), name)
    seam = [n for n, v in vars(Assistant).items() if callable(v) and not n.startswith("_")]

    assert {"open_conversation", "reply", "close_conversation", "summarize"} <= set(seam)
    assert [n for n in seam if not callable(getattr(cls, n, None))] == []
