"""Which messages a chat page holds: the latest page of them when it opens, more on "Show earlier
messages", and, on a page left open, a bound past which the oldest leave as new ones come."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import streamlit as st

from shared.messages import Message, Role
from shared.room import RoomView
from shared.web.session import session

if TYPE_CHECKING:
    from streamlit.delta_generator import DeltaGenerator

    from shared.web.messages import Drawn
    from shared.web.reveal import Reveal

# How many of the latest messages a page shows before "Show earlier messages". Every run of the person's
# own (each message they send) draws them all again, and the browser draws every one afresh: in the bench
# (a room of 203 messages) 25 rather than 50 took a message to 5 Chromium pages at p95 0.69 s, not 0.85,
# to 100 emulated ones at 0.63 s, not 0.79, and a reply streaming to them from 51 % of a core to 47 %.
PAGE_OF_MESSAGES = 25
# A page left open lets go of its oldest messages as new ones come, past a page more than it opened on (or
# than the person asked for with "Show earlier messages"): every message a page holds costs it at every
# change (on main, a page open through 2,000 messages held 1,510 and took a new one in 1.2 s, not 0.09).
# A whole page of margin, not half: a page's own rerun keeps up to twice its limit in place
# (`visible_messages`), so a live page never holds what a rerun would not, and someone who scrolled up to
# read has a page of messages' time before what they read leaves. docs/long-page.md
MARGIN_OF_MESSAGES = PAGE_OF_MESSAGES
# A message that leaves a live page leaves an empty element in its place (Streamlit keeps every element of
# a run that never ends); past this many, the page draws its conversation afresh in a new container, so
# the browser drops them too and the page stays the same size however long it is open.
EMPTIES_BEFORE_REDRAW = 4 * PAGE_OF_MESSAGES


def visible_messages(view: RoomView) -> list[Message]:
    """The messages a page shows at the start of its run: the latest ones, from where the last run began.

    The first message stays put across the person's own reruns until twice a page of messages is shown,
    so a rerun redraws the same messages in the same places (nothing moves, nothing is briefly doubled).
    """
    shown = _shown(view.messages)
    limit = page_limit(view)
    latest = shown[-limit:]
    if not latest:
        return latest
    shown_in, first = session.first_shown or (None, 0)
    kept = [m for m in shown if m.id >= first]
    if shown_in != room_key(view) or first > latest[0].id or len(kept) > 2 * limit:
        kept = latest
        session.first_shown = (room_key(view), latest[0].id)
    return kept


def _shown(messages: tuple[Message, ...]) -> list[Message]:
    """The messages a page shows: all but a reply that has not begun (its page shows it as it comes)."""
    return [m for m in messages if not (m.role is Role.ASSISTANT and not m.text and not m.attachments)]


def room_key(view: RoomView) -> tuple[str, object]:
    return (view.name, view.created_at)  # a room opened again under the same name is another room


def page_limit(view: RoomView) -> int:
    """How many of this room's latest messages the page shows: one page, more once the person asked."""
    asked_in, limit = session.shown_limit or (None, PAGE_OF_MESSAGES)
    return limit if asked_in == room_key(view) else PAGE_OF_MESSAGES


def anchored(view: RoomView) -> set[int]:
    """The messages that hold an anchor (`#m-ID`): those a reply quotes (its link scrolls there), and the
    one this person chose among search results."""
    quoted = {m.quote.id for m in view.messages if m.quote is not None}
    found_in, found = session.found or (None, 0)
    return quoted | {found} if found_in == room_key(view) else quoted


def bring_in(view: RoomView, message_id: int) -> None:
    """Show the room from `message_id` on (a search result chosen): the page's limit grows to hold it, if
    it is older than what the page shows, and the message holds the anchor the page scrolls to."""
    key = room_key(view)
    from_there = [m for m in _shown(view.messages) if m.id >= message_id]
    if len(from_there) > page_limit(view):
        # From that message on, however many come before the page draws.
        session.shown_limit = (key, len(from_there))
        session.first_shown = (key, message_id)
    session.found = (key, message_id)


def earlier_messages_button(view: RoomView) -> DeltaGenerator | None:
    """Older messages on demand, so a long history costs nothing until someone asks for it.

    Returns the button's place while it is empty (the room is not longer than a page): the live page draws
    the button there once messages leave it."""
    slot = st.empty()  # one element either way, so the elements after it keep their places on a rerun
    limit = page_limit(view)
    if len(view.messages) <= limit and limit == PAGE_OF_MESSAGES:
        slot.empty()
        return slot
    elif len(view.messages) <= limit:
        # Pressed, and now every message is here. The button stays, greyed: the browser would keep the
        # pressed one, faded, beside anything else drawn in its place (a live run never ends).
        slot.button("Show earlier messages", key="earlier", icon=":material/expand_less:", disabled=True)
    elif slot.button("Show earlier messages", key="earlier", icon=":material/expand_less:"):
        # A page more than it shows: a page left open may show more than its limit (up to the margin).
        shown_in, first = session.first_shown or (None, 0)
        held = sum(m.id >= first for m in view.messages) if shown_in == room_key(view) else 0
        session.shown_limit = (room_key(view), max(limit, held) + PAGE_OF_MESSAGES)
        del session.first_shown
        st.rerun()
    return None


def forget_rows(message_id: int, *, keep_count: bool = False) -> None:
    """Forget the values of every row of actions this message had on the page: it left the page, or
    (`keep_count`) its row is drawn afresh under a new key (this run's keys cannot be used twice)."""
    drawings = session.menu_drawings
    last = drawings.get(message_id, -1) if keep_count else drawings.pop(message_id, -1)
    for drawing in range(last + 1):
        session.forget_widget(f"act-{message_id}-{drawing}")
        session.forget_widget(f"menu-{message_id}-{drawing}")


class LettingGo:
    """What a live page lets go of: `shared.web.conversation.Conversation`'s oldest messages, past its bound."""

    # Kept by the Conversation, in the page's order:
    placeholders: dict[int, DeltaGenerator]
    drawn: dict[int, Drawn]
    quoting: dict[int, int]
    quoted: set[int]
    menus: set[int]
    rows_due: dict[int, Any]
    reveal: Reveal | None
    divider: DeltaGenerator | None
    catch_up: Any
    catch_up_after: int
    earlier: DeltaGenerator | None
    places: tuple[DeltaGenerator, DeltaGenerator]
    at: int
    container: DeltaGenerator
    limit: int
    left: int
    first_shown: int
    replying_to: int | None
    room_key: tuple[str, object]
    slots_used: int
    drawn_before: int
    # and drawn by it: `_redraw(message_id, parts)`, `_placeholder(message_id)`.

    def let_go(self, room_for: int = 0) -> None:
        """The oldest messages leave the page while it holds more than its limit and the margin (with
        `room_for` more to come); once the empty elements they leave behind are many, the conversation is
        drawn afresh without them."""
        bound = self.limit + MARGIN_OF_MESSAGES - room_for
        if len(self.placeholders) <= bound:
            return
        kept = {q for m, q in self.quoting.items() if m in self.placeholders} | {self.replying_to}
        if self.reveal is not None:
            kept.add(self.reveal.message.id)
        leaving = [i for i in self.placeholders if i not in kept][: len(self.placeholders) - bound]
        for message_id in leaving:
            self.placeholders.pop(message_id).empty()
            self.drawn.pop(message_id, None)
            self.quoting.pop(message_id, None)
            self.rows_due.pop(message_id, None)
            self.menus.discard(message_id)
            self.quoted.discard(message_id)
            forget_rows(message_id)
            self.left = max(self.left, message_id)
        if self.divider is not None and any(i > self.catch_up_after for i in leaving):
            self.divider.empty()  # what this person missed has left the page: its line and summary go too
            self.divider, self.catch_up.summary = None, None
        first = min(self.placeholders, default=0)
        self.first_shown = max(self.first_shown, self.left + 1)
        session.first_shown = (self.room_key, first)  # the person's next run starts where this page does
        if self.earlier is not None:  # the page opened on the whole room: now there is more to show
            self.earlier.button("Show earlier messages", key="earlier", icon=":material/expand_less:")
            self.earlier = None
        if self.slots_used - len(self.placeholders) >= EMPTIES_BEFORE_REDRAW and self.divider is None:
            self.redraw_all()

    def redraw_all(self) -> None:
        """The messages on the page, drawn afresh in a new container in the other place, then the old one
        emptied: with the empty elements left where messages were, it leaves the browser.

        Not in the same place: a container drawn in place of another keeps the old one's elements, and
        emptying the place first does not help, since Streamlit sends only the last of two changes to one
        element that wait to be sent together."""
        drawn = [(i, self.drawn.get(i)) for i in self.placeholders]
        for message_id, _ in drawn:
            forget_rows(message_id, keep_count=True)
        old, self.at = self.places[self.at], 1 - self.at
        session.message_place = self.at
        self.container = self.places[self.at].container()
        self.placeholders, self.drawn = {}, {}
        self.slots_used = self.drawn_before = 0
        for message_id, parts in drawn:
            if self.reveal is not None and self.reveal.message.id == message_id:
                self.reveal.drawn = -1  # drawn again at the next redraw
                self._placeholder(message_id)
            elif parts is not None:
                self._redraw(message_id, parts.parts)
            else:
                self._placeholder(message_id)
        old.empty()
