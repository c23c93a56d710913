"""The room's rules alone: each is a plain function over one change to a room's state, run here over a
state the test holds, with no room, store, worker or clock behind it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.attachments import MB
from shared.errors import HostOnly, JoinRefused, MessageRefused, RoomClosed
from shared.messages import Message, ReplyPolicy, Role, Status, Turn
from shared.room import hosting, lifetime, presence, talk, turns
from shared.store import RoomChange, RoomState, Seen

NOW = datetime(2026, 12, 3, 21, 0, tzinfo=UTC)
FENCE = 7
RATE = (1_000, 10.0)  # messages, seconds: no flood limit unless a test sets one


class _Change(RoomChange):
    def __init__(self, room: HeldRoom):
        super().__init__(room.state)
        self._room = room

    def _read(self, ids: list[int]) -> list[Message]:
        return [self._room.messages[i] for i in ids]


class HeldRoom:
    """A room's state and messages as a test holds them; `run` makes one change over them, committed
    unless the rule raised or said it found nothing to change."""

    def __init__(self) -> None:
        self.state = RoomState.fresh(NOW)
        self.messages: dict[int, Message] = {}
        self.last: _Change | None = None

    def run(self, rule: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        change = self.last = _Change(self)
        result = rule(change, *args, **kwargs)
        if not change.skip:
            change.stamp()
            self.messages.update(change.written)
        return result

    def lines(self, role: Role = Role.SYSTEM) -> list[str]:
        return [m.text for m in self.messages.values() if m.role is role]

    def join(self, *nicknames: str) -> None:
        for nickname in nicknames:
            self.run(presence.join, f"id-{nickname.lower()}", nickname, 10, NOW)

    def post(self, nickname: str, text: str, *, clock: float = 0.0, rate=RATE) -> Message:
        who = f"id-{nickname.lower()}"
        return self.run(
            talk.post,
            who,
            text,
            [],
            files_limit=MB,
            assistant_name="Assistant",
            rate=rate,
            clock=clock,
            now=NOW,
        )

    def start_turn(self, fence: int | None = FENCE) -> Turn | None:
        return self.run(turns.start_turn, "lobby", fence, NOW, lambda attachment_id: None)


@pytest.fixture
def room() -> HeldRoom:
    held = HeldRoom()
    held.state.fence = FENCE  # a worker holding FENCE writes the room's turns
    return held


def replying(room: HeldRoom, *said: str) -> Turn:
    """Alice said `said`; a turn answers it, and its reply began with "Once upon"."""
    room.join("Alice")
    for text in said:
        room.post("Alice", text)
    turn = room.start_turn()
    assert turn is not None
    writing, reply_id = room.run(turns.begin_reply, turn, FENCE, "Once upon", "Assistant", NOW)
    assert writing and reply_id == room.state.reply_id
    assert room.messages[reply_id].text == "Once upon"
    return turn


# --- presence -------------------------------------------------------------------------------------


def test_the_first_to_join_is_told_to_everyone_and_hosts(room):
    room.join("Alice", "Bob")
    assert room.lines() == ["Alice joined.", "Bob joined."]
    assert room.state.host == "id-alice"
    assert room.state.empty_since is None


@pytest.mark.promise_host
def test_in_a_room_that_belongs_to_nobody_nobody_hosts_removes_or_locks():
    room = HeldRoom()
    room.state.hosted = False  # the default room, unless DEFAULT_ROOM_HOST is on
    room.join("Alice", "Bob")
    assert room.state.host is None
    for rule, args in (
        (hosting.set_locked, ("id-alice", True, NOW)),
        (hosting.remove, ("id-alice", "id-bob", NOW)),
    ):
        with pytest.raises(HostOnly):
            room.run(rule, *args)
    room.run(presence.leave, "id-alice", 5.0, 100.0, NOW)
    assert room.state.host is None and room.lines()[-1] == "Alice left."
    assert not room.state.locked and list(room.state.participants) == ["id-bob"]


@pytest.mark.promise_host
@pytest.mark.promise_private_rooms
def test_a_removal_gives_a_private_room_the_new_invite_and_a_public_one_none():
    room = HeldRoom()
    room.state.invite_secret = "old-secret"
    room.join("Alice", "Bob", "Carol")
    room.run(hosting.remove, "id-alice", "id-bob", NOW, "new-secret")
    assert room.state.invite_secret == "new-secret" and room.state.removed == ["id-bob"]
    room.state.invite_secret = None
    room.run(hosting.remove, "id-alice", "id-carol", NOW, "another")
    assert room.state.invite_secret is None


def test_join_refuses_a_nickname_that_only_looks_different_from_one_taken():
    room = HeldRoom()
    room.join("Alice")
    for look_alike in ("alice", "ALICE", "Аlice"):  # the last one starts with a Cyrillic А
        with pytest.raises(JoinRefused, match="already called"):
            room.run(presence.join, "id-other", look_alike, 10, NOW)
    assert list(room.state.participants) == ["id-alice"]


def test_join_of_someone_already_here_changes_nothing():
    room = HeldRoom()
    room.join("Alice")
    version = room.state.version
    room.run(presence.join, "id-alice", "Alice", 10, NOW)
    assert room.last.skip and room.state.version == version


def test_join_refuses_a_full_room_and_a_closed_one():
    room = HeldRoom()
    room.join("Alice")
    with pytest.raises(JoinRefused, match="full"):
        room.run(presence.join, "id-bob", "Bob", 1, NOW)
    room.state.closed = True
    with pytest.raises(RoomClosed):
        room.run(presence.join, "id-bob", "Bob", 10, NOW)


def test_leaving_on_purpose_is_remembered_and_the_host_passes_on():
    room = HeldRoom()
    room.join("Alice", "Bob")
    room.run(presence.leave, "id-alice", 5.0, 100.0, NOW)
    assert "id-alice" not in room.state.participants
    assert room.state.left_on_purpose == {"id-alice": 100.0}
    assert room.state.host == "id-bob"
    assert room.lines()[-2:] == ["Alice left.", "Bob is now the host."]


def test_the_last_to_leave_leaves_the_room_empty_since_then():
    room = HeldRoom()
    room.join("Alice")
    room.run(presence.reap, {"id-alice", "id-nobody"}, 42.0, NOW)
    assert room.state.participants == {} and room.state.empty_since == 42.0
    room.run(presence.reap, {"id-alice"}, 43.0, NOW)
    assert room.last.skip, "a second run finds them gone already"


def test_who_went_away_by_closed_tabs_and_by_silence():
    seen = {
        ("id-alice", "tab-1"): Seen(100.0, gone=True),  # closed her only tab past the grace period
        ("id-bob", "tab-1"): Seen(100.0, gone=True),  # closed one tab, another still beats
        ("id-bob", "tab-2"): Seen(104.0),
        ("id-carol", "tab-1"): Seen(90.0),  # silent for the whole heartbeat timeout
        ("id-dave", "tab-1"): Seen(80.0),  # never joined, and long silent
    }
    leaving, strangers = presence.who_went_away(
        seen, {"id-alice", "id-bob", "id-carol"}, clock=105.0, timeout=15.0, grace=2.0
    )
    assert leaving == {"id-alice", "id-carol"}
    assert strangers == {"id-dave"}


# --- talk -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "text", "goes_to"),
    [
        (ReplyPolicy.EVERY_MESSAGE, "Hello", "queue"),
        (ReplyPolicy.WHEN_MENTIONED, "Hello", "context"),
        (ReplyPolicy.WHEN_MENTIONED, "Hello @assistant", "queue"),
        (ReplyPolicy.WHEN_HELPFUL, "Hello", "undecided"),
    ],
)
def test_a_post_is_queued_heard_or_decided_about_by_the_reply_policy(room, policy, text, goes_to):
    room.join("Alice")
    room.state.policy = policy
    message = room.post("Alice", text)
    lists = {name: getattr(room.state, name) for name in ("queue", "context", "undecided")}
    assert lists == {name: [message.id] if name == goes_to else [] for name in lists}
    assert message.status is (Status.QUEUED if goes_to == "queue" else Status.COMPLETE)


def test_a_mention_takes_what_was_awaiting_a_decision_along_as_context(room):
    room.join("Alice")
    room.state.policy = ReplyPolicy.WHEN_HELPFUL
    first = room.post("Alice", "Hmm")
    asked = room.post("Alice", "@Assistant what do you think?")
    assert (room.state.undecided, room.state.context, room.state.queue) == ([], [first.id], [asked.id])


def test_posting_is_refused_to_someone_not_in_the_room(room):
    with pytest.raises(MessageRefused, match="no longer in the room"):
        room.post("Nobody", "Hello")


def test_the_rate_limit_refuses_the_message_past_the_limit_until_the_window_moves_on(room):
    room.join("Alice")
    room.post("Alice", "one", clock=100.0, rate=(2, 10.0))
    room.post("Alice", "two", clock=101.0, rate=(2, 10.0))
    with pytest.raises(MessageRefused, match="Try again in 3 seconds"):
        room.post("Alice", "three", clock=107.0, rate=(2, 10.0))
    assert room.lines(Role.USER) == ["one", "two"]
    room.post("Alice", "three", clock=110.5, rate=(2, 10.0))
    assert room.lines(Role.USER) == ["one", "two", "three"]


def test_a_message_is_cleaned_and_refused_when_empty_or_too_long():
    assert talk.clean_message("  Hi\r\nthere\x07 ", 100, attached=False) == "Hi\nthere"
    assert talk.clean_message("  ", 100, attached=True) == ""
    with pytest.raises(MessageRefused, match="empty"):
        talk.clean_message(" \x07 ", 100, attached=False)
    with pytest.raises(MessageRefused, match="limit is 3"):
        talk.clean_message("four", 3, attached=False)


def test_setting_the_policy_tells_everyone_and_hands_the_undecided_to_the_next_turn(room):
    room.join("Alice")
    room.state.policy = ReplyPolicy.WHEN_HELPFUL
    said = room.post("Alice", "Hmm")
    room.run(talk.set_policy, "id-alice", ReplyPolicy.WHEN_MENTIONED, "Assistant", NOW)
    assert room.state.policy is ReplyPolicy.WHEN_MENTIONED and room.state.policy_changes == 1
    assert (room.state.undecided, room.state.context) == ([], [said.id])
    assert room.lines()[-1] == "Alice set Assistant to reply to only when mentioned as @Assistant."


def test_stop_ends_the_turn_saying_who_stopped_it_and_keeps_the_text(room):
    replying(room, "Tell me a story")
    room.run(talk.stop, "id-alice", None, NOW)
    [reply] = [m for m in room.messages.values() if m.role is Role.ASSISTANT]
    assert (reply.text, reply.status, reply.stopped_by) == ("Once upon", Status.STOPPED, "Alice")
    assert room.lines()[-1] == "Alice stopped the reply."
    assert room.state.turn is None and room.state.reply_id is None


def test_a_stop_meant_for_an_earlier_turn_does_not_stop_this_one(room):
    turn = replying(room, "Tell me a story")
    room.run(talk.stop, "id-alice", turn.number - 1, NOW)
    assert room.last.skip and room.state.turn is not None


def test_deleting_blanks_the_quotes_of_replies_the_callers_copy_had_not_seen_yet(room):
    room.join("Alice", "Bob")
    original = room.post("Alice", "my password is hunter2")
    known = room.state.message_count  # the copy of the room that deletes holds messages up to here
    seen = room.run(
        talk.post,
        "id-bob",
        "don't!",
        [],
        files_limit=MB,
        assistant_name="A",
        rate=RATE,
        clock=0.0,
        now=NOW,
        replying_to=original.id,
    )
    room.post("Alice", "unrelated")
    unseen = room.run(
        talk.post,
        "id-bob",
        "really",
        [],
        files_limit=MB,
        assistant_name="A",
        rate=RATE,
        clock=0.0,
        now=NOW,
        replying_to=original.id,
    )
    room.run(talk.delete, "id-alice", original.id, rate=RATE, clock=0.0, quoted_in=[seen.id], known=known + 1)
    blank = talk.Quote(original.id, "", "")
    assert room.messages[seen.id].quote == room.messages[unseen.id].quote == blank


# --- turns ----------------------------------------------------------------------------------------


def test_a_turn_takes_what_was_carried_over_then_the_queue_in_order(room):
    room.join("Alice")
    old = room.post("Alice", "Earlier")
    room.state.queue, room.state.carried_over = [], [old.id]
    new = room.post("Alice", "Now")
    turn = room.start_turn()
    assert [m.text for m in turn.messages] == ["Earlier", "Now"]
    assert all(m.status is Status.COMPLETE for m in turn.messages)
    assert room.messages[new.id].status is Status.COMPLETE, "no longer waiting for the assistant"
    assert (room.state.queue, room.state.carried_over) == ([], [])
    assert room.state.turn.message_ids == [old.id, new.id] and room.state.turn.fence == FENCE
    assert turn.addressees == ("Alice",)


def test_no_turn_starts_for_a_worker_without_the_rooms_fence(room):
    room.join("Alice")
    room.post("Alice", "Hello")
    for fence in (None, FENCE + 1):
        assert room.start_turn(fence) is None
        assert room.last.skip and room.state.turn is None and len(room.state.queue) == 1


def test_a_reply_begins_with_its_first_words_only_for_the_worker_writing_the_turn(room):
    turn = replying(room, "Hello")
    [reply] = [m for m in room.messages.values() if m.role is Role.ASSISTANT]
    assert (reply.status, reply.reply_to) == (Status.STREAMING, ("Alice",))
    room.state.reply_id = None
    assert room.run(turns.begin_reply, turn, FENCE + 1, "Hi", "Assistant", NOW) == (False, None)
    assert room.last.skip


def test_ending_a_turn_with_carry_over_marks_its_messages_unanswered_for_the_next_turn(room):
    replying(room, "Tell me a story")
    [story] = room.state.turn.message_ids
    room.run(turns.end_turn, NOW, turns.broke_off("The model's server is away.", carry_over=True))
    assert room.messages[story].status is Status.UNANSWERED
    assert room.state.carried_over == [story]
    [reply] = [m for m in room.messages.values() if m.role is Role.ASSISTANT]
    assert reply.status is Status.ERROR
    assert room.lines()[-1] == "The model's server is away. It will try again with the next message."


def test_a_worker_that_takes_over_ends_its_dead_predecessors_turn_as_broken_off(room):
    replying(room, "Tell me a story")
    room.run(turns.adopt, FENCE + 1, NOW)
    assert room.state.fence == FENCE + 1 and room.state.turn is None
    [reply] = [m for m in room.messages.values() if m.role is Role.ASSISTANT]
    assert (reply.text, reply.status) == ("Once upon", Status.ERROR)
    # Its reply began: the model had the turn's messages, and the conversation keeps them.
    assert room.lines()[-1] == turns.BROKE_OFF
    assert room.state.carried_over == []


def test_a_worker_that_takes_over_a_turn_with_no_reply_yet_sends_its_messages_again(room):
    room.join("Alice")
    story = room.post("Alice", "Tell me a story")
    assert room.start_turn() is not None
    room.run(turns.adopt, FENCE + 1, NOW)
    assert room.lines()[-1] == f"{turns.BROKE_OFF} It will try again with the next message."
    assert room.state.carried_over == [story.id]
    assert room.messages[story.id].status is Status.UNANSWERED


def test_finishing_a_turn_completes_its_reply_and_counts_its_tokens(room):
    turn = replying(room, "Hello")
    turn.usage["total_tokens"] = 30
    tokens = room.run(
        turns.finish_turn,
        turn,
        FENCE,
        room.state.reply_id,
        error=None,
        carry_over=False,
        now=NOW,
    )
    assert tokens == 30 and room.state.usage == {"total_tokens": 30}
    [reply] = [m for m in room.messages.values() if m.role is Role.ASSISTANT]
    assert reply.status is Status.COMPLETE and room.state.turn is None


def test_a_worker_that_lost_its_lease_counts_its_tokens_but_leaves_the_turn_to_the_next_one(room):
    turn = replying(room, "Hello")
    turn.usage["total_tokens"] = 30
    room.run(
        turns.finish_turn,
        turn,
        None,
        room.state.reply_id,
        error=None,
        carry_over=False,
        now=NOW,
    )
    assert room.state.usage == {"total_tokens": 30}
    assert room.state.turn is not None, "the turn stays open: the worker that takes over ends it"


def test_a_reply_the_store_lost_is_never_called_complete(room):
    turn = replying(room, "Hello")
    room.run(turns.finish_turn, turn, FENCE, 999, error=None, carry_over=False, now=NOW)
    assert room.lines()[-1] == turns.LOST_REPLY
    [reply] = [m for m in room.messages.values() if m.role is Role.ASSISTANT]
    assert reply.status is Status.ERROR


def test_counting_usage_adds_to_the_rooms_totals_by_kind():
    room = HeldRoom()
    assert room.run(turns.count_usage, {"total_tokens": 100}) == 100
    assert room.run(turns.count_usage, {"total_tokens": 20}) == 20
    assert room.run(turns.count_usage, {"total_tokens": 5, "input_tokens": 3}) == 5
    assert room.state.usage == {"total_tokens": 125, "input_tokens": 3}
    assert room.run(turns.record_usage, {}) is None and room.last.skip


def test_only_the_worker_writing_the_turns_keeps_the_conversation(room):
    assert not room.run(turns.set_conversation, "conv-1", FENCE + 1)
    assert room.run(turns.set_conversation, "conv-1", FENCE) and room.state.conversation == "conv-1"
    room.run(turns.forget_conversation)
    assert room.state.conversation is None


# --- a room's life --------------------------------------------------------------------------------


def test_closing_ends_the_turn_keeping_the_reply_and_sets_the_conversation_aside(room):
    replying(room, "Hello")
    room.state.conversation = "conv-1"
    room.run(lifetime.mark_closed, NOW)
    [reply] = [m for m in room.messages.values() if m.role is Role.ASSISTANT]
    assert (reply.text, reply.status) == ("Once upon", Status.ERROR), "a cut reply is never complete"
    assert room.lines()[-1] == turns.CLOSED_MID_REPLY
    assert room.state.closed and room.state.turn is None
    assert (room.state.conversation, room.state.conversation_to_close) == (None, "conv-1")
    room.run(lifetime.mark_closed, NOW)
    assert room.last.skip, "closed once"


def test_a_room_closes_when_idle_only_once_it_stayed_empty_past_the_grace_period():
    state, welcome = lifetime.fresh_room("Assistant", NOW, 100.0, None)
    assert (welcome.id, state.empty_since) == (1, 100.0)
    room = HeldRoom()
    room.state = state
    assert not room.run(lifetime.close_if_idle, 104.0, 5.0, NOW) and not room.state.closed
    room.state.queue = [1]
    assert not room.run(lifetime.close_if_idle, 200.0, 5.0, NOW), "messages still wait for a reply"
    room.state.queue = []
    assert room.run(lifetime.close_if_idle, 105.0, 5.0, NOW) and room.state.closed
