"""Every key this app keeps in `st.session_state`, named and documented once: `session`.

A browser tab is one Streamlit session; what the app remembers about it between runs is here and
nowhere else (`tests/test_layout.py` checks that no other module touches `st.session_state`). The
widgets' own keys are named here too, since Streamlit keeps their values under those keys.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

import streamlit as st

T = TypeVar("T")
_MISSING: Any = object()


class Key(Generic[T]):
    """One session key: read with a default, set, and `del` (a missing key is fine to delete)."""

    def __init__(self, doc: str, default: T = _MISSING, *, made: Callable[[], T] | None = None):
        self.__doc__ = doc
        self.default = default  # what reading a missing key gives; nothing is stored
        self.made = made  # or: a value made and stored on the first read, kept for the session

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, session: Session | None, owner: type) -> T:
        if session is None:
            return self  # type: ignore[return-value]  (the class attribute: the key itself)
        if self.made is not None and self.name not in st.session_state:
            st.session_state[self.name] = self.made()
        return st.session_state.get(self.name, None if self.default is _MISSING else self.default)

    def __set__(self, session: Session, value: T) -> None:
        st.session_state[self.name] = value

    def __delete__(self, session: Session) -> None:
        st.session_state.pop(self.name, None)


class Session:
    """This browser tab's memory between runs. Read `session.nickname`, set it, `del` it; `take` reads a
    one-time note and forgets it."""

    # --- who this tab is (shared/web/membership.py) ---
    session_id = Key[str](
        "Our own id for this tab: Streamlit's changes on reload and is one constant under AppTest.",
        made=lambda: uuid.uuid4().hex,
    )
    token = Key[str | None]("The participant id this browser has in every room (`participant_token`).")
    nickname = Key[str]("The nickname this tab joined with; empty once they left or were removed.", "")
    join_note = Key[str | None]("One note for the join form: why they are asked again (they left).")
    join_refusal = Key[str | None]("Why a quiet rejoin was refused, shown once by the join form.")
    # --- which room (shared/web/routing.py) ---
    room = Key[str | None]("The room this tab showed last: the pages of the menu drop `?room=`.")
    invites = Key[dict[str, str]](
        "Room name -> the invite secret this tab used, so a private room's other pages still open.",
        made=dict,
    )
    # --- the chat box (shared/web/chat_box.py) ---
    refusal = Key[tuple[str, str] | None]("Why the last message was not sent, and its text to copy.")
    # --- acting on a message (shared/web/actions.py) ---
    replying_to = Key[tuple[str, int, str, str] | None](
        "(room, message id, author, first line): the message this person's next message replies to."
    )
    menu_drawings = Key[dict[int, int]](
        "Message id -> n of the key (`act-<id>-<n>`) its row of actions has on the page now.", made=dict
    )
    deleting = Key[tuple[str, int, str] | None](
        "(room, message id, first line): their own message they asked to delete, to confirm."
    )
    # --- the conversation (shared/web/conversation.py) ---
    shown_limit = Key[tuple[tuple[str, Any], int] | None](
        "((room, created_at), limit): how many of a room's latest messages the chat page shows, once more"
        " than a page was asked for; any other room opens on one page."
    )
    first_shown = Key[tuple[tuple[str, Any], int] | None](
        "((room, created_at), message id): the first message shown, kept across this tab's own reruns."
    )
    message_place = Key[int](
        "Which of the conversation's two places (0, 1) holds its messages: a page left open draws them"
        " afresh in the other now and then, to let go of what it dropped (shared/web/window.py).",
        0,
    )
    message_slots = Key[int](
        "How many elements earlier runs left in the conversation: a run empties those it does not use.", 0
    )
    catch_up_since = Key[tuple[tuple[str, Any], int | None] | None](
        "((room, created_at), message id or None): the last message shown before this page, if others "
        "said more since; decided on the first run in the room, so the divider stays put."
    )
    catch_up = Key[Any]("The `CatchUp` (shared/catch_up.py) this tab asked for, if any.")
    # --- search (shared/web/search.py) ---
    search = Key[tuple[tuple[str, Any], Any] | None](
        "((room, created_at), `shared.search.Results` or why not): this tab's last search in a room, shown"
        " until the next one (made when submitted, not again at each run)."
    )
    found = Key[tuple[tuple[str, Any], int] | None](
        "((room, created_at), message id): the search result this tab chose last: it holds the anchor"
        " (`#m-ID`) the page scrolled to."
    )
    # --- the room page (pages/room.py) ---
    instructions_saved = Key[bool](
        "Say once, after the rerun, that the room's instructions were saved.", False
    )
    # --- mentions in the other rooms (shared/web/mentions.py) ---
    mention_watches = Key[dict[str, Any]](
        '"ROOM GENERATION" -> the `MentionWatch` (shared/room/unread.py) of each other room this person is'
        " in: which of its mentions this tab announced already.",
        made=dict,
    )
    notes_said = Key[str | None]("Say once, after the rerun, what became of a change to the room's notes.")
    notes_refused = Key[str | None]("Say once, after the rerun, why a change to the notes was refused.")
    notes_added = Key[int](
        "How many items this tab added to the notes: its add form is drawn empty after each, and keeps what "
        "is being typed when others change the notes.",
        0,
    )
    # --- waiting (below) ---
    live_beat = Key[float | None]("Touched between slices of every wait: where Streamlit stops a run.")

    # --- widgets: Streamlit keeps each widget's value under its key ---
    stream_replies = Key[bool]("The *Stream replies* toggle: show a reply word by word.", True)
    message = Key[Any]("The chat box (`st.chat_input`): what the person sent with this run.")
    WIDGET_KEYS = {
        "stream_replies": "the *Stream replies* toggle",
        "message": "the chat box",
        "earlier": "*Show earlier messages*",
        "catch-up": "*Catch me up*",
        "stop-": "Stop, per turn (`stop-<turn>`): a click belongs to the turn it was drawn for",
        "policy-": "the reply policy, per change (`policy-<n>`): drawn afresh when someone changes it",
        "lock-": "the host's *Lock room* toggle, per state",
        "lock-instructions-": "the host's *Lock the room's instructions* box, per state",
        "remove-": "the host's *Remove*, per person (`remove-<participant id>`)",
        "file-": "a file's download button, per drawing (`file-<attachment id>-<n>`)",
        "act-": "a message's reactions, Reply and Delete, per drawing in a run (`act-<message id>-<n>`)",
        "menu-": "a message's button of actions, open or closed, per drawing (`menu-<message id>-<n>`)",
        "delete-yes": "*Delete*, confirming the delete of one's own message",
        "delete-no": "*Keep it*, taking the delete back",
        "reply-cancel": "*Cancel* beside *Replying to*",
        "search-words": "the search box (*Search this room*)",
        "found-": "a search result, per message (`found-<message id>`): choosing it shows the message",
    }

    def widget(self, key: str) -> Any:
        """The value of the widget with this key (a keyed family's member: `act-12-0`), None if none."""
        return st.session_state.get(key)

    def set_widget(self, key: str, value: Any) -> None:
        """Set what the widget with this key shows, before it is drawn (or in its callback)."""
        st.session_state[key] = value

    def forget_widget(self, key: str) -> None:
        """Forget the value of the widget with this key: it left the page for good."""
        st.session_state.pop(key, None)

    def take(self, key: Key[T]) -> T:
        """A one-time note (`session.take(Session.refusal)`): its value, forgotten once read."""
        value = key.__get__(self, Session)
        key.__delete__(self)
        return value

    @classmethod
    def keys(cls) -> set[str]:
        """Every key this app may keep: the ones above and the widgets' (a prefix for keyed families)."""
        return {n for n, v in vars(cls).items() if isinstance(v, Key)} | set(cls.WIDGET_KEYS)


session = Session()


def waits(wait: Callable[[], T], seconds: float | None = None) -> Iterator[T]:
    """`wait()` over and over (each call blocks a short slice), touching the session between calls.

    Touching the session is where Streamlit stops a run that a rerun replaced or whose tab closed; a run
    that only waited would never stop. `seconds`: give up after this long (None: never).
    """
    ends_at = None if seconds is None else time.monotonic() + seconds
    while ends_at is None or time.monotonic() < ends_at:
        result = wait()
        session.live_beat = time.monotonic()
        yield result
