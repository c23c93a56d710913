"""Search on the chat page, in the sidebar: the box, the messages found (newest first, with author, time and
a few of their words), and choosing one, which brings it into the conversation and scrolls to it.

The search is made when its person submits it (`shared/search.py` says what it reads), kept for their
reruns, and never made again because of what others did: choosing a result is their own action, the only
other thing that reruns their page. The part always holds the same elements, empty ones included: a live
run never ends, so the browser would keep a result that a later run did not draw again.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import streamlit as st

from shared.messages import Message
from shared.page_policy import SCROLL_TO_MESSAGE
from shared.room import Room, RoomView
from shared.search import MAX_RESULTS, Found, Results, SearchRefused, search
from shared.web.messages import escape_markdown, local_time
from shared.web.session import session
from shared.web.window import bring_in, room_key

if TYPE_CHECKING:
    from streamlit.delta_generator import DeltaGenerator

# Where the page scrolls to (the app's one script, `SCROLL_TO_MESSAGE`, reads it): a number and a time,
# no text of anyone's. The time makes each choice new to the browser, which runs a script again only when
# the element holding it changed.
# The results read as a list, left-aligned (a button centres its label). Our own style, no user text.
RESULTS_STYLE = (
    "<style>[class*='st-key-found-'] button{justify-content:flex-start;text-align:left}"
    "[class*='st-key-found-'] button p{text-align:left}</style>"
)
SCROLL_TO = '<div data-scroll-to="m-{message_id}" data-when="{when}"></div><script>{script}</script>'


def search_box(room: Room) -> None:
    """The search part of the sidebar, for someone in the room. Drawn before the conversation, so that a
    chosen result is on the page this very run."""
    view = room.view()
    key = room_key(view)
    st.html(RESULTS_STYLE)  # styles alone go to the page's head, not among the elements
    with st.form("search-form", border=False, enter_to_submit=True):
        query = st.text_input(
            "Search this room",
            key="search-words",
            placeholder="Words to find",
            help="Finds the messages that hold every word, whatever their case or accents.",
        )
        submitted = st.form_submit_button("Search", icon=":material/search:")
    if submitted:
        try:
            session.search = (key, search(view.messages, query))
        except SearchRefused as refusal:
            session.search = (key, str(refusal))
    kept = session.search
    outcome = kept[1] if kept is not None and kept[0] == key else None
    summary = st.empty()
    slots = [st.empty() for _ in range(MAX_RESULTS)]
    scroll = st.empty()
    chosen = show(outcome, view, summary, slots)
    if chosen is None:  # a result deleted since is not drawn again, so it cannot be chosen
        scroll.empty()
    else:
        bring_in(view, chosen.message_id)
        where = SCROLL_TO.format(
            message_id=int(chosen.message_id), when=time.time_ns(), script=SCROLL_TO_MESSAGE
        )
        scroll.html(where, unsafe_allow_javascript=True)


def show(
    outcome: Results | str | None, view: RoomView, summary: DeltaGenerator, slots: list[DeltaGenerator]
) -> Found | None:
    """What the last search found, one button per message, in `slots`; returns the result chosen now."""
    found: list[Found] = []
    if isinstance(outcome, str):  # why the search was not made
        summary.warning(outcome, icon=":material/search_off:")
    elif outcome is None:
        summary.empty()
    else:
        found = [f for f in outcome.found if _message(view, f.message_id) is not None]
        summary.caption(summary_line(outcome, len(outcome.found) - len(found)))
    chosen = None
    for slot, result in zip(slots, found + [None] * (len(slots) - len(found)), strict=True):
        if result is None:
            slot.empty()
        elif slot.button(
            result_label(result),
            key=f"found-{result.message_id}",
            type="tertiary",
            width="stretch",
            help="Show this message in the conversation",
        ):
            chosen = result
    return chosen


def summary_line(results: Results, deleted: int) -> str:
    """How many messages the search found; `deleted`: of those shown, deleted since."""
    total = results.total - deleted
    if total <= 0:
        return ":material/search_off: No message holds every one of these words."
    found = f"{total:,} message{'s' if total != 1 else ''} found, newest first"
    if results.more:
        found += f"; the newest {len(results.found) - deleted} shown, and {results.more:,} more: add a word"
    return f":material/search: {found}."


def result_label(found: Found) -> str:
    """A result as its button says it: who, when, and a few words of the message, all as text."""
    return f"**{escape_markdown(found.author)}** · {local_time(found.created_at)} · {escape_markdown(found.excerpt)}"


def _message(view: RoomView, message_id: int) -> Message | None:
    """The message with this id, unless its author has deleted it since (ids run 1..n)."""
    if 0 < message_id <= len(view.messages) and not view.messages[message_id - 1].deleted:
        return view.messages[message_id - 1]
    return None
