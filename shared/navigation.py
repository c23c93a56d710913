"""The app's pages and its own navigation between them, on every visit, the first one included.

Streamlit runs a main script that has a `pages/` folder beside it in its older automatic multipage mode
until some session has called `st.navigation` (`PagesManager.uses_pages_directory` in
`streamlit/runtime/pages_manager.py`, `_mpa_v1` in `streamlit/runtime/scriptrunner/script_runner.py`).
So on a fresh server a first visit straight to /about runs `pages/about.py` without `app.py`, under a
menu of file names ("app, about, chat, room, rooms"). Every page script calls `own_navigation()` first.
"""

from __future__ import annotations

import logging

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager
from streamlit.runtime.scriptrunner import get_script_run_ctx

log = logging.getLogger(__name__)


def app_navigation() -> st.Page:
    """Set up the page and the navigation between the app's pages; returns the page to show."""
    st.set_page_config(page_title="Shared chat room", page_icon=":material/forum:", layout="centered")
    return st.navigation(
        [
            st.Page("pages/chat.py", title="Chat room", icon=":material/forum:", default=True),
            st.Page("pages/room.py", title="This room", icon=":material/info:"),
            st.Page("pages/rooms.py", title="Rooms", icon=":material/meeting_room:"),
            st.Page("pages/about.py", title="About", icon=":material/help:"),
        ]
    )


def own_navigation() -> None:
    """In a run that Streamlit's automatic menu started, put the app's own navigation in its place."""
    if not PagesManager.uses_pages_directory:
        return
    log.info("a page was opened before app.py set up the navigation; setting it up now")
    ctx = get_script_run_ctx()
    # `st.navigation` replaces the menu in this same run and turns the automatic mode off for the whole
    # process. No rerun: it would drop what the person sent with this run. It also marks what follows as
    # the main script's; the page's widgets must keep the identity they have in every other run.
    with ctx.run_with_active_hash(ctx.pages_manager.current_page_script_hash):
        app_navigation()
