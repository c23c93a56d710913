"""The live part of the chat page: one long run per page that follows the room and redraws what changed.

Everything other people change (the conversation, the reply being written, the busy line and Stop, who
is here, the reply policy) lives in placeholders made at the start of the run, and is redrawn from
`Room.changes_since`, so nobody's page reruns because of what someone else did. A page reruns only for its
own person's actions: sending, the toggle, Stop, the policy, leaving, moving to another page.

No periodic browser tick keeps the page live: a tick that lands while a message is on its way can make
Streamlit drop the message, so the run itself never ends on its own.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from shared.catch_up import CatchUp, missed_messages
from shared.config import Settings
from shared.errors import CatchUpRefused, MessageRefused
from shared.messages import Message, Participant, Role, Status
from shared.room import Room, RoomChanges, RoomStatus, RoomView
from shared.ui import (
    POLICY_LABELS,
    bubble,
    escape_markdown,
    get_catch_ups,
    instructions_line,
    people,
    policy_help,
    render_message,
    session_id,
)

# How long an idle page waits before it touches Streamlit, where Streamlit stops a run that was replaced by
# a rerun (which starts at once in a thread of its own: fast reruns) or whose tab closed. Each slice costs
# an idle page one wake-up; a longer one only lets a replaced run linger that long.
WAIT_SLICE_SECONDS = 0.25
# A reply being written is redrawn at most this often on one page, and once more per this many pages
# watching the room: redrawing resends the whole text, so a long reply to many pages must not cost a core.
REDRAW_SECONDS = 0.1
PAGES_PER_REDRAW_STEP = 25
CATCH_UP_WORDS = 20  # a streamed reply this far behind the assistant is shown without pacing
PAGE_OF_MESSAGES = 50  # how many of the latest messages a page shows before "Show earlier messages"
# Pages follow the room until their person acts or the tab closes; the AppTest suite sets a bound so that
# a run ends and its page can be read.
LIVE_RUN_SECONDS: float | None = None
HIDE_RUNNING_INDICATOR = "<style>[data-testid='stStatusWidget']{visibility:hidden}</style>"


@dataclass
class Slots:
    """The placeholders the live run owns, made by the page script where each belongs on the page."""

    people: DeltaGenerator  # in the sidebar
    policy: DeltaGenerator  # in the sidebar
    messages: DeltaGenerator  # a container: one placeholder per message is added to it
    busy: DeltaGenerator  # who the assistant is replying to, and who waits next
    stop: DeltaGenerator  # the Stop button while a reply is written
    instructions: DeltaGenerator | None = None  # the room's instructions in one line, under the title


def visible_messages(view: RoomView) -> list[Message]:
    """The messages a page shows at the start of its run: the latest ones, from where the last run began.

    The first message stays put across the person's own reruns until twice a page of messages is shown,
    so a rerun redraws the same messages in the same places (nothing moves, nothing is briefly doubled).
    """
    shown = [m for m in view.messages if not (m.role is Role.ASSISTANT and not m.text)]
    limit = st.session_state.get("shown_limit", PAGE_OF_MESSAGES)
    latest = shown[-limit:]
    if not latest:
        return latest
    room_key, first = st.session_state.get("first_shown", (None, 0))
    kept = [m for m in shown if m.id >= first]
    if room_key != (view.name, view.created_at) or first > latest[0].id or len(kept) > 2 * limit:
        kept = latest
        st.session_state.first_shown = ((view.name, view.created_at), latest[0].id)
    return kept


def catch_up_since(room: Room, view: RoomView, my_id: str) -> int | None:
    """The last message this person's pages showed before this page came, if others said more since.

    Decided on the page's first run in the room and kept for the session (session key `catch_up_since`:
    (room, created_at), message id or None), so the divider stays put across the person's own reruns.
    """
    room_key = (view.name, view.created_at)
    kept = st.session_state.get("catch_up_since")
    if kept is None or kept[0] != room_key:
        last = room.last_seen(my_id)
        since = last if last is not None and missed_messages(view.messages, last, my_id) else None
        kept = st.session_state.catch_up_since = (room_key, since)
        st.session_state.pop("catch_up", None)  # session key: the CatchUp this page asked for, if any
    return kept[1]


def earlier_messages_button(view: RoomView) -> None:
    """Older messages on demand, so a long history costs nothing until someone asks for it."""
    slot = st.empty()  # one element either way, so the elements after it keep their places on a rerun
    limit = st.session_state.get("shown_limit", PAGE_OF_MESSAGES)
    if len(view.messages) <= limit:
        slot.empty()
    elif slot.button("Show earlier messages", key="earlier", icon=":material/expand_less:"):
        st.session_state.shown_limit = limit + PAGE_OF_MESSAGES
        st.session_state.pop("first_shown", None)
        st.rerun()


def words(text: str) -> list[str]:
    return re.findall(r"\s*\S+\s*", text)


def redraw_interval(watchers: int) -> float:
    return REDRAW_SECONDS * max(1, watchers / PAGES_PER_REDRAW_STEP)


@dataclass
class _Reveal:
    """How far this page has shown the reply being written, paced by WORD_DELAY_MS."""

    message: Message
    shown: int = 0  # characters due on the page
    drawn: int = -1  # characters drawn so far (-1: nothing yet)
    at: float = field(default_factory=time.monotonic)  # when the last words were shown

    def step(self, word_delay: float, now: float) -> None:
        """Reveal the words due by now: one per WORD_DELAY_MS since the last, all of them far behind."""
        ahead = words(self.message.text[self.shown :])
        if not ahead:
            return
        due = len(ahead) if not word_delay else max(1, int((now - self.at) / word_delay))
        due = max(due, len(ahead) - CATCH_UP_WORDS)
        self.shown += sum(len(w) for w in ahead[:due])
        # Keep the fraction of a word's delay that has passed, so pacing does not drift with redraws.
        self.at = min(now, self.at + due * word_delay) if word_delay else now

    @property
    def done(self) -> bool:
        return self.message.status is not Status.STREAMING and self.shown >= len(self.message.text)


class LivePage:
    """What one page shows of the room, and how it brings that up to date."""

    def __init__(
        self,
        room: Room,
        my_id: str,
        settings: Settings,
        slots: Slots,
        problem: Callable[[], str | None] = lambda: None,
    ):
        self.room, self.my_id, self.settings, self.slots = room, my_id, settings, slots
        self.stream = st.session_state.get("stream_replies", True)
        self.word_delay = settings.word_delay_ms / 1000
        self.first_shown = 0  # older messages are not on this page
        self.placeholders: dict[int, DeltaGenerator] = {}
        self.slots_used = 0  # elements in the messages container, placeholders of messages or not
        self.drawn_before = st.session_state.get("message_slots", 0)  # how many earlier runs left there
        self.reveal: _Reveal | None = None  # the reply being written, while this page shows it word by word
        self.next_redraw = 0.0
        self.status: RoomStatus | None = None
        self.participants: tuple[Participant, ...] = ()
        self.problem = problem
        self.problem_shown: str | None = None
        self.session = session_id()
        self.seen = 0  # the newest message this page told the room it showed
        # The catch-up this page asked for, read once per run: a session-state read on every wake-up
        # would cost each idle page as much as the rest of its wake-up.
        self.catch_up_job: CatchUp | None = st.session_state.get("catch_up")
        self.summary: DeltaGenerator | None = None  # where this person's private catch-up appears
        self.summary_drawn: tuple[int, bool] | None = None

    # --- drawing -------------------------------------------------------------------------------

    def draw_all(self, view: RoomView) -> None:
        shown = visible_messages(view)
        self.first_shown = shown[0].id if shown else 0
        since = catch_up_since(self.room, view, self.my_id)
        self.catch_up_job = st.session_state.get("catch_up")  # none if this is another room's page
        for message in shown:
            if since is not None and message.id > since:
                self.catch_up_divider(view, since)
                since = None
            self.message(message)
        if since is not None:
            self.catch_up_divider(view, since)
        self.mark_seen(view.messages[-1].id if view.messages else 0)
        # A run never ends, so Streamlit never clears what the page's previous runs drew past this one's
        # last element: empty elements take the place of every message they drew beyond these.
        while self.slots_used < self.drawn_before:
            self._new_slot()
        self.participants = view.participants
        self.show_status(view.status)

    def apply(self, changes: RoomChanges) -> None:
        for message in changes.messages:
            if message.id >= self.first_shown:
                self.message(message)
        if changes.messages:
            self.mark_seen(changes.messages[-1].id)
        if changes.participants is not None:
            self.participants = changes.participants
            self.people()
        if changes.status != self.status:
            self.show_status(changes.status)

    def message(self, message: Message) -> None:
        self._placeholder(message.id)  # made now, so the page keeps the room's order
        if self.reveal is not None and self.reveal.message.id == message.id:
            self.reveal.message = message  # a finished reply is still revealed at the page's pace
            return self.draw_reply()
        if message.role is Role.ASSISTANT and message.status is Status.STREAMING:
            if self.reveal is not None:  # the next reply started: the last one is shown whole
                earlier, self.reveal = self.reveal.message, None
                self.message(earlier)
            self.reveal = _Reveal(message)
            return self.draw_reply()
        with self._placeholder(message.id).container():
            render_message(message, self.my_id, self.room.attachments)

    def draw_reply(self) -> None:
        """The reply being written: the words due so far, at most once per redraw interval."""
        reply = self.reveal
        now = time.monotonic()
        if not self.stream:
            if reply.message.status is not Status.STREAMING:
                self.reveal = None
                self.message(reply.message)
            elif reply.drawn < 0:
                reply.drawn = 0  # the typing line is drawn once
                self._writing(reply.message.id, None)
            return
        if now < self.next_redraw:
            return
        reply.step(self.word_delay, now)
        if reply.done:
            self.reveal = None
            self.message(reply.message)
        elif reply.drawn != reply.shown:
            reply.drawn = reply.shown
            self.next_redraw = now + redraw_interval(self.room.watchers())
            self._writing(reply.message.id, reply.message.text[: reply.shown])

    def _writing(self, message_id: int, text: str | None) -> None:
        name = escape_markdown(self.settings.assistant_name)
        with self._placeholder(message_id).container():
            bubble(Role.ASSISTANT, f"**{name}** · writing…", text or f"*{name} is typing…*")

    def mark_seen(self, message_id: int) -> None:
        """Tell the room how far this page has shown it (the room tells the store once a second, for every
        page of the process at once)."""
        if message_id > self.seen:
            self.seen = message_id
            self.room.mark_seen(self.my_id, self.session, message_id)

    # --- "Catch me up" -------------------------------------------------------------------------

    def catch_up_divider(self, view: RoomView, since: int) -> None:
        """The line above what this person missed, the button, and their private summary below it."""
        with self._new_slot().container():
            st.markdown(":blue[:material/mark_chat_unread: **New since you were last here**]")
            clicked = st.button(
                "Catch me up",
                key="catch-up",
                icon=":material/summarize:",
                help=f"{self.settings.assistant_name} sums up what you missed; only you see the summary.",
            )
            self.summary = st.empty()
        running = st.session_state.get("catch_up")
        if clicked and (running is None or running.done.is_set()):
            me = view.participant(self.my_id)
            try:
                job = get_catch_ups().start(self.room, self.my_id, me.nickname if me else "", since)
            except (CatchUpRefused, MessageRefused) as refusal:
                job = CatchUp(missed=0, error=str(refusal))
                job.done.set()
            st.session_state.catch_up = self.catch_up_job = job
        self.draw_summary()

    def draw_summary(self) -> None:
        job = self.catch_up_job
        state = None if job is None else (id(job), job.done.is_set())
        if self.summary is None or state == self.summary_drawn:
            return
        self.summary_drawn = state
        if job is None:
            self.summary.empty()
        elif not job.done.is_set():
            self.summary.caption(
                f":material/hourglass_top: Catching you up on {job.missed} message"
                f"{'s' if job.missed != 1 else ''}… only you will see the summary."
            )
        elif job.error:
            self.summary.warning(job.error, icon=":material/error:")
        else:
            with self.summary.container(border=True):
                st.caption(
                    ":material/lock: **Only you can see this summary**; it was not posted to the room."
                )
                st.markdown(job.text)

    def people(self) -> None:
        status = self.status
        with self.slots.people.container():
            people(self.participants, self.my_id, status and status.host, bool(status and status.locked))

    def show_status(self, status: RoomStatus) -> None:
        before, self.status = self.status, status
        name = escape_markdown(self.settings.assistant_name)
        waiting = ", ".join(escape_markdown(n) for n in status.waiting)
        if status.replying_to:
            to = ", ".join(escape_markdown(n) for n in status.replying_to)
            line = f":material/edit: **{name}** is replying to {to}…"
            self.slots.busy.caption(line + (f" · next: {waiting}" if waiting else ""))
        elif waiting:
            self.slots.busy.caption(f":material/schedule: {waiting} · waiting for **{name}**")
        else:
            self.slots.busy.empty()
        if before is None or before.turn != status.turn or before.replying_to != status.replying_to:
            self.stop_button(status)
        if before is None or before.policy_changes != status.policy_changes:
            self.policy_control(status)
        if before is None or (before.host, before.locked) != (status.host, status.locked):
            self.people()
        if self.slots.instructions is not None and (
            before is None or before.instructions != status.instructions
        ):
            with self.slots.instructions.container():
                instructions_line(status.instructions)

    def stop_button(self, status: RoomStatus) -> None:
        """While a reply is written anyone may stop it; a click belongs to the turn it was drawn for."""
        if not status.replying_to:
            self.slots.stop.empty()
        elif self.slots.stop.button(
            "Stop",
            key=f"stop-{status.turn}",
            icon=":material/stop_circle:",
            help="Stop the reply being written",
        ):
            self.room.stop_reply(self.my_id, status.turn)

    def policy_control(self, status: RoomStatus) -> None:
        """Anyone present may change when the assistant speaks; the room tells everyone."""
        name = self.settings.assistant_name
        with self.slots.policy.container():
            # A new key per change: the control is drawn afresh when someone else changes the policy.
            chosen = st.radio(
                "Assistant replies",
                list(POLICY_LABELS),
                index=list(POLICY_LABELS).index(status.policy),
                format_func=POLICY_LABELS.get,
                key=f"policy-{status.policy_changes}",
                help=policy_help(name),
            )
        if chosen is not status.policy:
            self.room.set_reply_policy(self.my_id, chosen)

    def _placeholder(self, message_id: int) -> DeltaGenerator:
        if message_id not in self.placeholders:
            self.placeholders[message_id] = self._new_slot()
        return self.placeholders[message_id]

    def _new_slot(self) -> DeltaGenerator:
        with self.slots.messages:
            slot = st.empty()
        self.slots_used += 1
        # What the page may show, left by this run or an earlier one (a run stopped while drawing leaves
        # fewer elements than the page holds).
        st.session_state.message_slots = max(self.drawn_before, self.slots_used)
        return slot

    # --- following -----------------------------------------------------------------------------

    def follow(self) -> None:
        """Draw the room, then redraw what changes until Streamlit stops this run (a rerun, a closed tab)."""
        view = self.room.view()
        self.draw_all(view)
        version, resets = view.version, self.room.resets
        ends_at = None if LIVE_RUN_SECONDS is None else time.monotonic() + LIVE_RUN_SECONDS
        alive_every = self.settings.heartbeat_timeout_seconds / 3
        alive_said = time.monotonic()
        while ends_at is None or time.monotonic() < ends_at:
            now_version = self._wait(version)
            st.session_state.live_beat = time.monotonic()  # a yield point: a rerun or a closed tab stops here
            if self.room.closed:
                st.rerun(scope="app")  # the room closed (on another process): the page finds the fresh one
            if self.room.resets != resets:
                st.rerun(scope="app")  # Redis came back without its last writes: draw the room as it is
            self.show_problem()
            if time.monotonic() - alive_said > alive_every:  # the heartbeat itself is the hub's (sessions)
                alive_said = time.monotonic()
                if not self.room.here(self.my_id):
                    st.rerun(scope="app")  # this person left (another tab, the reaper): the page asks again
            if now_version != version:
                changes = self.room.changes_since(version)
                version = changes.version
                if changes.participants is not None and all(p.id != self.my_id for p in changes.participants):
                    st.rerun(scope="app")
                self.apply(changes)
            if self.reveal is not None:
                self.draw_reply()
            if self.catch_up_job is not None:
                self.draw_summary()

    def show_problem(self) -> None:
        """While the rooms' store (Redis) cannot be reached, the busy line says so; the page keeps what it has."""
        problem = self.problem()
        if problem == self.problem_shown:
            return
        self.problem_shown = problem
        if problem:
            self.slots.busy.warning(problem, icon=":material/cloud_off:")
        elif self.status is not None:
            self.show_status(self.status)

    def _wait(self, version: int) -> int:
        """Wait for what this page must show next; an idle page wakes once a slice, and costs little."""
        reveal = self.reveal
        if reveal is not None and self.stream and reveal.shown < len(reveal.message.text):
            # Words in hand are revealed at the next redraw; until then only other news wakes the page.
            timeout = min(max(0.0, self.next_redraw - time.monotonic()), WAIT_SLICE_SECONDS)
            return self.room.wait_for_change(version, timeout, reply_growth=False)
        # Caught up: the reply's next words wake a page that streams it; one that does not needs its end.
        return self.room.wait_for_change(version, WAIT_SLICE_SECONDS, reply_growth=self.stream)


def follow_room(
    room: Room, my_id: str, settings: Settings, slots: Slots, problem: Callable[[], str | None]
) -> None:
    """The live conversation of the chat page; runs until Streamlit stops the run.

    `problem`: a sentence to show while the rooms' store cannot be reached, else None.
    """
    st.markdown(HIDE_RUNNING_INDICATOR, unsafe_allow_html=True)  # our own fixed style, no user text
    LivePage(room, my_id, settings, slots, problem).follow()
