"""“Catch me up” on the chat page: the line above what this person missed, the button, and the private
summary under it (written by `shared/catch_up.py`, seen by this person alone)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import streamlit as st

from shared.catch_up import CatchUp, missed_messages
from shared.config import Settings
from shared.errors import CatchUpRefused, MessageRefused
from shared.room import Room, RoomView
from shared.web.messages import escape_markdown, pictures_as_links
from shared.web.resources import get_catch_ups
from shared.web.session import session

if TYPE_CHECKING:
    from streamlit.delta_generator import DeltaGenerator


def catch_up_since(room: Room, view: RoomView, my_id: str) -> int | None:
    """The last message this person's pages showed before this page came, if others said more since.

    Decided on the page's first run in the room and kept for the session (`session.catch_up_since`), so
    the divider stays put across the person's own reruns.
    """
    room_key = (view.name, view.created_at)
    kept = session.catch_up_since
    if kept is None or kept[0] != room_key:
        last = room.last_seen(my_id)
        since = last if last is not None and missed_messages(view.messages, last, my_id) else None
        kept = session.catch_up_since = (room_key, since)
        del session.catch_up  # another room's summary
    return kept[1]


class CatchUpBox:
    def __init__(self, room: Room, my_id: str, settings: Settings):
        self.room, self.my_id, self.settings = room, my_id, settings
        # The catch-up this page asked for, read once per run: a session-state read on every wake-up
        # would cost each idle page as much as the rest of its wake-up.
        self.job: CatchUp | None = session.catch_up
        self.summary: DeltaGenerator | None = None  # where this person's private catch-up appears
        self.drawn: tuple[int, bool] | None = None

    def reread(self) -> None:
        self.job = session.catch_up  # none if this is another room's page

    def divider(self, view: RoomView, since: int, slot: DeltaGenerator) -> None:
        """The line above what this person missed, the button, and their private summary below it."""
        with slot.container():
            st.markdown(":blue[:material/mark_chat_unread: **New since you were last here**]")
            clicked = st.button(
                "Catch me up",
                key="catch-up",
                icon=":material/summarize:",
                help=f"{escape_markdown(self.settings.assistant_name)} sums up what you missed; only you see the "
                "summary.",
            )
            self.summary = st.empty()
        running = session.catch_up
        if clicked and (running is None or running.done.is_set()):
            me = view.participant(self.my_id)
            try:
                job = get_catch_ups().start(self.room, self.my_id, me.nickname if me else "", since)
            except (CatchUpRefused, MessageRefused) as refusal:
                job = CatchUp(missed=0, error=str(refusal))
                job.done.set()
            session.catch_up = self.job = job
        self.draw()

    def draw(self) -> None:
        job = self.job
        state = None if job is None else (id(job), job.done.is_set())
        if self.summary is None or state == self.drawn:
            return
        self.drawn = state
        if job is None:
            self.summary.empty()
        elif not job.done.is_set():
            self.summary.caption(
                f":material/hourglass_top: Catching you up on {job.missed} message"
                f"{'s' if job.missed != 1 else ''}… only you will see the summary."
            )
        elif job.error:
            # Plain words, but they may quote the model's server: shown as text, never as Markdown.
            self.summary.warning(escape_markdown(job.error), icon=":material/error:")
        else:
            with self.summary.container(border=True):
                st.caption(
                    ":material/lock: **Only you can see this summary**; it was not posted to the room."
                )
                st.markdown(pictures_as_links(job.text))  # the model wrote it
