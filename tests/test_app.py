"""The chat page as people use it, several browser sessions in one process through AppTest."""

from __future__ import annotations

import threading

import pytest

import shared.hub
from shared.assistant.offline import OfflineAssistant
from shared.errors import AssistantError
from shared.web.conversation import Conversation
from shared.web.window import MARGIN_OF_MESSAGES, PAGE_OF_MESSAGES
from tests.fakes import ScriptedAssistant
from tests.pages import (
    button,
    conversation,
    errors,
    get_room,
    join,
    notices,
    open_page,
    send,
    sidebar_people,
    stream_off,
    wait_until,
)

pytestmark = pytest.mark.usefixtures("fresh_app")


def test_two_people_join_and_see_each_other():
    alice = join("Alice")
    bob = join("Bob")
    alice.run()  # Alice's page follows the room
    assert sidebar_people(alice) == [":material/person: Alice (you)", ":material/person: Bob"]
    assert sidebar_people(bob) == [":material/person: Alice", ":material/person: Bob (you)"]
    assert any("Bob joined." in n for n in notices(alice))
    assert not alice.exception and not bob.exception


def test_message_reaches_the_other_person_and_the_assistant_answers_by_name():
    alice = join("Alice")
    bob = join("Bob")
    send(alice, "Hello **everyone**")
    wait_until(lambda: not get_room().busy)
    bob.run()
    said = conversation(bob)
    assert ("user", "Hello **everyone**") in said
    assert said[-1][0] == "assistant" and said[-1][1].startswith("Hi Alice!")


def test_late_joiner_sees_history():
    alice = join("Alice")
    send(alice, "first")
    wait_until(lambda: not get_room().busy)
    send(alice.run(), "second")
    wait_until(lambda: not get_room().busy)
    carol = join("Carol")
    texts = [text for _, text in conversation(carol)]
    assert texts.index("first") < texts.index("second")
    assert sum(t.startswith("Hi Alice!") for t in texts) >= 1
    assert any("Alice joined." in n for n in notices(carol))


def test_show_earlier_messages_brings_the_rest_of_the_room_and_another_room_opens_on_one_page(monkeypatch):
    monkeypatch.setenv("RATE_LIMIT_MESSAGES", "1000")
    join("Ann", room="long")
    room = get_room("long")
    [ann] = room.view().participants
    for number in range(PAGE_OF_MESSAGES // 2 + 1):  # each is answered: the room passes a page of messages
        room.post(ann.id, f"m{number}")
        wait_until(lambda: not room.busy)
    bob = join("Bob", room="long")  # comes in late: his page opens on the latest page of messages
    earlier = button(bob, "Show earlier messages")
    assert not earlier.disabled and "m0" not in [text for _, text in conversation(bob)]
    earlier.click().run()
    texts = [text for _, text in conversation(bob)]
    assert texts[0] == "m0" and texts[-1].startswith("Hi Ann!"), "every message, the first one first"
    assert any("Ann joined." in n for n in notices(bob))
    assert button(bob, "Show earlier messages").disabled, "nothing earlier is left to show"
    bob.query_params["room"] = "short"
    short = bob.run()  # the same person, in a room of two lines
    assert "Room **short**" in short.caption[0].value
    assert all(b.label != "Show earlier messages" for b in short.button)


def test_a_page_left_open_lets_go_of_its_oldest_messages_but_not_the_one_its_person_replies_to(monkeypatch):
    monkeypatch.setenv("RATE_LIMIT_MESSAGES", "1000")
    monkeypatch.setattr(shared.web.live, "LIVE_RUN_SECONDS", 3.0)
    following = threading.Event()  # Bob's page drew the room and follows it
    draw_all = Conversation.draw_all

    def draw_all_then_say_so(self, view):
        draw_all(self, view)
        following.set()

    monkeypatch.setattr(Conversation, "draw_all", draw_all_then_say_so)
    join("Ann", room="open")
    room = get_room("open")
    [ann] = room.view().participants
    asked = room.post(ann.id, "the question Bob answers")
    wait_until(lambda: not room.busy)
    bob = join("Bob", room="open")
    bob.session_state["replying_to"] = ("open", asked.id, "Ann", asked.text)  # as his Reply click leaves it

    def fill() -> None:
        following.wait(10)
        for number in range(PAGE_OF_MESSAGES * 2):  # each answered: the room grows by four pages
            room.post(ann.id, f"filler {number}")
            wait_until(lambda: not room.busy)

    filler = threading.Thread(target=fill)
    filler.start()
    bob.run()  # his page follows the room while it grows, for LIVE_RUN_SECONDS
    filler.join()
    texts = [text for _, text in conversation(bob)]
    assert len(texts) <= PAGE_OF_MESSAGES + MARGIN_OF_MESSAGES + 1, "a page and its margin, and his reply's"
    assert "the question Bob answers" in texts, "the message he replies to stays"
    assert texts[-1].startswith("Hi Ann!") and f"filler {PAGE_OF_MESSAGES * 2 - 1}" in texts
    assert "filler 0" not in texts
    assert not button(bob, "Show earlier messages").disabled, "what left the page is there on demand"
    rows = bob.session_state["menu_drawings"]  # message id -> its row of actions' key on the page
    assert len(rows) <= PAGE_OF_MESSAGES + MARGIN_OF_MESSAGES + 1, (
        "the rows of messages that left are forgotten"
    )
    assert asked.id in rows


@pytest.mark.promise_nickname_rules
def test_duplicate_nickname_is_refused_whatever_the_case():
    join("Alice")
    bob = join("  aLiCe ")
    assert errors(bob) == ["Someone in the room is already called aLiCe. Please pick another nickname."]
    assert not bob.chat_input  # still outside the room
    assert len(get_room().view().participants) == 1


@pytest.mark.parametrize(
    "nickname, message",
    [
        ("   ", "Please enter a nickname."),
        ("x" * 33, "A nickname can have at most 32 characters; this one has 33."),
        ("Bo\x07b", "A nickname cannot contain control or invisible characters."),
        ("catgpt", "CatGPT is the assistant's name. Please pick another nickname."),
        ("System", "“System” is reserved for the app's own notices. Please pick another nickname."),
    ],
)
@pytest.mark.promise_nickname_rules
def test_invalid_nickname_is_refused_with_its_own_message(nickname, message):
    at = join(nickname)
    assert errors(at) == [message]
    assert not at.chat_input
    assert get_room().view().participants == ()


@pytest.mark.promise_message_limits
def test_empty_message_is_ignored():
    alice = join("Alice")
    before = get_room().version
    send(alice, "   \n  ")
    assert get_room().version == before
    assert not errors(alice)


@pytest.mark.promise_message_limits
def test_overlong_message_is_refused_with_the_limit_and_not_posted(monkeypatch):
    monkeypatch.setenv("MAX_MESSAGE_CHARS", "100")
    alice = join("Alice")
    send(alice, "y" * 101)
    assert errors(alice) == ["Your message has 101 characters; the limit is 100. Nothing was sent."]
    assert "y" * 101 in [c.value for c in alice.code]  # handed back, to copy
    assert all(m.text != "y" * 101 for m in get_room().view().messages)


def test_the_box_stays_open_and_the_page_says_who_is_answered_and_who_waits(gated):
    alice = stream_off(join("Alice"))
    bob = stream_off(join("Bob"))
    send(alice, "hi there")
    wait_until(lambda: get_room().view().reply is not None)
    send(bob, "me next")
    assert not bob.chat_input[0].disabled
    assert any("is replying to Alice… · next: Bob" in c.value for c in bob.caption)
    assert "*CatGPT is typing…*" in [m.value for m in bob.markdown]
    assert any("waiting for the assistant" in c.value for c in bob.caption)
    gated[0].gate.set()
    wait_until(lambda: not get_room().busy)
    bob.run()
    assert not bob.chat_input[0].disabled
    replies = [text.split("\n")[0] for who, text in conversation(bob) if who == "assistant"]
    assert replies == ["Hi Alice! 🐾", "Hi Bob! 🐾"]


@pytest.mark.promise_simultaneous_posts
def test_message_sent_while_busy_is_queued_for_the_next_turn(gated):
    alice = stream_off(join("Alice"))
    bob = stream_off(join("Bob"))  # his box is still enabled: he presses Enter as the reply starts
    send(alice, "one")
    wait_until(lambda: get_room().view().reply is not None)
    send(bob, "two, sent as the box was closing")
    gated[0].gate.set()
    wait_until(lambda: not get_room().busy)
    messages = get_room().view().messages
    assert [m.text for m in messages if m.role.value == "user"] == ["one", "two, sent as the box was closing"]
    replies = [m for m in messages if m.role.value == "assistant"]
    assert [r.reply_to for r in replies] == [("Alice",), ("Bob",)]


class OneWordAtATime(OfflineAssistant):
    """The offline assistant, but each word of a reply waits until the test lets one more through."""

    def __init__(self, settings):
        super().__init__(settings)
        self.next_word = threading.Semaphore(0)

    def reply(self, conversation, turn):
        for piece in super().reply(conversation, turn):
            self.next_word.acquire(timeout=10)
            yield piece

    def let_the_rest_through(self) -> None:
        self.next_word.release(10_000)


@pytest.fixture
def one_word_at_a_time(monkeypatch) -> list[OneWordAtATime]:
    made: list[OneWordAtATime] = []

    def make(settings) -> OneWordAtATime:
        made.append(OneWordAtATime(settings))
        return made[-1]

    monkeypatch.setattr(shared.hub, "make_assistant", make)
    yield made
    for assistant in made:
        assistant.let_the_rest_through()


def test_streamed_reply_reaches_every_participant_word_by_word_with_the_toggle_on(one_word_at_a_time):
    alice = stream_off(join("Alice"))
    bob = join("Bob")
    send(alice, "stream please")
    [assistant] = one_word_at_a_time

    def words_in_the_room() -> int:
        reply = get_room().view().reply
        return len(reply.text.split()) if reply else 0

    shown = []  # what Bob's page shows of the reply after each word the model writes
    for words in range(1, 6):
        assistant.next_word.release()
        wait_until(lambda words=words: words_in_the_room() == words)
        bob.run()  # a page opened now shows the reply as far as it got
        shown.append(conversation(bob)[-1][1])
    assistant.let_the_rest_through()
    wait_until(lambda: not get_room().busy)
    bob.run()
    whole = conversation(bob)[-1][1]

    assert bob.toggle(key="stream_replies").value is True
    assert [len(text.split()) for text in shown] == [1, 2, 3, 4, 5], shown
    assert shown[0] == "Hi" and whole.startswith("Hi Alice!") and "stream please" in whole
    for earlier, later in zip(shown, [*shown[1:], whole], strict=True):
        assert later.startswith(earlier), "the words arrive in order, each added to the ones before"


def test_toggle_off_shows_the_whole_reply_once_finished():
    alice = stream_off(join("Alice"))
    send(alice, "no streaming")
    wait_until(lambda: not get_room().busy)
    alice.run()
    assert alice.toggle(key="stream_replies").value is False
    assert conversation(alice)[-1][1].startswith("Hi Alice!")


@pytest.mark.promise_reloads
def test_reload_is_the_same_person_not_a_leave_and_a_join():
    alice = join("Alice")
    token = alice.session_state["token"]
    reloaded = open_page(token)
    assert reloaded.chat_input, "the reloaded tab is back in the room without asking again"
    assert sidebar_people(reloaded) == [":material/person: Alice (you)"]
    assert sum("Alice joined." in n for n in notices(reloaded)) == 1


def test_visiting_the_about_page_and_coming_back_keeps_you_in_the_room():
    alice = join("Alice")
    alice.switch_page("pages/about.py").run()
    alice.query_params.clear()  # the sidebar navigation drops the address's parameters
    alice.switch_page("pages/chat.py").run()
    assert alice.chat_input, "still in the room"
    assert sidebar_people(alice) == [":material/person: Alice (you)"]
    assert sum("Alice joined." in n for n in notices(alice)) == 1


def test_leaving_removes_the_person_for_everyone():
    alice = join("Alice")
    bob = join("Bob")
    next(b for b in bob.sidebar.button if b.label == "Leave the room").click().run()
    assert bob.text_input[0].label == "Nickname"
    alice.run()
    assert sidebar_people(alice) == [":material/person: Alice (you)"]
    assert any("Bob left." in n for n in notices(alice))


def test_offline_assistant_is_labelled_plainly():
    at = open_page()
    assert any("offline demo assistant" in i.value for i in at.info)
    assert "OPENAI_API_KEY" in at.info[0].value


def test_bad_setting_gives_one_sentence_not_a_traceback(monkeypatch):
    monkeypatch.setenv("WORD_DELAY_MS", "soon")
    at = open_page()
    assert not at.exception
    assert "`WORD_DELAY_MS` must be a whole number from 0 to 2000 (got 'soon')." in at.error[0].value


@pytest.mark.promise_api_key
def test_about_page_shows_settings_but_never_the_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-never-shown")
    monkeypatch.setattr(shared.hub, "make_assistant", OfflineAssistant)
    at = open_page()
    at.switch_page("pages/about.py").run()
    assert not at.exception
    rendered = repr([m.value for m in at.markdown]) + repr(at.table[0].value)
    assert "WORD_DELAY_MS" in rendered and "set (hidden)" in rendered
    assert "sk-secret" not in rendered


def test_a_bad_setting_says_that_fixing_it_takes_a_restart(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://")
    at = open_page()

    assert at.error[0].value.endswith("(got 'http://').")
    [hint] = [c.value for c in at.caption]
    assert "restart the app" in hint and "**Reboot app**" in hint and "reload" not in hint


def test_the_about_page_describes_the_app_and_says_the_offline_assistant_is_a_demo():
    at = open_page()
    at.switch_page("pages/about.py").run()
    text = " ".join(m.value for m in at.markdown)

    assert at.title[0].value == ":material/help: About this app"
    assert "**CatGPT**, the offline demo assistant: no AI model is connected" in text
    assert "AI assistant" not in text.replace("demo assistant", "")
    assert "next refresh" not in text and "opens this page picks" not in text
    assert any("changing one takes a restart" in c.value for c in at.caption)


@pytest.mark.promise_model_failures
def test_a_conversation_that_cannot_open_is_a_failure_and_the_message_goes_again(monkeypatch):
    assistant = ScriptedAssistant()
    # When her message's turn opens the room's conversation (joining opens none).
    assistant.will_fail_to_open(AssistantError("The service is unreachable."))
    monkeypatch.setattr(shared.hub, "make_assistant", lambda settings: assistant)
    alice = join("Alice")
    send(alice, "hello?")
    wait_until(lambda: not get_room().busy)
    alice.run()

    captions = [c.value for c in alice.caption]
    failures = [c for c in captions if c.startswith(":red[:material/error:")]
    assert len(failures) == 1 and "The service is unreachable" in failures[0]
    [bubble] = [c for c in alice.chat_message if c.markdown and c.markdown[-1].value == "hello?"]
    assert [c.value for c in bubble.caption][-1] == (
        ":material/replay: not answered: it goes to the assistant again with the next message"
    )
