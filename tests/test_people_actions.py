"""What people do to messages besides sending them: reply to one (quoting it), react to one, and take
their own back. Run on a real room with its worker, on both stores, answered by a scripted assistant."""

from __future__ import annotations

import contextlib
import json
import random
import threading
from collections.abc import Iterator

import pytest
from pydantic import TypeAdapter

from shared import transcript
from shared.attachments import check_upload
from shared.errors import AssistantError, MessageRefused
from shared.hub import Hub
from shared.messages import QUOTE_CHARS, REACTIONS, Message, Quote, Role, Status
from shared.room import Room, talk
from shared.store import RoomState
from shared.store.redis import RedisStore, _message
from tests.fakes import Gate, fast_settings, wait_for_workers_to_end, wait_until

PDF = b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n"


def join(room: Room, nickname: str) -> str:
    return room.join(f"id-{nickname}", nickname, f"tab-{nickname}").id


def message(room: Room, message_id: int) -> Message:
    return room.view().messages[message_id - 1]


def answered(room: Room) -> None:
    wait_until(lambda: not room.busy, "the assistant to answer")


# --- replying -----------------------------------------------------------------------------------


def test_a_reply_quotes_the_first_line_of_the_message_it_answers_cut_to_quote_chars(room):
    alice, bob = join(room, "Alice"), join(room, "Bob")
    long_line = "word " * 60
    original = room.post(alice, f"{long_line}\nsecond line")
    reply = room.post(bob, "I agree", replying_to=original.id)

    quote = message(room, reply.id).quote
    assert quote is not None and (quote.id, quote.author) == (original.id, "Alice")
    assert len(quote.text) == QUOTE_CHARS and quote.text.endswith("…")
    assert "second line" not in quote.text and long_line.startswith(quote.text[:-1])


def test_a_reply_to_the_assistant_quotes_the_assistant(room, assistant):
    alice = join(room, "Alice")
    room.post(alice, "Tell me a story")
    answered(room)
    [reply] = [m for m in room.view().messages if m.role is Role.ASSISTANT]
    again = room.post(alice, "More!", replying_to=reply.id)
    assert message(room, again.id).quote == Quote(reply.id, "CatGPT", reply.text.splitlines()[0])


@pytest.mark.parametrize("target", [1, 0, 999, -3])  # 1 is the room's welcome line
def test_a_reply_to_a_room_note_or_an_unknown_message_is_refused_and_nothing_is_sent(room, target):
    alice = join(room, "Alice")
    before = room.view().messages
    with pytest.raises(MessageRefused, match=r"(note from the room|not in this room).*so nothing was sent\."):
        room.post(alice, "hello?", replying_to=target)
    assert room.view().messages == before


def test_a_reply_to_a_deleted_message_is_allowed_and_quotes_a_deleted_message(room):
    alice, bob = join(room, "Alice"), join(room, "Bob")
    original = room.post(alice, "oops, wrong room")
    room.delete_message(alice, original.id)
    reply = room.post(bob, "what did you say?", replying_to=original.id)
    assert message(room, reply.id).quote == Quote(original.id, "", "")


def test_replies_do_not_grow_the_rooms_state_and_a_deleted_message_still_blanks_every_quote(room, clock):
    # The state is rewritten and read back whole by every change: nothing in it may grow with each reply.
    alice, bob = join(room, "Alice"), join(room, "Bob")
    first, second = room.post(alice, "the plan"), room.post(alice, "the other plan")
    replies: list[int] = []

    def reply_to_each(times: int) -> int:
        for n in range(times):
            clock.advance(room.settings.rate_limit_seconds)  # people reply over time, within the limit
            replies.append(room.post(bob, f"about it, {n}", replying_to=(first, second)[n % 2].id).id)
        answered(room)
        state, _ = room.store.read(room.name, room.version)
        return len(TypeAdapter(RoomState).dump_json(state))

    before, after = reply_to_each(60), reply_to_each(240)  # each makes more changes than Redis recalls
    assert after - before < 40, f"the state grew from {before} to {after} bytes with 240 more replies"

    room.delete_message(alice, first.id)
    quotes = [message(room, i).quote for i in replies]
    assert quotes[::2] == [Quote(first.id, "", "")] * 150
    assert quotes[1::2] == [Quote(second.id, "Alice", "the other plan")] * 150


# --- reactions ----------------------------------------------------------------------------------


def test_reactions_toggle_one_of_each_per_person_listed_in_reactions_order(room):
    alice, bob = join(room, "Alice"), join(room, "Bob")
    said = room.post(alice, "Party at eight")
    room.react(bob, said.id, "🎉")
    room.react(alice, said.id, "👍")
    room.react(alice, said.id, "🎉")
    assert message(room, said.id).reactions == (("👍", ("Alice",)), ("🎉", ("Bob", "Alice")))

    room.react(bob, said.id, "🎉")  # pressed again: taken away
    room.react(alice, said.id, "👍")
    assert message(room, said.id).reactions == (("🎉", ("Alice",)),)


def test_a_reaction_belongs_to_the_person_not_to_whoever_has_their_nickname_later(room):
    alice, bob = join(room, "Alice"), join(room, "Bob")
    said = room.post(bob, "Party at eight")
    room.react(alice, said.id, "🎉")
    room.leave(alice)
    later = room.join("id-another-alice", "Alice", "tab-another-alice").id  # someone else, same nickname

    room.react(later, said.id, "🎉")  # a reaction of her own, beside the first Alice's
    assert message(room, said.id).reactions == (("🎉", ("Alice", "Alice")),)
    room.react(later, said.id, "🎉")  # pressed again: hers goes, the first Alice's stays
    assert message(room, said.id).reactions == (("🎉", ("Alice",)),)
    assert message(room, said.id).reacted_by == (("🎉", (alice,)),)
    assert message(room, said.id).reactions_of(later, "Alice") == (), "her page shows no reaction as hers"


def test_reactions_stored_before_ids_were_kept_still_read_and_toggle_by_nickname():
    stored = (
        '{"id": 2, "role": "user", "text": "Party", "created_at": "2026-12-01T12:00:00Z", "author": "Bob",'
        ' "reactions": [["👍", ["Alice", "Bob"]]]}'
    )  # a message as an older version wrote it: no `reacted_by`
    old = _message(stored)  # as Redis reads a message back (JSON, by pydantic)
    assert old.reactions == (("👍", ("Alice", "Bob")),) and old.reactions_of("id-alice", "Alice") == ("👍",)
    assert talk.toggled(old, "👍", "id-alice", "Alice").reactions == (("👍", ("Bob",)),)
    both = talk.toggled(old, "🎉", "id-carol", "Carol")
    assert both.reactions == (("👍", ("Alice", "Bob")), ("🎉", ("Carol",)))
    assert both.reacted_by == (("👍", ("", "")), ("🎉", ("id-carol",)))


def test_a_reaction_asks_nothing_of_the_assistant(room, assistant):
    alice, bob = join(room, "Alice"), join(room, "Bob")
    said = room.post(alice, "first")
    answered(room)
    room.react(bob, said.id, "❤️")
    assert not room.busy
    room.post(alice, "second")
    answered(room)
    assert assistant.texts_of_turns() == [["first"], ["second"]]


@pytest.mark.parametrize(
    ("target", "emoji", "refusal"),
    [
        ("said", "🙂", "not one of them"),
        ("said", "", "not one of them"),
        ("welcome", "👍", "note from the room"),
        ("unknown", "👍", "not in this room"),
        ("deleted", "👍", "was deleted"),
    ],
)
def test_a_bad_reaction_changes_nothing_and_says_why(room, target, emoji, refusal):
    alice, bob = join(room, "Alice"), join(room, "Bob")
    said = room.post(alice, "hello")
    gone = room.post(alice, "never mind")
    room.delete_message(alice, gone.id)
    message_id = {"said": said.id, "welcome": 1, "unknown": 999, "deleted": gone.id}[target]
    answered(room)  # the assistant's turn changes the messages by itself: it must be over first
    before = room.view().messages
    with pytest.raises(MessageRefused, match=refusal):
        room.react(bob, message_id, emoji)
    assert room.view().messages == before


# --- taking a message back ----------------------------------------------------------------------


def test_a_deleted_message_loses_its_text_files_quote_and_reactions_and_its_files_bytes_go(room):
    alice, bob = join(room, "Alice"), join(room, "Bob")
    first = room.post(alice, "first")
    attachment = check_upload("notes.pdf", PDF, max_mb=10)
    said = room.post(bob, "see the file", [(attachment, PDF)], replying_to=first.id)
    room.react(alice, said.id, "😮")
    assert room.attachments.get(attachment.id) == PDF

    room.delete_message(bob, said.id)

    gone = message(room, said.id)
    assert gone.deleted and (gone.text, gone.attachments, gone.quote, gone.reactions) == ("", (), None, ())
    assert (gone.author, gone.id) == ("Bob", said.id), "its place shows who took it back"
    assert room.attachments.get(attachment.id) is None
    room.delete_message(bob, said.id)  # pressed again, in another tab: nothing more happens


def test_only_the_author_deletes_and_a_forged_delete_changes_nothing(room):
    alice, bob = join(room, "Alice"), join(room, "Bob")
    said = room.post(alice, "mine")
    answered(room)
    [reply] = [m for m in room.view().messages if m.role is Role.ASSISTANT]
    before = room.view().messages
    for target in (said.id, reply.id):
        with pytest.raises(MessageRefused, match="Only the person who sent a message can delete it"):
            room.delete_message(bob, target)
    with pytest.raises(MessageRefused, match="note from the room"):
        room.delete_message(alice, 1)
    with pytest.raises(MessageRefused, match="not in this room"):
        room.delete_message(alice, 999)
    with pytest.raises(MessageRefused, match="no longer in the room"):
        room.delete_message("id-stranger", said.id)
    assert room.view().messages == before


def test_replies_to_a_deleted_message_lose_its_text_and_author_and_the_model_gets_neither(room, assistant):
    alice, bob = join(room, "Alice"), join(room, "Bob")
    gate = Gate()
    assistant.will_reply("Thinking", gate, " done")
    room.post(alice, "hold on")
    gate.wait_reached()  # the worker is busy: what follows waits in the queue
    secret = room.post(alice, "my password is hunter2")
    reply = room.post(bob, "don't post that!", replying_to=secret.id)
    assert message(room, reply.id).quote == Quote(secret.id, "Alice", "my password is hunter2")

    room.delete_message(alice, secret.id)
    assert message(room, reply.id).quote == Quote(secret.id, "", "")
    gate.open()
    answered(room)

    sent = [m for turn in assistant.turns for m in (*turn.messages, *turn.context, *turn.history)]
    assert all("hunter2" not in m.text and "hunter2" not in str(m.quote) for m in sent)
    assert [m.quote for m in assistant.turns[-1].messages] == [Quote(secret.id, "", "")]


def test_reactions_and_deletes_count_against_the_flood_limit_like_messages(make_room, clock):
    room = make_room(rate_limit_messages=3, rate_limit_seconds=10)
    alice, bob = join(room, "Alice"), join(room, "Bob")
    said = room.post(alice, "one")
    room.react(alice, said.id, "👍")
    room.delete_message(alice, said.id)
    with pytest.raises(MessageRefused, match="Slow down"):
        room.post(alice, "four")
    with pytest.raises(MessageRefused, match="Slow down"):
        room.react(alice, room.post(bob, "bob's").id, "❤️")
    clock.advance(10)
    room.react(alice, said.id + 1, "❤️")


def test_a_queued_message_deleted_before_its_turn_is_never_sent_to_the_assistant(room, assistant):
    alice = join(room, "Alice")
    gate = Gate()
    assistant.will_reply("Hmm", gate, " ok")
    room.post(alice, "first")
    gate.wait_reached()
    regret = room.post(alice, "something I regret")
    kept = room.post(alice, "something I stand by")
    assert message(room, regret.id).status is Status.QUEUED

    room.delete_message(alice, regret.id)
    assert message(room, regret.id).status is Status.COMPLETE, "no longer waiting for the assistant"
    gate.open()
    answered(room)

    assert assistant.texts_of_turns() == [["first"], ["something I stand by"]]
    assert all(m.id != regret.id for t in assistant.turns for m in (*t.messages, *t.history, *t.context))
    assert assistant.forgotten == [], "never sent, nothing to forget"
    assert kept.id in [m.id for m in assistant.turns[-1].messages]


def test_a_message_the_assistant_saw_is_forgotten_by_the_idle_worker_and_left_out_of_history(room, assistant):
    alice = join(room, "Alice")
    seen = room.post(alice, "the assistant read this")
    answered(room)
    room.delete_message(alice, seen.id)

    wait_until(lambda: assistant.forgotten, "the idle worker to take the message back")
    [conversation] = assistant.opened
    assert assistant.forgotten == [(conversation, (seen.id,))]
    wait_until(lambda: not room.to_forget(), "the room to drop its record of the job")

    room.post(alice, "next")
    answered(room)
    assert seen.id not in [m.id for m in assistant.turns[-1].history]
    assert assistant.forgotten == [(conversation, (seen.id,))], "forgotten once"


def test_a_message_deleted_while_its_turn_is_answered_is_forgotten_before_the_next_turn(
    room, assistant, monkeypatch
):
    turns_before_forgetting: list[int] = []
    forget = assistant.forget

    def counting(conversation, messages):
        turns_before_forgetting.append(len(assistant.turns))
        forget(conversation, messages)

    monkeypatch.setattr(assistant, "forget", counting)
    alice, bob = join(room, "Alice"), join(room, "Bob")
    gate = Gate()
    assistant.will_reply("Reading", gate, " it")
    said = room.post(alice, "read this")
    gate.wait_reached()
    room.delete_message(alice, said.id)
    room.post(bob, "next question")  # waits for the next turn
    assert assistant.forgotten == [], "never while a response runs on the conversation"

    gate.open()
    answered(room)
    assert assistant.forgotten[0][1] == (said.id,)
    assert turns_before_forgetting == [1], "after the turn it was in, before the next one"
    assert assistant.texts_of_turns() == [["read this"], ["next question"]]


def test_when_the_assistant_cannot_forget_everyone_is_told_and_the_room_goes_on(room, assistant, monkeypatch):
    def refuse(conversation, messages):
        raise AssistantError("The server did not answer.")

    monkeypatch.setattr(assistant, "forget", refuse)
    alice = join(room, "Alice")
    seen = room.post(alice, "oops")
    answered(room)
    room.delete_message(alice, seen.id)

    wait_until(lambda: not room.to_forget(), "the worker to give up, once")
    [line] = [m for m in room.view().messages if m.role is Role.SYSTEM and "deleted message" in m.text]
    assert line.status is Status.ERROR
    assert line.text == (
        "CatGPT could not forget a deleted message: The server did not answer; it may still remember it."
    )
    room.post(alice, "still there?")
    answered(room)
    assert assistant.texts_of_turns()[-1] == ["still there?"]


def test_a_failed_turn_does_not_send_a_message_deleted_during_it_again(room, assistant):
    alice = join(room, "Alice")
    gate = Gate()
    assistant.will_reply(gate, AssistantError("server down", delivered=False))
    said = room.post(alice, "read this")
    gate.wait_reached()
    room.delete_message(alice, said.id)
    gate.open()
    answered(room)
    room.post(alice, "again")
    answered(room)
    assert assistant.texts_of_turns()[-1] == ["again"]


# --- what pages and transcripts see -------------------------------------------------------------


def test_a_changed_message_is_reported_to_pages_with_the_changes_since_their_version(room):
    alice, bob = join(room, "Alice"), join(room, "Bob")
    said = room.post(alice, "hello")
    answered(room)
    drawn = room.version

    room.react(bob, said.id, "👍")
    assert [m.id for m in room.changes_since(drawn).messages] == [said.id]
    assert room.changes_since(drawn).messages[0].reactions == (("👍", ("Bob",)),)

    drawn = room.version
    reply = room.post(bob, "replying", replying_to=said.id)
    drawn_reply = room.version
    room.delete_message(alice, said.id)
    changed = {m.id: m for m in room.changes_since(drawn_reply).messages}
    assert changed[said.id].deleted
    assert changed[reply.id].quote == Quote(said.id, "", ""), "the quote is redrawn too"
    assert drawn < drawn_reply < room.version


def test_the_transcript_lists_reactions_and_quotes_and_shows_deleted_messages(room):
    alice, bob = join(room, "Alice"), join(room, "Bob")
    said = room.post(alice, "Pizza tonight?")
    room.react(bob, said.id, "👍")
    room.react(alice, said.id, "👍")
    room.react(bob, said.id, "🎉")
    room.post(bob, "Yes!", replying_to=said.id)
    gone = room.post(alice, "actually no")
    reply_to_gone = room.post(bob, "why not?", replying_to=gone.id)
    room.delete_message(alice, gone.id)
    answered(room)

    markdown = transcript.to_markdown(room.view())
    assert "(👍 Bob, Alice) (🎉 Bob)" in markdown
    assert '↪ replying to **Alice**: "Pizza tonight?"' in markdown
    assert "↪ replying to a deleted message" in markdown
    # (The scripted assistant may have echoed it first: its reply is its own words, and stays.)
    assert "> *message deleted*" in markdown and "\n> actually no\n" not in markdown

    messages = {m["id"]: m for m in json.loads(transcript.to_json(room.view()))["messages"]}
    assert messages[said.id]["reactions"] == {"👍": ["Bob", "Alice"], "🎉": ["Bob"]}
    assert messages[gone.id]["deleted"] is True and messages[gone.id]["text"] == ""
    assert messages[reply_to_gone.id]["replying_to"] == {"id": gone.id, "deleted": True}


# --- two processes sharing the room through Redis -----------------------------------------------


@pytest.fixture
def two_hubs(shared_redis, assistant) -> Iterator[tuple[Hub, Hub]]:
    """Two hubs on one Redis database, as two app processes share rooms."""
    url = shared_redis.fresh_url()
    hubs = [
        Hub(fast_settings(redis_url=url), lambda _settings: assistant, reap_every=0.05, store=RedisStore(url))
        for _ in range(2)
    ]
    yield hubs[0], hubs[1]
    assistant.open_all_gates()
    for hub in hubs:
        hub.shutdown()
    wait_for_workers_to_end(*(hub.store for hub in hubs))


def test_a_reply_a_reaction_and_a_deletion_made_on_one_process_are_seen_on_the_other(two_hubs, assistant):
    a, b = two_hubs
    room_a, alice = a.join("lobby", "id-alice", "Alice", "tab-a")
    room_b, bob = b.join("lobby", "id-bob", "Bob", "tab-b")
    said = room_a.post(alice.id, "Lunch at noon?")
    wait_until(lambda: not room_a.busy and not room_b.busy, "the reply")
    seen_by_b = room_b.version

    reply = room_b.post(bob.id, "Yes", replying_to=said.id)
    room_b.react(bob.id, said.id, "👍")
    wait_until(lambda: message(room_a, said.id).reactions == (("👍", ("Bob",)),), "A to see B's reaction")
    wait_until(lambda: len(room_a.view().messages) >= reply.id, "A to see B's reply")
    assert message(room_a, reply.id).quote == Quote(said.id, "Alice", "Lunch at noon?")

    room_a.delete_message(alice.id, said.id)
    wait_until(lambda: message(room_b, said.id).deleted, "B to see the message deleted")
    wait_until(lambda: message(room_b, reply.id).quote == Quote(said.id, "", ""), "B's quote to go")
    changed = {m.id for m in room_b.changes_since(seen_by_b).messages}
    assert {said.id, reply.id} <= changed, "B's pages are told to redraw both"
    wait_until(lambda: any(said.id in ids for _, ids in assistant.forgotten), "one worker to forget it")
    wait_until(lambda: not room_a.to_forget() and not room_b.to_forget(), "both copies to drop the job")
    assert [ids for _, ids in assistant.forgotten] == [(said.id,)], "forgotten once, by one process"


# --- a crowd ------------------------------------------------------------------------------------


class FollowingPage:
    """What a live page keeps of a room: one slot per message id, made once when the message first comes
    and redrawn in place when it changes, from `changes_since` the version it drew (as `shared.web`
    does); it keeps its person present meanwhile."""

    def __init__(self, room: Room, participant_id: str, session_id: str):
        self.room, self.participant_id, self.session_id = room, participant_id, session_id
        self.version = 0
        self.slots: dict[int, Message] = {}
        self.made: list[int] = []  # message ids in the order their slots were made
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._follow, daemon=True)

    def _follow(self) -> None:
        while not self.stop.is_set():
            self.catch_up()
            self.room.attach(self.participant_id, self.session_id)
            self.room.wait_for_change(self.version, 0.05)

    def catch_up(self) -> int:
        changes = self.room.changes_since(self.version)
        for changed in changes.messages:
            if changed.id not in self.slots:
                self.made.append(changed.id)
            self.slots[changed.id] = changed
        self.version = changes.version
        return self.version


@pytest.mark.parametrize("processes", [1, 2])  # 2: two hubs sharing the room through Redis
def test_a_crowd_reacting_replying_and_deleting_while_it_posts_shows_every_message_once_on_every_page(
    processes, shared_redis, assistant
):
    url = shared_redis.fresh_url() if processes == 2 else None
    hubs = [
        Hub(
            fast_settings(redis_url=url) if url else fast_settings(),
            lambda _settings: assistant,
            reap_every=0.05,
            store=RedisStore(url) if url else None,
        )
        for _ in range(processes)
    ]
    people, rounds = 10, 6
    joined = [hubs[i % processes].join("lobby", f"id-{i}", f"Person {i}", f"tab-{i}") for i in range(people)]
    pages = [FollowingPage(room, person.id, f"tab-{i}") for i, (room, person) in enumerate(joined)]
    for page in pages:
        page.thread.start()
    posted: list[int] = []  # every message a person posted, by id
    deleted: set[int] = set()
    texts: dict[int, str] = {}
    lock = threading.Lock()
    barrier = threading.Barrier(people)
    problems: list[BaseException] = []

    def act(index: int) -> None:
        room, person = joined[index]
        chance = random.Random(index)
        mine: list[int] = []
        try:
            for round_number in range(rounds):
                barrier.wait(10)
                with lock:
                    earlier = list(posted)
                target = chance.choice(earlier) if earlier else None
                text = f"{person.nickname} round {round_number}"
                said = room.post(person.id, text, replying_to=target)
                mine.append(said.id)
                with lock:
                    posted.append(said.id)
                    texts[said.id] = text
                for emoji in chance.sample(REACTIONS, 2):
                    with contextlib.suppress(MessageRefused):  # only if someone just deleted it
                        room.react(person.id, chance.choice(earlier or [said.id]), emoji)
                if round_number % 2 == 1:
                    gone = mine.pop(chance.randrange(len(mine)))
                    room.delete_message(person.id, gone)
                    with lock:
                        deleted.add(gone)
        except BaseException as problem:  # reported below, with the test's own assertion
            problems.append(problem)

    threads = [threading.Thread(target=act, args=(i,)) for i in range(people)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert not problems, problems
        rooms = [hub.room("lobby") for hub in hubs]
        wait_until(
            lambda: not any(room.busy or room.to_forget() for room in rooms), "the crowd to be answered", 30
        )
        final = rooms[0].view()
        wait_until(lambda: all(room.version == final.version for room in rooms), "every process to agree")
        for page in pages:
            wait_until(lambda page=page: page.version >= final.version, "every page to catch up")
            page.stop.set()
            page.thread.join(5)
            page.catch_up()
    finally:
        assistant.open_all_gates()
        for page in pages:
            page.stop.set()
        for hub in hubs:
            hub.shutdown()
        wait_for_workers_to_end(*(hub.store for hub in hubs))

    assert len(posted) == people * rounds and len(deleted) == people * rounds // 2
    everything = {m.id: m for m in final.messages}
    for page in pages:
        assert sorted(page.made) == sorted(set(page.made)), "no message drawn twice"
        assert page.slots == everything, "each page shows the room exactly as it is"
    for message_id in posted:
        shown = everything[message_id]
        if message_id in deleted:
            assert shown.deleted and (shown.text, shown.reactions, shown.quote) == ("", (), None)
        else:
            assert not shown.deleted and shown.text == texts[message_id]
            if shown.quote is not None and shown.quote.id in deleted:
                assert shown.quote == Quote(shown.quote.id, "", ""), "a reply to a deleted message"
    taken = [m.id for turn in assistant.turns for m in (*turn.messages, *turn.context)]
    assert sorted(taken) == sorted(set(taken)), "no message went to the assistant twice"
    forgotten = [i for _, ids in assistant.forgotten for i in ids]
    assert sorted(forgotten) == sorted(set(forgotten)) and set(forgotten) <= deleted
    assert set(forgotten) | (deleted - set(taken)) == deleted, "each deleted message forgotten or never sent"


def test_a_deletion_waiting_to_be_forgotten_outlives_the_process_whose_worker_stalled(
    shared_redis, assistant
):
    url = shared_redis.fresh_url()
    hubs: list[Hub] = []

    def hub() -> Hub:
        store = RedisStore(url, lease_seconds=0.5)
        hubs.append(Hub(fast_settings(redis_url=url), lambda _s: assistant, reap_every=0.05, store=store))
        return hubs[-1]

    try:
        a = hub()
        room_a, alice = a.join("lobby", "id-alice", "Alice", "tab-a")
        gate = Gate()
        assistant.will_reply("Once upon", gate, " a time")
        said = room_a.post(alice.id, "Tell me a story")
        gate.wait_reached()
        room_a.delete_message(alice.id, said.id)  # in the turn A's worker writes: to forget after it
        a.store.renew_lease = lambda room, fence: True  # type: ignore[method-assign]  # A stalls
        room_b = hub().room("lobby")

        wait_until(lambda: assistant.forgotten, "B's worker to take the room over and forget it", 10)
        gate.open()  # A wakes up: its turn is over, and the job is not its any more
        room_b.post(alice.id, "Still there?")
        wait_until(lambda: len(assistant.turns) == 2 and not room_b.busy, "the next turn")
        assert [ids for _, ids in assistant.forgotten] == [(said.id,)]
        assert assistant.texts_of_turns()[1] == ["Still there?"], "the deleted message is not sent again"
    finally:
        assistant.open_all_gates()
        for each in hubs:
            each.shutdown()
        wait_for_workers_to_end(*(each.store for each in hubs))
