"""The join form: pick a nickname to join the room shown."""

from __future__ import annotations

import streamlit as st

from shared.errors import JoinRefused, RoomRefused
from shared.store import StoreUnavailable
from shared.web import membership
from shared.web.messages import escape_markdown
from shared.web.session import session


def first_join(name: str) -> None:
    """Nobody is in room `name`, and looking at it opened nothing: a tab that has a nickname goes in as it
    would come back to a room; others see the join form, and the first join opens the room."""
    if session.nickname:
        try:
            membership.join(name, None, session.nickname)
        except (JoinRefused, RoomRefused, StoreUnavailable) as refusal:
            session.join_refusal = str(refusal)
            session.nickname = ""
        else:
            st.rerun()
    st.caption(f":material/meeting_room: Nobody is in room **{name}** yet: it opens when someone joins.")
    join_form(name, None)


def join_form(name: str, invite: str | None) -> None:
    """Ask for a nickname to join room `name` (with a private room's `invite`); on success the page reruns
    as a member of the room."""
    with st.form("join", border=True):
        st.markdown("**Pick a nickname to join the conversation**")
        nickname = st.text_input("Nickname", value=session.nickname, placeholder="e.g. Alice")
        joined = st.form_submit_button("Join", type="primary")
    refusal, note = membership.take_join_notes()
    if note:
        st.info(note, icon=":material/logout:")
    if joined:
        try:
            membership.join(name, invite, nickname)
        except (JoinRefused, RoomRefused, StoreUnavailable) as error:
            refusal = str(error)
        else:
            st.rerun()
    if refusal:
        # Plain words, one of which may be the nickname just typed: shown as text, never as Markdown.
        st.error(escape_markdown(refusal), icon=":material/badge:")
