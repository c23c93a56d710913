"""The sidebar: who is here, which assistant answers and when (the reply policy), the transcript, Leave.

`sidebar` draws it as the room is now; `LiveSidebar` keeps who is here and the policy up to date on the
chat page while others come, go and change the policy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import streamlit as st

from shared import transcript
from shared.config import Settings
from shared.messages import Participant, ReplyPolicy
from shared.room import Room, RoomStatus
from shared.web.membership import leave
from shared.web.messages import escape_markdown

if TYPE_CHECKING:
    from streamlit.delta_generator import DeltaGenerator

POLICY_LABELS = {
    ReplyPolicy.EVERY_MESSAGE: "Every message",
    ReplyPolicy.WHEN_MENTIONED: "Only when mentioned",
    ReplyPolicy.WHEN_HELPFUL: "When it can help",
}


def sidebar(
    room: Room, me: Participant | None, settings: Settings, assistant_label: str
) -> tuple[DeltaGenerator, DeltaGenerator]:
    """Who is here, the assistant, and the person's controls; returns the slots the live page keeps
    up to date (who is here, and the reply policy), drawn here as the room is now."""
    view = room.view()
    with st.sidebar:
        st.header("In this room")
        people_slot = st.empty()
        with people_slot.container():
            people(view.participants, me.id if me is not None else None, view.host, view.status.locked)
        st.markdown(f":material/pets: **{escape_markdown(settings.assistant_name)}** · {assistant_label}")
        policy_slot = st.empty()
        if me is not None:
            transcript_downloads(room)
            if st.button("Leave the room", icon=":material/logout:"):
                leave(room, me)
                st.rerun()
    return people_slot, policy_slot


def people(
    participants: tuple[Participant, ...], my_id: str | None, host: str | None = None, locked: bool = False
) -> None:
    """Who is here, as one element however many they are (the live page must not leave a name behind)."""
    lines = [
        f":material/person: {escape_markdown(p.nickname)}"
        + (" (host)" if p.id == host else "")
        + (" (you)" if p.id == my_id else "")
        for p in participants
    ]
    if locked:
        lines.append(":material/lock: *Locked by the host: nobody new may join.*")
    st.markdown("  \n".join(lines) or "*Nobody yet.*")


def policy_help(name: str) -> str:
    return (
        f"Every message: {name} answers each batch of messages. Only when mentioned: {name} answers "
        f"messages that contain @{name}, knowing what was said before. When it can help: after each batch "
        f"of messages a small separate request decides whether {name} has something useful to say (a "
        f"mention always gets an answer); what it lets pass it still hears with its next reply."
    )


def transcript_downloads(room: Room) -> None:
    """The transcript to take away, e.g. before the room empties and starts fresh.

    The files are made when clicked, so they hold everything up to that moment and cost nothing before.
    """
    stem = transcript.file_stem(room.name, room.created_at)
    for label, (render, suffix, mime, icon) in transcript.FORMATS.items():
        st.download_button(
            f"Download {label}",
            lambda render=render: render(room.view()),
            file_name=f"{stem}.{suffix}",
            mime=mime,
            icon=icon,
            on_click="ignore",
        )


class LiveSidebar:
    """Who is here and the reply policy, redrawn in their slots when the room says they changed."""

    def __init__(
        self, room: Room, my_id: str, settings: Settings, people: DeltaGenerator, policy: DeltaGenerator
    ):
        self.room, self.my_id, self.settings = room, my_id, settings
        self.people_slot, self.policy_slot = people, policy
        self.participants: tuple[Participant, ...] = ()
        self.status: RoomStatus | None = None

    def show_people(self, participants: tuple[Participant, ...]) -> None:
        self.participants = participants
        status = self.status
        with self.people_slot.container():
            people(participants, self.my_id, status and status.host, bool(status and status.locked))

    def show_status(self, status: RoomStatus) -> None:
        """The policy when someone changed it; who is here when the host or the lock changed."""
        before, self.status = self.status, status
        if before is None or before.policy_changes != status.policy_changes:
            self.policy_control(status)
        if before is None or (before.host, before.locked) != (status.host, status.locked):
            self.show_people(self.participants)

    def policy_control(self, status: RoomStatus) -> None:
        """Anyone present may change when the assistant speaks; the room tells everyone."""
        with self.policy_slot.container():
            # A new key per change: the control is drawn afresh when someone else changes the policy.
            chosen = st.radio(
                "Assistant replies",
                list(POLICY_LABELS),
                index=list(POLICY_LABELS).index(status.policy),
                format_func=POLICY_LABELS.get,
                key=f"policy-{status.policy_changes}",
                help=policy_help(escape_markdown(self.settings.assistant_name)),
            )
        if chosen is not status.policy:
            self.room.set_reply_policy(self.my_id, chosen)
