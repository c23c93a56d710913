"""The conversation on the chat page: which messages it shows, one placeholder per message in the room's
order, each message drawn once and redrawn in place when it changes, the reply being written revealed
at the page's pace, and what a page left open lets go of (`shared/web/window.py` says which messages)."""

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
from shared.web.window import (
    PAGE_OF_MESSAGES,
    LettingGo,
    anchored,
    earlier_messages_button,  # noqa: F401  (the chat page finds it here)
    page_limit,
    room_key,
    visible_messages,
)

if TYPE_CHECKING:
    from streamlit.delta_generator import DeltaGenerator

# A message that arrives while the page is live shows at once, its row of actions this much later: the row
# is a widget, the costliest element of a bubble (a third of the server's time drawing a new message
# for 100 sessions, under py-spy), and the message itself should not wait for it.
ROW_DELAY_SECONDS = 0.5


class Conversation(LettingGo):
    """The messages of one page, in a container of placeholders made in a place the page script left for it.

    A page open for long holds a bounded number of messages: the oldest leave as new ones come, and with
    them everything the page kept for them (placeholders, drawn parts, rows' keys), except the message
    its person is replying to and a message a reply on the page quotes (its link scrolls to it)."""

    def __init__(
        self,
        room: Room,
        my_id: str,
        settings: Settings,
        container: DeltaGenerator,
        my_name: str = "",
        earlier: DeltaGenerator | None = None,
    ):
        self.room, self.my_id, self.settings = room, my_id, settings
        # Two places, one holding the container of placeholders, the other empty: the conversation is
        # drawn afresh in the empty one (`redraw_all`), which then holds it, across the person's reruns too.
        with container:
            self.places = (st.empty(), st.empty())
        self.at = session.message_place
        self.container = self.places[self.at].container()
        self.earlier = earlier  # where "Show earlier messages" goes once messages leave, if not there yet
        self.my_name = my_name  # their own reactions show selected
        self.menus: set[int] = set()  # the messages whose row of actions this run drew
        self.quoted: set[int] = set()  # the messages a reply quotes: each holds the anchor its link finds
        self.live = False  # past the first drawing of the page: rows of new messages come a little later
        self.rows_due: dict[int, tuple[float, DeltaGenerator, Menu]] = {}  # message id -> (when, slot, row)
        self.stream = session.stream_replies
        self.word_delay = settings.word_delay_ms / 1000
        self.first_shown = 0  # older messages are not on this page
        self.left = 0  # the newest message that left this page: changes to it (or older) are not drawn
        self.limit = PAGE_OF_MESSAGES  # the messages the page opened on: it holds this many and a margin
        self.replying_to: int | None = None  # the message this person replies to stays on the page
        self.quoting: dict[int, int] = {}  # message id -> the message it quotes, for those on the page
        self.divider: DeltaGenerator | None = None  # the catch-up line, while on the page
        self.placeholders: dict[int, DeltaGenerator] = {}  # in the page's order
        self.drawn: dict[int, Drawn] = {}  # what each placeholder shows, part by part
        self.slots_used = 0  # elements in the container, placeholders of messages or not
        self.drawn_before = session.message_slots  # how many earlier runs left there
        self.reveal: Reveal | None = None  # the reply being written, while this page shows it word by word
        self.next_redraw = 0.0
        self.session = session.session_id
        self.seen = 0  # the newest message this page told the room it showed
        self.catch_up = CatchUpBox(room, my_id, settings)

    def draw_all(self, view: RoomView) -> None:
        self.quoted = anchored(view)  # quoted, or chosen among search results
        shown = visible_messages(view)
        self.first_shown = shown[0].id if shown else 0
        self.limit = page_limit(view)
        replying = session.replying_to
        self.replying_to = replying[1] if replying is not None and replying[0] == view.name else None
        self.room_key = room_key(view)
        since = catch_up_since(self.room, view, self.my_id)
        self.catch_up_after = since or 0  # the divider goes once a message it announced leaves the page
        self.catch_up.reread()
        for message in shown:
            if since is not None and message.id > since:
                self.divider = self._new_slot()
                self.catch_up.divider(view, since, self.divider)
                since = None
            self.message(message)
        if since is not None:
            self.divider = self._new_slot()
            self.catch_up.divider(view, since, self.divider)
        self.mark_seen(view.messages[-1].id if view.messages else 0)
        self.live = True
        # A run never ends, so Streamlit never clears what the page's previous runs drew past this one's
        # last element: empty elements take the place of every message they drew beyond these.
        while self.slots_used < self.drawn_before:
            self._new_slot()

    def apply(self, changed: tuple[Message, ...]) -> None:
        shown = [
            m for m in changed if m.id in self.placeholders or m.id >= max(self.first_shown, self.left + 1)
        ]
        self.let_go(room_for=sum(m.id not in self.placeholders for m in shown))  # old ones go before new come
        for message in shown:
            self.message(message)
        if changed:
            self.mark_seen(changed[-1].id)
        self.let_go()

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
        if message.quote is not None:
            self.quoting[message.id] = message.quote.id
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
