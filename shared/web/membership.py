"""Who this browser is and whether they are in the room: identity, coming back, leaving, being removed.

The rules are the room's (`Room.attach`, `Hub.join`, `Room.leave`); this module only asks them and
keeps the answer in the session (`session.token`, `session.nickname`).
"""

from __future__ import annotations

import typing
import uuid

import streamlit as st

from shared import identity
from shared.errors import JoinRefused, RoomRefused
from shared.hub import Hub
from shared.messages import Participant
from shared.room import Room
from shared.room.hosting import REMOVED
from shared.store import StoreUnavailable
from shared.web.resources import get_hub
from shared.web.session import Session, session

OLD_TOKEN_PARAM = "me"  # where an older version kept who you are; ignored and removed from the address


class _SessionEnd(typing.NamedTuple):
    """Tells the hub when this browser session ends (its tab closed), so its person can leave the room."""

    hub: Hub
    session_id: str

    def release(self) -> None:
        self.hub.sessions.ended(self.session_id)  # on the server's event loop: it only takes a note


@st.cache_resource(scope="session", on_release=_SessionEnd.release, show_spinner=False)
def _session_end(_hub: Hub, session_id: str) -> _SessionEnd:
    return _SessionEnd(_hub, session_id)


def participant_token() -> str:
    """Who this browser is, from its signed cookie (see `identity`); never from the address.

    Without the cookie (a server started without `app.py`'s middleware, or AppTest), the identity is
    kept for this browser session only: a reload then asks for a nickname again.
    """
    if OLD_TOKEN_PARAM in st.query_params:
        del st.query_params[OLD_TOKEN_PARAM]  # an old `?me=` link: it names nobody any more
    if session.token is None:
        secret = identity.cookie_secret()
        try:
            cookie = st.context.cookies.get(identity.COOKIE)
        except Exception:  # no browser behind this session (AppTest): no cookie
            cookie = None
        value = identity.browser_value(cookie, secret)
        session.token = identity.participant_id(value, secret) if value else uuid.uuid4().hex
    return session.token


def current_participant(room: Room) -> Participant | None:
    """This browser's person in the room: a reload or a second tab of someone present gets back in."""
    token = participant_token()
    removed_stop(room)
    participant = room.attach(token, session.session_id)
    if participant is None and session.nickname and room.left_on_purpose(token):
        session.nickname = ""  # they pressed Leave, perhaps in another tab: that is final
        session.join_note = "You left this room. Pick a nickname to join it again."
    elif participant is None and session.nickname:
        # Back after the heartbeat timeout (a sleeping laptop) or a fresh room: rejoin quietly.
        try:
            joined, participant = get_hub().join(
                room.name, token, session.nickname, session.session_id, room.invite_secret
            )
        except (JoinRefused, RoomRefused, StoreUnavailable) as refusal:
            session.join_refusal = str(refusal)
            session.nickname = ""
        else:
            if joined is not room:  # the room closed as they came back: draw the fresh one they are in
                st.rerun()
    if participant is not None:
        session.nickname = participant.nickname
        hub = get_hub()
        _session_end(hub, session.session_id)
        hub.sessions.showing(
            session.session_id, room, token
        )  # on every page of the app, until the tab closes
    return participant


def join(name: str, invite: str | None, nickname: str) -> None:
    """Join the room called `name` as `nickname`, opening it if nobody is in it (JoinRefused, RoomRefused
    or StoreUnavailable if not)."""
    get_hub().join(name, participant_token(), nickname, session.session_id, invite)
    session.nickname = nickname


def leave(room: Room, participant: Participant) -> None:
    try:
        room.leave(participant.id)
    except StoreUnavailable as trouble:
        session.refusal = (f"{trouble} You have not left yet.", "")
        return
    session.nickname = ""


def removed_stop(room: Room) -> None:
    """A browser whose person the host removed sees one sentence on every page of the room, and no form."""
    if room.removed(participant_token()):
        session.nickname = ""
        st.error(REMOVED, icon=":material/person_remove:")
        st.stop()


def take_join_notes() -> tuple[str | None, str | None]:
    """(why a quiet rejoin was refused, why they are asked again), each shown once."""
    return session.take(Session.join_refusal), session.take(Session.join_note)
