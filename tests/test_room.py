"""The room and its reply worker on real threads, answered by a scripted assistant.

Presence is checked with a clock the test moves; everything else waits for behaviour with a deadline.
"""

from __future__ import annotations

import threading

import pytest

from shared.errors import AssistantError, JoinRefused, MessageRefused
from shared.messages import Message, Participant, ReplyPolicy, Role, Status
from shared.room import Room
from tests.fakes import (
    Gate,
    ScriptedAssistant,
    wait_until,
    workers_on,
)


def join(room: Room, nickname: str, tab: str = "tab-1") -> Participant:
    return room.join(f"id-{nickname}", nickname, f"{tab}-{nickname}")


def system_lines(room: Room) -> list[str]:
    return [m.text for m in room.view().messages if m.role is Role.SYSTEM]


def replies(room: Room) -> list[Message]:
    return [m for m in room.view().messages if m.role is Role.ASSISTANT]


def said(room: Room) -> list[Message]:
    return [m for m in room.view().messages if m.role is Role.USER]


def wait_until_answered(room: Room) -> None:
    wait_until(lambda: not room.busy, "the room to stop being busy")


def status_of(room: Room, message: Message) -> Status:
    return room.view().messages[message.id - 1].status


# --- messages and replies ----------------------------------------------------------------------


def test_message_is_answered_and_everyone_sees_both(room, assistant):
    alice = join(room, "Alice")
    join(room, "Bob")

    message = room.post(alice.id, "Hello, cat!")
    assert room.busy
    wait_until_answered(room)

    [reply] = replies(room)
    assert reply.text == "Answer to Hello, cat!"
    assert reply.status is Status.COMPLETE
    assert reply.author == "CatGPT"
    assert reply.reply_to == ("Alice",)
    assert reply.id > message.id
    assert status_of(room, message) is Status.COMPLETE


def test_late_joiner_sees_history(room):
    alice = join(room, "Alice")
    room.post(alice.id, "Anyone here?")
    wait_until_answered(room)

    join(room, "Bob")

    texts = [m.text for m in room.view().messages]
    assert "Anyone here?" in texts
    assert "Answer to Anyone here?" in texts
    assert texts[-1] == "Bob joined."


@pytest.mark.promise_simultaneous_posts
def test_concurrent_posts_are_each_kept_once_in_order_and_all_answered(room, assistant):
    people, per_person = 20, 10
    nicknames = [f"person{n}" for n in range(people)]
    for nickname in nicknames:
        join(room, nickname)
    start = threading.Barrier(people)
    posted: dict[str, list[Message]] = {}

    def send(nickname: str) -> None:
        start.wait()
        posted[nickname] = [room.post(f"id-{nickname}", f"{nickname} #{i}") for i in range(per_person)]

    threads = [threading.Thread(target=send, args=(nickname,)) for nickname in nicknames]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert sorted(posted) == sorted(nicknames), "a sender thread failed"
    wait_until_answered(room)

    messages = room.view().messages
    assert [m.id for m in messages] == list(range(1, len(messages) + 1))
    in_room = said(room)
    assert len(in_room) == people * per_person
    assert len({m.text for m in in_room}) == len(in_room), "a message appears twice"
    for nickname, mine in posted.items():
        expected = [f"{nickname} #{i}" for i in range(per_person)]
        assert [m.text for m in mine] == expected
        assert [m.text for m in in_room if m.author == nickname] == expected
        ids = [m.id for m in mine]
        assert ids == sorted(set(ids)), f"{nickname}'s ids are not unique and increasing"
    answered = [m.id for turn in assistant.turns for m in turn.messages]
    assert answered == [m.id for m in in_room], "each message goes into exactly one turn, in room order"
    assert all(m.status is Status.COMPLETE for m in in_room)
    assert len(replies(room)) == len(assistant.turns)
    assert all(r.status is Status.COMPLETE for r in replies(room))


@pytest.mark.promise_simultaneous_posts
def test_messages_posted_during_a_reply_go_together_into_the_next_turn(room, assistant):
    alice, bob, carol = join(room, "Alice"), join(room, "Bob"), join(room, "Carol")
    gate = Gate()
    assistant.will_reply("Thinking", gate, " done")

    room.post(alice.id, "first")
    gate.wait_reached()
    room.post(bob.id, "second")
    room.post(carol.id, "third")
    assert room.view().replying_to == ("Alice",)
    gate.open()
    wait_until_answered(room)

    assert assistant.texts_of_turns() == [["first"], ["second", "third"]]
    assert [(r.text, r.reply_to) for r in replies(room)] == [
        ("Thinking done", ("Alice",)),
        ("Answer to second + third", ("Bob", "Carol")),
    ]


@pytest.mark.parametrize(
    ("error", "everyone_is_told"),
    [
        (AssistantError("The service is overloaded."), "CatGPT could not reply: The service is overloaded."),
        (RuntimeError("boom"), "CatGPT could not reply because of an unexpected error (RuntimeError)."),
    ],
    ids=["assistant-error", "unexpected-error"],
)
@pytest.mark.promise_model_failures
def test_busy_clears_and_everyone_is_told_when_the_assistant_fails(room, assistant, error, everyone_is_told):
    alice = join(room, "Alice")
    join(room, "Bob")
    assistant.will_reply(error)

    room.post(alice.id, "hello")
    wait_until_answered(room)

    assert system_lines(room)[-1] == everyone_is_told
    assert replies(room) == []
    room.post(alice.id, "still there?")
    wait_until_answered(room)
    assert [r.text for r in replies(room)] == ["Answer to still there?"]


@pytest.mark.promise_model_failures
def test_partial_reply_stays_marked_as_error_when_the_stream_breaks(room, assistant):
    alice = join(room, "Alice")
    assistant.will_reply("The answer", " is", AssistantError("The connection dropped."))

    message = room.post(alice.id, "What is the answer?")
    wait_until_answered(room)

    [reply] = replies(room)
    assert reply.text == "The answer is"
    assert reply.status is Status.ERROR
    assert system_lines(room)[-1] == "CatGPT could not reply: The connection dropped."
    assert status_of(room, message) is Status.COMPLETE, "the assistant saw it; it is not sent again"


def test_reply_finishes_after_its_sender_leaves(room, assistant):
    alice = join(room, "Alice")
    join(room, "Bob")
    gate = Gate()
    assistant.will_reply("Half", gate, " and the rest")

    room.post(alice.id, "Tell me a story")
    gate.wait_reached()
    room.leave(alice.id)
    gate.open()
    wait_until_answered(room)

    [reply] = replies(room)
    assert (reply.text, reply.status, reply.reply_to) == ("Half and the rest", Status.COMPLETE, ("Alice",))
    assert "Alice left." in system_lines(room)


def test_reply_survives_sender_closing_tab(room, assistant, clock):
    alice = join(room, "Alice")
    join(room, "Bob")
    gate = Gate()
    assistant.will_reply("Half", gate, " and the rest")

    room.post(alice.id, "Tell me a story")
    gate.wait_reached()
    room.detach(alice.id, "tab-1-Alice")
    clock.advance(1)
    room.reap()
    assert room.view().participant(alice.id) is None
    gate.open()
    wait_until_answered(room)

    [reply] = replies(room)
    assert (reply.text, reply.status) == ("Half and the rest", Status.COMPLETE)


@pytest.mark.promise_model_failures
def test_undelivered_message_is_sent_again_with_the_next_one(room, assistant):
    alice, bob = join(room, "Alice"), join(room, "Bob")
    assistant.will_reply(AssistantError("The conversation is busy.", delivered=False))

    first = room.post(alice.id, "first")
    wait_until_answered(room)
    assert system_lines(room)[-1] == (
        "CatGPT could not reply: The conversation is busy. It will try again with the next message."
    )
    assert status_of(room, first) is Status.UNANSWERED

    second = room.post(bob.id, "second")
    wait_until_answered(room)

    assert assistant.texts_of_turns() == [["first"], ["first", "second"]]
    assert [(r.text, r.reply_to) for r in replies(room)] == [("Answer to first + second", ("Alice", "Bob"))]
    assert status_of(room, first) is status_of(room, second) is Status.COMPLETE


@pytest.mark.promise_openai_requests
def test_joining_and_leaving_open_no_conversation_and_the_first_question_opens_one(room, assistant):
    alice, bob = join(room, "Alice"), join(room, "Bob")
    room.set_reply_policy(alice.id, ReplyPolicy.WHEN_MENTIONED)
    room.post(bob.id, "just chatting, no need for the cat")
    room.leave(bob.id)
    if not room.store.shared:  # with Redis every process keeps a worker ready to take over the room
        assert workers_on(room.store) == [], (
            "no worker runs, so nothing can open a conversation behind its back"
        )
    assert room.conversation() is None
    assert assistant.opened == {}

    room.post(alice.id, "@CatGPT now you")
    wait_until_answered(room)
    assert list(assistant.opened.values()) == ["lobby"]
    assert assistant.reply_conversations == list(assistant.opened)


@pytest.mark.promise_model_failures
def test_failed_conversation_opening_is_told_and_the_next_message_recovers(room, assistant):
    assistant.will_fail_to_open(AssistantError("The service is unreachable."))
    alice = join(room, "Alice")

    first = room.post(alice.id, "hello?")
    notice = "CatGPT could not reply: The service is unreachable. It will try again with the next message."
    wait_until(lambda: notice in system_lines(room), "the failed opening to be told")
    wait_until_answered(room)
    [line] = [m for m in room.view().messages if m.text == notice]
    assert line.status is Status.ERROR  # shown as the failure it is
    assert status_of(room, first) is Status.UNANSWERED
    assert assistant.turns == []

    room.post(alice.id, "still there?")
    wait_until_answered(room)
    assert [(r.text, r.status) for r in replies(room)] == [
        ("Answer to hello? + still there?", Status.COMPLETE)
    ]
    assert len(assistant.opened) == 1
    assert status_of(room, first) is Status.COMPLETE


# --- the version and waiting for changes -------------------------------------------------------


def test_version_grows_with_every_change(room, assistant):
    versions = [room.version]
    alice = join(room, "Alice")
    versions.append(room.version)
    gate = Gate()
    assistant.will_reply("One", gate, " two")

    room.post(alice.id, "count")
    versions.append(room.version)
    gate.wait_reached()
    versions.append(room.version)  # the first piece of the reply is in
    gate.open()
    wait_until_answered(room)
    versions.append(room.version)
    room.notice("A notice.")
    versions.append(room.version)
    room.leave(alice.id)
    versions.append(room.version)

    assert versions == sorted(set(versions)), versions
    assert room.view().version == versions[-1]


def test_wait_for_change_wakes_when_someone_posts_from_another_thread(room):
    alice = join(room, "Alice")
    since = room.version
    woke: list[int] = []
    watcher = threading.Thread(target=lambda: woke.append(room.wait_for_change(since, timeout=30)))
    watcher.start()

    threading.Thread(target=room.post, args=(alice.id, "ping")).start()
    watcher.join(timeout=5)

    assert not watcher.is_alive(), "the watcher slept through the post"
    assert woke[0] > since


def test_wait_for_change_returns_the_same_version_when_nothing_changes(room):
    since = room.version
    assert room.wait_for_change(since, timeout=0.01) == since


def test_wait_for_change_can_sleep_through_the_reply_growing_but_not_through_news(room, assistant):
    alice = join(room, "Alice")
    gate = Gate()
    assistant.will_reply("One", gate, " two", " three")
    room.post(alice.id, "count")
    gate.wait_reached()
    since = room.version
    gate.open()
    wait_until(lambda: replies(room)[-1].text == "One two three", "the reply to grow")
    # The reply grew and then finished: its end is news, its growth alone would not have been.
    assert room.wait_for_change(since, timeout=5, reply_growth=False) > since

    grown = room.version
    assert room.wait_for_change(grown, timeout=0.01, reply_growth=False) == grown
    room.notice("News.")
    assert room.wait_for_change(grown, timeout=0.01, reply_growth=False) > grown


@pytest.mark.promise_simultaneous_posts
def test_a_page_that_applies_only_the_changes_sees_the_room_exactly(room, assistant):
    """20 people post at once while pages follow with `changes_since`: each page ends with the room."""
    people, per_person, pages = 20, 5, 3
    nicknames = [f"person{n}" for n in range(people)]
    for nickname in nicknames:
        join(room, nickname)
    done = threading.Event()
    seen: list[dict[int, Message]] = [{} for _ in range(pages)]

    def follow(page: dict[int, Message], reply_growth: bool) -> None:
        version = 0
        while True:
            finished = done.is_set()
            room.wait_for_change(version, 0.01, reply_growth=reply_growth)
            changes = room.changes_since(version)
            version = changes.version
            page.update((m.id, m) for m in changes.messages)
            if finished:
                return

    followers = [
        threading.Thread(target=follow, args=(seen[n], n % 2 == 0), name=f"page-{n}") for n in range(pages)
    ]
    for follower in followers:
        follower.start()
    start = threading.Barrier(people)

    def send(nickname: str) -> None:
        start.wait()
        for i in range(per_person):
            room.post(f"id-{nickname}", f"{nickname} #{i}")

    senders = [threading.Thread(target=send, args=(nickname,)) for nickname in nicknames]
    for thread in senders:
        thread.start()
    for thread in senders:
        thread.join(timeout=10)
    wait_until_answered(room)
    done.set()
    for follower in followers:
        follower.join(timeout=10)

    everything = room.view().messages
    assert len(said(room)) == people * per_person
    for page in seen:
        assert [page[i] for i in sorted(page)] == list(everything)


def test_changes_since_names_people_only_when_someone_joined_or_left(room):
    join(room, "Alice")
    since = room.version
    room.notice("Nothing about people.")
    assert room.changes_since(since).participants is None
    join(room, "Bob")
    assert [p.nickname for p in room.changes_since(since).participants] == ["Alice", "Bob"]
    after_join = room.version
    room.leave("id-Bob")
    assert [p.nickname for p in room.changes_since(after_join).participants] == ["Alice"]


# --- Stop and leaving ----------------------------------------------------------------------------


@pytest.mark.promise_stop_and_leave
def test_stop_ends_the_turn_at_once_even_while_the_assistant_is_stuck(room, assistant):
    alice, bob = join(room, "Alice"), join(room, "Bob")
    gate = Gate()
    assistant.will_reply("Half a", gate, " sentence nobody will see")
    room.post(alice.id, "tell me a story")
    gate.wait_reached()  # the assistant is stuck: no word comes

    room.stop_reply(bob.id)

    assert not room.busy
    assert assistant.turns[0].stop.is_set(), "the assistant is told to give up"
    stopped = replies(room)[-1]
    assert (stopped.text, stopped.status, stopped.stopped_by) == ("Half a", Status.STOPPED, "Bob")
    assert system_lines(room)[-1] == "Bob stopped the reply."
    room.post(bob.id, "next one")  # waits behind the stuck worker, and is answered once it lets go
    assert room.view().status.waiting == ("Bob",)
    gate.open()
    wait_until_answered(room)
    assert [r.text for r in replies(room)] == ["Half a", "Answer to next one"]


@pytest.mark.promise_stop_and_leave
def test_a_stop_pressed_for_one_turn_does_not_stop_the_next(room, assistant):
    alice, bob = join(room, "Alice"), join(room, "Bob")
    gate = Gate()
    assistant.will_reply("First", gate, " done")
    room.post(alice.id, "one")
    gate.wait_reached()
    first_turn = room.view().status.turn
    gate.open()
    wait_until_answered(room)
    second = Gate()
    assistant.will_reply("Second", second, " done")
    room.post(bob.id, "two")
    second.wait_reached()

    room.stop_reply(alice.id, first_turn)  # Alice's click on the first turn's Stop arrives late

    assert room.busy
    second.open()
    wait_until_answered(room)
    assert [r.status for r in replies(room)] == [Status.COMPLETE, Status.COMPLETE]


@pytest.mark.promise_stop_and_leave
def test_leave_is_final_for_every_tab_until_the_person_joins_again(room):
    alice = room.join("id-Alice", "Alice", "tab-1")
    room.attach(alice.id, "tab-2")

    room.leave(alice.id)

    assert room.attach(alice.id, "tab-2") is None
    assert room.left_on_purpose(alice.id)
    room.join(alice.id, "Alice", "tab-2")
    assert not room.left_on_purpose(alice.id)


def test_the_rooms_memory_of_who_left_on_purpose_does_not_grow_with_every_leave(room, clock):
    for number in range(5):
        person = room.join(f"id-{number}", f"Person{number}", f"tab-{number}")
        room.leave(person.id)
        clock.advance(room.settings.heartbeat_timeout_seconds)
    # Each mark lasts a few heartbeat timeouts: long enough for the person's other tabs to notice.
    assert [room.left_on_purpose(f"id-{n}") for n in range(5)] == [False, False, True, True, True]


# --- joining -----------------------------------------------------------------------------------


@pytest.mark.parametrize("look_alike", ["alice", "ALICE", " Alice ", "Ａlice", "ａｌｉｃｅ"])
@pytest.mark.promise_nickname_rules
def test_nickname_already_in_the_room_is_refused_in_any_case_or_look_alike(room, look_alike):
    join(room, "Alice")

    with pytest.raises(JoinRefused, match="Someone in the room is already called .+ Please pick another"):
        room.join("id-other", look_alike, "tab-other")

    assert [p.nickname for p in room.view().participants] == ["Alice"]


@pytest.mark.promise_nickname_rules
def test_nickname_is_free_again_once_its_owner_left(room):
    alice = join(room, "Alice")
    room.leave(alice.id)

    newcomer = room.join("id-new", "alice", "tab-new")

    assert [p.nickname for p in room.view().participants] == [newcomer.nickname] == ["alice"]


@pytest.mark.promise_flood_and_full_room
def test_full_room_refuses_with_a_clear_message(make_room):
    room = make_room(max_participants=2)
    join(room, "Alice")
    join(room, "Bob")

    with pytest.raises(JoinRefused) as refused:
        join(room, "Carol")

    assert str(refused.value) == "The room is full (2 people). Please try again later."
    assert len(room.view().participants) == 2


@pytest.mark.promise_nickname_rules
def test_nickname_breaking_a_rule_is_refused_with_its_message(room):
    with pytest.raises(JoinRefused, match="CatGPT is the assistant's name"):
        room.join("id-x", "catgpt", "tab-x")
    assert room.view().participants == ()


@pytest.mark.promise_reloads
def test_reload_is_the_same_person_not_a_second_one(room):
    alice = room.join("id-alice", "Alice", "tab-before-reload")

    again = room.join("id-alice", "Alice", "tab-after-reload")

    assert again == alice
    assert len(room.view().participants) == 1
    assert system_lines(room).count("Alice joined.") == 1


# --- presence ----------------------------------------------------------------------------------


@pytest.mark.promise_reloads
def test_tab_back_within_grace_keeps_the_person(room, clock):
    alice = join(room, "Alice")
    lines_before = system_lines(room)

    room.detach(alice.id, "tab-1-Alice")
    clock.advance(0.02)
    assert room.attach(alice.id, "tab-2-Alice") == alice
    clock.advance(1)
    room.reap()

    assert room.view().participant(alice.id) == alice
    assert system_lines(room) == lines_before, "no 'left' or 'joined' line for a reload"


@pytest.mark.promise_reloads
def test_person_whose_tab_closed_leaves_after_grace(room, clock):
    alice = join(room, "Alice")

    room.detach(alice.id, "tab-1-Alice")
    clock.advance(0.01)
    room.reap()
    assert room.view().participant(alice.id) is not None, "still within the grace period"
    clock.advance(0.05)
    room.reap()

    assert room.view().participant(alice.id) is None
    assert system_lines(room)[-1] == "Alice left."
    assert room.attach(alice.id, "tab-1-Alice") is None


@pytest.mark.promise_reloads
def test_closing_one_of_two_tabs_does_not_make_a_person_leave(room, clock):
    alice = room.join("id-alice", "Alice", "tab-1")
    room.join("id-alice", "Alice", "tab-2")

    room.detach(alice.id, "tab-1")
    clock.advance(1)
    room.reap()

    assert room.view().participant(alice.id) == alice


@pytest.mark.promise_reloads
def test_silent_participant_is_removed_after_heartbeat_timeout(room, clock):
    alice, bob = join(room, "Alice"), join(room, "Bob")

    clock.advance(3)
    room.attach(bob.id, "tab-1-Bob")  # Bob's page keeps refreshing; Alice's went silent
    clock.advance(2)
    room.reap()

    assert [p.nickname for p in room.view().participants] == ["Bob"]
    assert system_lines(room)[-2:] == ["Alice left.", "Bob is now the host."]  # Alice opened the room
    assert room.view().participant(alice.id) is None


# --- posting -----------------------------------------------------------------------------------


def test_post_by_someone_not_in_the_room_is_refused(room):
    alice = join(room, "Alice")
    room.leave(alice.id)
    before = room.view()

    for stranger in (alice.id, "id-never-joined"):
        with pytest.raises(MessageRefused, match="You are no longer in the room"):
            room.post(stranger, "hello")

    assert room.view() == before


@pytest.mark.parametrize("empty", ["", "   ", "\n\t \r\n", "\x00\x01\x7f"])
@pytest.mark.promise_message_limits
def test_empty_message_is_refused(room, empty):
    alice = join(room, "Alice")
    before = room.view()

    with pytest.raises(MessageRefused, match="Your message is empty"):
        room.post(alice.id, empty)

    assert room.view() == before


@pytest.mark.promise_message_limits
def test_over_long_message_is_refused_naming_the_limit(make_room):
    room = make_room(max_message_chars=10)
    alice = join(room, "Alice")
    before = room.view()

    with pytest.raises(MessageRefused) as refused:
        room.post(alice.id, "x" * 11)

    assert str(refused.value) == "Your message has 11 characters; the limit is 10. Nothing was sent."
    assert room.view() == before
    assert room.post(alice.id, "x" * 10).text == "x" * 10


@pytest.mark.promise_control_characters
def test_control_characters_are_stripped_but_newlines_and_tabs_kept(room):
    alice = join(room, "Alice")

    message = room.post(alice.id, "line\x00 one\x1b[31m\r\nline\ttwo\x7f\x85\n")

    assert message.text == "line one[31m\nline\ttwo"
    assert said(room)[-1].text == message.text


# --- the reply worker itself -------------------------------------------------------------------


def test_closing_the_room_mid_reply_stops_its_worker_and_closes_the_conversation(room, assistant):
    alice = join(room, "Alice")
    gate = Gate()
    assistant.will_reply("Once upon", gate, " a time", " there was a cat")
    room.post(alice.id, "Tell me a story")
    gate.wait_reached()

    room.close()
    gate.open()

    wait_until(lambda: not assistant.reply_threads[0].is_alive(), "the worker to stop")
    assert assistant.closed == list(assistant.opened)
    assert not room.busy
    assert replies(room)[0].text == "Once upon", "the worker stops reading the reply"


def dies_mid_reply(room: Room, assistant: ScriptedAssistant, alice: Participant) -> None:
    """Kill the worker with something that is not an Exception, as `sys.exit()` in a library would."""
    assistant.will_reply("Half a", SystemExit())
    room.post(alice.id, "first")
    wait_until(
        lambda: assistant.reply_threads and not assistant.reply_threads[0].is_alive(), "the worker to die"
    )


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
@pytest.mark.promise_worker_and_shutdown
def test_room_does_not_stay_busy_when_its_worker_dies(room, assistant):
    # The page disables the message box while the room is busy, so a room left busy would never get
    # the next post that replaces the worker: it would be stuck for good.
    alice = join(room, "Alice")
    dies_mid_reply(room, assistant, alice)

    wait_until(lambda: not room.busy, "the room to stop being busy after its worker died", timeout=1)
    [reply] = replies(room)
    assert (reply.text, reply.status) == ("Half a", Status.ERROR)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
@pytest.mark.promise_worker_and_shutdown
def test_dead_worker_is_replaced_on_the_next_post(room, assistant):
    alice = join(room, "Alice")
    dies_mid_reply(room, assistant, alice)

    room.post(alice.id, "second")
    assert "The assistant's worker stopped unexpectedly and was restarted." in system_lines(room)
    wait_until_answered(room)

    assert assistant.reply_threads[1] is not assistant.reply_threads[0]
    assert assistant.texts_of_turns()[-1] == ["second"]
    assert [r.text for r in replies(room)] == ["Half a", "Answer to second"], (
        "the new reply is its own message"
    )
    assert replies(room)[-1].status is Status.COMPLETE
