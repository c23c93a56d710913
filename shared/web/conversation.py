"""The conversation on the chat page: which messages it shows, one placeholder per message in the room's
order, each message drawn once and redrawn in place when it changes, the reply being written revealed
at the page's pace, and "Show earlier messages"."""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING

import streamlit as st

from shared.config import Settings
from shared.messages import Message, Role, Status
from shared.room import Room, RoomView
from shared.web.actions import Menu, draw_menu
from shared.web.catch_up_box import CatchUpBox, catch_up_since
from shared.web.messages import Drawn, Parts, message_parts, redraw, writing_parts
from shared.web.reveal import Reveal, redraw_interval
from shared.web.session import session

if TYPE_CHECKING:
    from streamlit.delta_generator import DeltaGenerator

# How many of the latest messages a page shows before "Show earlier messages". Every run of the person's
# own (each message they send) draws them all again, and the browser draws every one afresh: in the bench
# (a room of 203 messages) 25 rather than 50 took a message to 5 Chromium pages at p95 0.69 s, not 0.85,
# to 100 emulated ones at 0.63 s, not 0.79, and a reply streaming to them from 51 % of a core to 47 %.
PAGE_OF_MESSAGES = 25
# A message that arrives while the page is live shows at once, its row of actions this much later: the row
# is a widget, the costliest element of a bubble (a third of the server's time drawing a new message
# for 100 sessions, under py-spy), and the message itself should not wait for it.
ROW_DELAY_SECONDS = 0.5


def visible_messages(view: RoomView) -> list[Message]:
    """The messages a page shows at the start of its run: the latest ones, from where the last run began.

    The first message stays put across the person's own reruns until twice a page of messages is shown,
    so a rerun redraws the same messages in the same places (nothing moves, nothing is briefly doubled).
    """
    shown = [m for m in view.messages if not (m.role is Role.ASSISTANT and not m.text and not m.attachments)]
    limit = page_limit(view)
    latest = shown[-limit:]
    if not latest:
        return latest
    room_key, first = session.first_shown or (None, 0)
    kept = [m for m in shown if m.id >= first]
    if room_key != _room_key(view) or first > latest[0].id or len(kept) > 2 * limit:
        kept = latest
        session.first_shown = (_room_key(view), latest[0].id)
    return kept


def _room_key(view: RoomView) -> tuple[str, object]:
    return (view.name, view.created_at)  # a room opened again under the same name is another room


def page_limit(view: RoomView) -> int:
    """How many of this room's latest messages the page shows: one page, more once the person asked."""
    room_key, limit = session.shown_limit or (None, PAGE_OF_MESSAGES)
    return limit if room_key == _room_key(view) else PAGE_OF_MESSAGES


def earlier_messages_button(view: RoomView) -> None:
    """Older messages on demand, so a long history costs nothing until someone asks for it."""
    slot = st.empty()  # one element either way, so the elements after it keep their places on a rerun
    limit = page_limit(view)
    if len(view.messages) <= limit and limit == PAGE_OF_MESSAGES:
        slot.empty()
    elif len(view.messages) <= limit:
        # Pressed, and now every message is here. The button stays, greyed: the browser would keep the
        # pressed one, faded, beside anything else drawn in its place (a live run never ends).
        slot.button("Show earlier messages", key="earlier", icon=":material/expand_less:", disabled=True)
    elif slot.button("Show earlier messages", key="earlier", icon=":material/expand_less:"):
        session.shown_limit = (_room_key(view), limit + PAGE_OF_MESSAGES)
        del session.first_shown
        st.rerun()


class Conversation:
    """The messages of one page, in a container of placeholders made by the page script."""

    def __init__(
        self, room: Room, my_id: str, settings: Settings, container: DeltaGenerator, my_name: str = ""
    ):
        self.room, self.my_id, self.settings, self.container = room, my_id, settings, container
        self.my_name = my_name  # their own reactions show selected
        self.menus: set[int] = set()  # the messages whose row of actions this run drew
        self.quoted: set[int] = set()  # the messages a reply quotes: each holds the anchor its link finds
        self.live = False  # past the first drawing of the page: rows of new messages come a little later
        self.rows_due: dict[int, tuple[float, DeltaGenerator, Menu]] = {}  # message id -> (when, slot, row)
        self.stream = session.stream_replies
        self.word_delay = settings.word_delay_ms / 1000
        self.first_shown = 0  # older messages are not on this page
        self.placeholders: dict[int, DeltaGenerator] = {}
        self.drawn: dict[int, Drawn] = {}  # what each placeholder shows, part by part
        self.slots_used = 0  # elements in the container, placeholders of messages or not
        self.drawn_before = session.message_slots  # how many earlier runs left there
        self.reveal: Reveal | None = None  # the reply being written, while this page shows it word by word
        self.next_redraw = 0.0
        self.session = session.session_id
        self.seen = 0  # the newest message this page told the room it showed
        self.catch_up = CatchUpBox(room, my_id, settings)

    def draw_all(self, view: RoomView) -> None:
        self.quoted = {m.quote.id for m in view.messages if m.quote is not None}
        shown = visible_messages(view)
        self.first_shown = shown[0].id if shown else 0
        since = catch_up_since(self.room, view, self.my_id)
        self.catch_up.reread()
        for message in shown:
            if since is not None and message.id > since:
                self.catch_up.divider(view, since, self._new_slot())
                since = None
            self.message(message)
        if since is not None:
            self.catch_up.divider(view, since, self._new_slot())
        self.mark_seen(view.messages[-1].id if view.messages else 0)
        self.live = True
        # A run never ends, so Streamlit never clears what the page's previous runs drew past this one's
        # last element: empty elements take the place of every message they drew beyond these.
        while self.slots_used < self.drawn_before:
            self._new_slot()

    def apply(self, changed: tuple[Message, ...]) -> None:
        for message in changed:
            if message.id >= self.first_shown:
                self.message(message)
        if changed:
            self.mark_seen(changed[-1].id)

    def message(self, message: Message) -> None:
        self._placeholder(message.id)  # made now, so the page keeps the room's order
        if self.reveal is not None and self.reveal.message.id == message.id:
            self.reveal.message = message  # a finished reply is still revealed at the page's pace
            return self.draw_reply()
        if message.role is Role.ASSISTANT and message.status is Status.STREAMING:
            if self.reveal is not None:  # the next reply started: the last one is shown whole
                earlier, self.reveal = self.reveal.message, None
                self.message(earlier)
            self.reveal = Reveal(message)
            return self.draw_reply()
        self._anchor(message)
        parts = message_parts(message, self.my_id, self.my_name, quoted=message.id in self.quoted)
        self._redraw(message.id, parts)

    def _anchor(self, message: Message) -> None:
        """A reply quotes a message for the first time: that message (if on the page) gets its anchor."""
        quote = message.quote
        if quote is None or quote.id in self.quoted:
            return
        self.quoted.add(quote.id)
        drawn = self.drawn.get(quote.id)
        writing = self.reveal is not None and self.reveal.message.id == quote.id
        if drawn is not None and drawn.parts.who is not Role.SYSTEM and not writing:
            self._redraw(quote.id, dataclasses.replace(drawn.parts, anchor=quote.id))

    def draw_reply(self) -> None:
        """The reply being written: the words due so far, at most once per redraw interval."""
        reply = self.reveal
        if reply is None:
            return
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

    def wait(self, version: int, slice_seconds: float) -> int:
        """Wait for what this page must show next; an idle page wakes once a slice, and costs little."""
        if self.rows_due:  # a row of actions is due: wake for it
            due = min(when for when, _, _ in self.rows_due.values())
            slice_seconds = min(slice_seconds, max(0.0, due - time.monotonic()))
        reveal = self.reveal
        if reveal is not None and self.stream and reveal.shown < len(reveal.message.text):
            # Words in hand are revealed at the next redraw; until then only other news wakes the page.
            timeout = min(max(0.0, self.next_redraw - time.monotonic()), slice_seconds)
            return self.room.wait_for_change(version, timeout, reply_growth=False)
        # Caught up: the reply's next words wake a page that streams it; one that does not needs its end.
        return self.room.wait_for_change(version, slice_seconds, reply_growth=self.stream)

    def mark_seen(self, message_id: int) -> None:
        """Tell the room how far this page has shown it (the room tells the store once a second, for every
        page of the process at once)."""
        if message_id > self.seen:
            self.seen = message_id
            self.room.mark_seen(self.my_id, self.session, message_id)

    def _writing(self, message_id: int, text: str | None) -> None:
        self._redraw(message_id, writing_parts(self.settings.assistant_name, text))

    def _redraw(self, message_id: int, parts: Parts) -> None:
        """Only what changed since this run drew the message goes to the page."""
        slot = self._placeholder(message_id)
        drawn = self.drawn.get(message_id)
        self.drawn[message_id] = redraw(slot, drawn, parts, self.room.attachments, self._draw_menu)

    def draw_due_rows(self) -> None:
        """The rows of actions of messages that came while the page was live, once they are due."""
        now = time.monotonic()
        for message_id, (when, slot, row) in list(self.rows_due.items()):
            if when <= now:
                del self.rows_due[message_id]
                self._draw_menu(slot, row, now=True)

    def _draw_menu(self, slot: DeltaGenerator, row: Menu | None, *, now: bool = False) -> None:
        """A message's row of actions: first with the key the page shows, then a new key per redraw."""
        if row is None:  # nobody can act on it any more (deleted): a row still due is not drawn
            self.rows_due = {i: due for i, due in self.rows_due.items() if due[1] is not slot}
            slot.empty()
            return
        due = self.rows_due.get(row.message_id)
        if not now and (due is not None or (self.live and row.message_id not in self.menus)):
            when = due[0] if due is not None else time.monotonic() + ROW_DELAY_SECONDS
            self.rows_due[row.message_id] = (when, slot, row)  # the latest row, at the first due time
            return
        shown = session.menu_drawings
        drawing = shown.get(row.message_id, 0) + (row.message_id in self.menus)
        shown[row.message_id] = drawing
        self.menus.add(row.message_id)
        draw_menu(slot, row, drawing, self.room, self.my_id)

    def _placeholder(self, message_id: int) -> DeltaGenerator:
        if message_id not in self.placeholders:
            self.placeholders[message_id] = self._new_slot()
        return self.placeholders[message_id]

    def _new_slot(self) -> DeltaGenerator:
        with self.container:
            slot = st.empty()
        self.slots_used += 1
        # What the page may show, left by this run or an earlier one (a run stopped while drawing leaves
        # fewer elements than the page holds).
        session.message_slots = max(self.drawn_before, self.slots_used)
        return slot
