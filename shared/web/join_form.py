"""The join form: pick a nickname to join the room shown."""

from __future__ import annotations

import streamlit as st

from shared.errors import JoinRefused
from shared.room import Room
from shared.store import StoreUnavailable
from shared.web import membership
from shared.web.messages import escape_markdown
from shared.web.session import session


def join_form(room: Room) -> None:
    """Ask for a nickname; on success the page reruns as a member of the room."""
    with st.form("join", border=True):
        st.markdown("#### Pick a nickname to join the conversation")
        nickname = st.text_input("Nickname", value=session.nickname, placeholder="e.g. Alice")
        joined = st.form_submit_button("Join", type="primary")
    refusal, note = membership.take_join_notes()
    if note:
        st.info(note, icon=":material/logout:")
    if joined:
        try:
            membership.join(room, nickname)
        except (JoinRefused, StoreUnavailable) as error:
            refusal = str(error)
        else:
            st.rerun()
    if refusal:
        # Plain words, one of which may be the nickname just typed: shown as text, never as Markdown.
        st.error(escape_markdown(refusal), icon=":material/badge:")
