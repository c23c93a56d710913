"""Routing between the app's pages: the menu, which room a page shows (`?room=`, a private room's
`?invite=`), and the app's own navigation on a first visit straight to a page.

On a fresh server Streamlit runs a main script with a `pages/` folder beside it in its older automatic
multipage mode, until some session calls `st.navigation`: a first visit straight to /about runs
`pages/about.py` without `app.py`, under a menu of file names ("app, about, chat, room, rooms"). So every
page script calls `own_navigation()` first: in such a run it sets up the app's navigation (which turns
that mode off for the whole process) and runs the page again, now through `app.py`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import streamlit as st

from shared.errors import RoomRefused
from shared.hub import DEFAULT_ROOM, RoomNameInvalid, clean_room_name
from shared.room import Room
from shared.store import StoreUnavailable
from shared.web.membership import participant_token
from shared.web.resources import get_hub, wait_for_the_store
from shared.web.session import session

log = logging.getLogger(__name__)

ROOM_PARAM = "room"
INVITE_PARAM = "invite"  # a private room's secret, in its invite link
CHAT_PAGE = "pages/chat.py"
ROOM_PAGE = "pages/room.py"
ROOMS_PAGE = "pages/rooms.py"
ABOUT_PAGE = "pages/about.py"
APP_TITLE = "Shared chat room"  # the browser tab's title; the unread count goes before it (web/mentions.py)
PAGE_ICON = Path(__file__).with_name("page_icon.svg")  # Google's Material Icons "forum" (Apache-2.0)
_navigation_set = False  # whether this process has called `st.navigation` (see `own_navigation`)


def app_navigation() -> st.Page:
    """Set up the page and the navigation between the app's pages; returns the page to show."""
    global _navigation_set
    # The tab's icon from a file of ours, sent with the page: Streamlit's front end fetches a `:material/...:`
    # page icon from Google's font service (the icons in the menu come with Streamlit's own font).
    st.set_page_config(page_title=APP_TITLE, page_icon=PAGE_ICON, layout="centered")
    page = st.navigation(
        [
            st.Page(CHAT_PAGE, title="Chat room", icon=":material/forum:", default=True),
            st.Page(ROOM_PAGE, title="This room", icon=":material/info:"),
            st.Page(ROOMS_PAGE, title="Rooms", icon=":material/meeting_room:"),
            st.Page(ABOUT_PAGE, title="About", icon=":material/help:"),
        ]
    )
    _navigation_set = True
    return page


def own_navigation() -> None:
    """In a run that Streamlit's automatic menu started, put the app's own navigation in its place.

    Streamlit leaves that mode for good in the first `st.navigation` of the process, which is always
    `app_navigation`'s: until then, a page script runs without `app.py` only in that mode. The rerun
    runs the same page, at the same address, through `app.py`, so its widgets have the identity they have
    in every other run; nothing was drawn or sent yet (this is a session's first run).
    """
    if _navigation_set:
        return
    log.info("a page was opened before app.py set up the navigation; setting it up now")
    app_navigation()
    st.rerun()


def room_name() -> str:
    """The room this page shows: `?room=` in the address, else the last one, else the lobby."""
    raw = st.query_params.get(ROOM_PARAM) or session.room
    try:
        name = clean_room_name(raw)
    except RoomNameInvalid as error:
        st.error(str(error), icon=":material/meeting_room:")
        st.page_link(CHAT_PAGE, label="Go to the lobby", query_params={ROOM_PARAM: DEFAULT_ROOM})
        st.stop()
    session.room = name
    if st.query_params.get(ROOM_PARAM) != name:
        st.query_params[ROOM_PARAM] = name
    return name


def current_room() -> Room | None:
    """The room this page shows; None if nobody is in it (looking at a room opens nothing: the first join
    does). A page that cannot show it says why (private, closed) and stops.

    Someone in a private room stays in when its invite link changes (a Remove changes it): their page
    takes the new link.
    """
    name = room_name()
    invites = session.invites  # room name -> invite secret this session used
    invite = st.query_params.get(INVITE_PARAM) or invites.get(name)
    hub = get_hub()
    try:
        room = hub.find(name, invite, member=participant_token())
    except StoreUnavailable as trouble:
        wait_for_the_store(hub, trouble)
    except RoomRefused as refusal:
        st.error(str(refusal), icon=":material/lock:")
        st.page_link(ROOMS_PAGE, label="See the open rooms", icon=":material/meeting_room:")
        st.stop()
    if room is None:
        return None
    if room.private:
        invite = invites[name] = room.invite_secret  # so the sidebar's pages, which drop the address, show it
        if st.query_params.get(INVITE_PARAM) != invite:
            st.query_params[INVITE_PARAM] = invite  # a reload keeps working
    elif INVITE_PARAM in st.query_params:
        del st.query_params[INVITE_PARAM]
    return room
