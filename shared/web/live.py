"""The live loop of the chat page: one long run per page that follows the room and hands each change to
the part of the page it belongs to (the conversation, the status line, the sidebar, the instructions).

Everything other people change lives in placeholders made at the start of the run and is redrawn from
`Room.changes_since`, so nobody's page reruns because of what someone else did. A page reruns only for
its own person's actions: sending, the toggle, Stop, the policy, leaving, moving to another page.
No periodic browser tick keeps the page live: a tick that lands while a message is on its way can make
Streamlit drop the message, so the run itself never ends on its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import streamlit as st

from shared.config import Settings
from shared.messages import Participant
from shared.room import Room, RoomChanges, RoomStatus
from shared.web.conversation import Conversation
from shared.web.header import instructions_line
from shared.web.mentions import Notices
from shared.web.messages import ANCHOR_STYLE
from shared.web.notes import notes_panel
from shared.web.session import waits
from shared.web.sidebar import LiveSidebar
from shared.web.status_line import StatusLine

if TYPE_CHECKING:
    from streamlit.delta_generator import DeltaGenerator

# How long an idle page waits before it touches Streamlit, where Streamlit stops a run that was replaced by
# a rerun (which starts at once in a thread of its own: fast reruns) or whose tab closed. Each slice costs
# an idle page one wake-up (0.25 s slices cost an idle Chromium page twice the server CPU of these); a
# longer one only lets a replaced run, or the run of a closed tab, linger that long.
WAIT_SLICE_SECONDS = 0.5
# Pages follow the room until their person acts or the tab closes; the AppTest suite sets a bound so that
# a run ends and its page can be read.
LIVE_RUN_SECONDS: float | None = None
HIDE_RUNNING_INDICATOR = "<style>[data-testid='stStatusWidget']{visibility:hidden}</style>"


@dataclass
class Slots:
    """The placeholders the live run owns, made by the page script where each belongs on the page."""

    people: DeltaGenerator  # in the sidebar
    policy: DeltaGenerator  # in the sidebar
    earlier: DeltaGenerator | None  # where "Show earlier messages" goes once messages leave the page
    messages: DeltaGenerator  # a container: the conversation's own containers are made in it
    busy: DeltaGenerator  # who the assistant is replying to, and who waits next
    stop: DeltaGenerator  # the Stop button while a reply is written
    instructions: DeltaGenerator  # the room's instructions in one line, under the title
    notes: DeltaGenerator  # the room's notes, folded, under them


class LivePage:
    def __init__(self, room: Room, me: Participant, settings: Settings, slots: Slots, notices: Notices):
        self.room, self.my_id, self.slots, self.notices = room, me.id, slots, notices
        self.conversation = Conversation(room, me.id, settings, slots.messages, me.nickname, slots.earlier)
        self.status_line = StatusLine(room, me.id, settings, slots.busy, slots.stop)
        self.sidebar = LiveSidebar(room, me.id, settings, slots.people, slots.policy)
        self.status: RoomStatus | None = None
        self.version = 0  # of the room, as this page shows it
        self.alive_every = settings.heartbeat_timeout_seconds / 3
        self.invite = room.invite_secret  # a private room's link as the page shows it

    def follow(self, problem: Callable[[], str | None]) -> None:
        """Draw the room, then redraw what changes until Streamlit stops this run (a rerun, a closed tab)."""
        view = self.room.view()
        self.conversation.draw_all(view)
        self.sidebar.participants = view.participants
        self.show_status(view.status)
        self.version, resets, alive_said = view.version, self.room.resets, time.monotonic()
        self.notices.check()
        for version in waits(
            lambda: self.conversation.wait(self.version, WAIT_SLICE_SECONDS), LIVE_RUN_SECONDS
        ):
            if self.room.closed or self.room.resets != resets:
                st.rerun(scope="app")  # closed on another process, or Redis came back without its last writes
            self.status_line.show_problem(problem())
            self.notices.check()  # mentions of this person in their other rooms, once a second at most
            if time.monotonic() - alive_said > self.alive_every:  # the heartbeat itself is the hub's
                alive_said = time.monotonic()
                if not self.room.here(self.my_id):
                    st.rerun(scope="app")  # this person left (another tab, the reaper): the page asks again
            if version != self.version:
                if self.room.invite_secret != self.invite:
                    st.rerun(
                        scope="app"
                    )  # a Remove changed the private room's link: the page shows the new one
                changes = self.room.changes_since(self.version)
                self.version = changes.version
                self.apply(changes)
            self.conversation.draw_reply()
            self.conversation.draw_due_rows()
            if self.conversation.catch_up.job is not None:
                self.conversation.catch_up.draw()

    def apply(self, changes: RoomChanges) -> None:
        if changes.participants is not None and all(p.id != self.my_id for p in changes.participants):
            st.rerun(scope="app")
        self.conversation.apply(changes.messages)
        if changes.participants is not None:
            self.sidebar.show_people(changes.participants)
        if changes.status != self.status:
            self.show_status(changes.status)

    def show_status(self, status: RoomStatus) -> None:
        before, self.status = self.status, status
        self.status_line.show(status)
        self.sidebar.show_status(status)
        if before is None or before.instructions != status.instructions:
            with self.slots.instructions.container():
                instructions_line(status.instructions)
        if before is None or before.notes != status.notes:
            with self.slots.notes.container():
                notes_panel(status.notes)


def follow_room(
    room: Room,
    me: Participant,
    settings: Settings,
    slots: Slots,
    problem: Callable[[], str | None],
    notices: Notices,
) -> None:
    """The live conversation of the chat page; runs until Streamlit stops the run.

    `problem`: a sentence to show while the rooms' store cannot be reached, else None; `notices`: tells of
    mentions in the person's other rooms.
    """
    # Our own fixed styles, no user text.
    st.markdown(HIDE_RUNNING_INDICATOR + ANCHOR_STYLE, unsafe_allow_html=True)
    LivePage(room, me, settings, slots, notices).follow(problem)
