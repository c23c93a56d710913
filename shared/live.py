"""The part of the chat page that follows the room: polled by a fragment, or live in one long run.

`poll` redraws the conversation on every tick; `live` draws it once, then waits on the room and adds only
what changed. Both stream the reply word by word for everyone whose "Stream replies" toggle is on.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator

import streamlit as st
from streamlit_autorefresh import st_autorefresh

from shared.config import Settings
from shared.messages import Message, Role, Status
from shared.room import Room, RoomView
from shared.ui import AVATARS, bubble, escape_markdown, get_hub, render_message, session_id

# How long the live part waits before it checks for a rerun or a closed tab: a message typed on a live
# page is taken up to this late (Streamlit can only stop a run where it touches Streamlit).
WAIT_SLICE_SECONDS = 0.1
ALIVE_EVERY_SECONDS = 5.0  # how often an idle live page tells the room its tab is still there
CATCH_UP_WORDS = 20  # a streamed reply this far behind the assistant is shown without pacing
PAGE_OF_MESSAGES = 50  # how many of the latest messages a page shows before "Show earlier messages"
HIDE_RUNNING_INDICATOR = "<style>[data-testid='stStatusWidget']{visibility:hidden}</style>"


def rendered_state(view: RoomView) -> tuple[object, ...]:
    """What the parts outside the conversation show: the input box and Stop, who is here, the policy."""
    return view.busy, view.stopping_by, tuple(p.nickname for p in view.participants), view.policy


def visible_messages(view: RoomView, *, keep_first: bool = False) -> list[Message]:
    """The latest messages this page shows, the reply being written included.

    With `keep_first` (live mode) the first message shown stays put until the page ends its run:
    a full run that drew fewer messages than the run before would leave the extra ones on the page.
    """
    shown = [m for m in view.messages if not (m.role is Role.ASSISTANT and not m.text)]
    latest = shown[-st.session_state.get("shown_limit", PAGE_OF_MESSAGES) :]
    if not keep_first or not latest:
        return latest
    room_key = (view.name, view.created_at)
    kept_key, first = st.session_state.get("first_shown", (None, 0))
    if kept_key != room_key or first > latest[0].id:
        first = latest[0].id
        st.session_state.first_shown = (room_key, first)
    return [m for m in shown if m.id >= first]


def earlier_messages_button(view: RoomView) -> None:
    """Older messages on demand, so a long history costs nothing until someone asks for it."""
    slot = st.empty()  # one element either way: the live page must not leave a stale button behind
    limit = st.session_state.get("shown_limit", PAGE_OF_MESSAGES)
    hidden = len(view.messages) - limit
    if hidden <= 0:
        slot.empty()
    elif slot.button("Show earlier messages", key="earlier", icon=":material/expand_less:"):
        st.session_state.shown_limit = limit + PAGE_OF_MESSAGES
        st.session_state.pop("first_shown", None)
        st.rerun()


def _words(text: str) -> list[str]:
    return re.findall(r"\s*\S+\s*", text)


def _pause(word_delay: float, words_behind: int) -> None:
    if word_delay and words_behind <= CATCH_UP_WORDS:
        time.sleep(word_delay)


def _replying_line(slot, view: RoomView, assistant_name: str) -> None:
    if view.busy:
        names = ", ".join(escape_markdown(n) for n in view.replying_to)
        slot.caption(f":material/edit: **{escape_markdown(assistant_name)}** is replying to {names}…")
    else:
        slot.empty()


def _writing(settings: Settings, text: str | None) -> None:
    """The reply while it is written: its text so far, or a typing line for those who stream nothing."""
    name = escape_markdown(settings.assistant_name)
    bubble(Role.ASSISTANT, f"**{name}** · writing…", text if text is not None else f"*{name} is typing…*")


def _follow_page_state(room: Room, view: RoomView, participant_id: str) -> None:
    if room.attach(participant_id, session_id()) is None:
        st.rerun(scope="app")  # dropped from the room meanwhile: the full page rejoins or asks
    if rendered_state(view) != st.session_state.get("rendered_state"):
        # The input box and the sidebar are outside this part: a full run brings them up to date.
        st.rerun(scope="app")


# --- poll: a fragment that redraws on every tick -------------------------------------------------------


def follow_reply(room: Room, reply_id: int | None, participant_id: str, word_delay: float) -> Iterator[str]:
    """Yield the reply being written, word by word, until it is finished; for `st.write_stream`.

    `reply_id` is the reply the page saw being written, or None to wait for the next one to start.
    """
    shown = 0
    while True:
        reply, busy, version = room.reply_state()
        if reply_id is None and reply is not None:
            reply_id = reply.id
        if reply_id is not None:
            reply = room.message(reply_id)
            words = _words(reply.text[shown:])
            for index, word in enumerate(words):
                _pause(word_delay, len(words) - index)
                yield word
            shown += sum(len(w) for w in words)
            if reply.status is not Status.STREAMING:
                return
        elif not busy:
            return
        room.wait_for_change(version, WAIT_SLICE_SECONDS)
        room.attach(participant_id, session_id())  # this tab is alive while it watches


@st.fragment
def polled_conversation(room_name: str, participant_id: str, settings: Settings) -> None:
    """Redraw the conversation every REFRESH_INTERVAL_MS; a tick reruns only this fragment."""
    st_autorefresh(interval=settings.refresh_interval_ms, key="poll-tick")
    room = get_hub().room(room_name)
    view = room.view()
    _follow_page_state(room, view, participant_id)
    reply = view.reply
    for message in visible_messages(view):
        if message is not reply:
            render_message(message, participant_id)
    if view.busy:
        if st.session_state.get("stream_replies", True):
            with st.chat_message("assistant", avatar=AVATARS[Role.ASSISTANT]):
                header = st.empty()
                header.caption(f"**{escape_markdown(settings.assistant_name)}** · writing…")
                reply_id = reply.id if reply is not None else None
                st.write_stream(follow_reply(room, reply_id, participant_id, settings.word_delay_ms / 1000))
                header.caption(f"**{escape_markdown(settings.assistant_name)}** · just now")
        else:
            _writing(settings, None)
        _replying_line(st.empty(), view, settings.assistant_name)


# --- live: one long run that waits on the room -------------------------------------------------------------


@st.fragment
def restart_live_when_idle(interval_ms: int) -> None:
    """Restart the live part if it stopped (Stop, an error, its periodic end).

    A tick never interrupts a running script, so this fragment runs on a tick only when the live part is
    not running: then it asks for a full run, which starts the live part again.
    """
    st_autorefresh(interval=interval_ms, key="live-watchdog")
    this_run = st.session_state.get("live_run")
    if st.session_state.get("watchdog_saw") == this_run:
        st.rerun(scope="app")
    st.session_state.watchdog_saw = this_run


def live_part(room: Room, participant_id: str, settings: Settings) -> None:
    """The live conversation, and the watchdog that starts it again should it stop."""
    st.session_state.live_run = uuid.uuid4().hex  # before the watchdog: this full run is a new live run
    restart_live_when_idle(settings.refresh_interval_ms)
    live_conversation(room, participant_id, settings)


def live_conversation(room: Room, participant_id: str, settings: Settings) -> None:
    """Draw the conversation once, then add what changes until the run is interrupted or ends.

    Each message has its own placeholder, so a change redraws one message; nothing is redrawn when
    nothing changed. Touching `st.session_state` between waits lets Streamlit stop this run for a rerun
    or a closed tab.
    """
    st.markdown(HIDE_RUNNING_INDICATOR, unsafe_allow_html=True)  # our own fixed style, no user text
    stream = st.session_state.get("stream_replies", True)
    word_delay = settings.word_delay_ms / 1000
    messages_area, busy_area = st.container(), st.empty()
    placeholders: dict[int, object] = {}
    drawn: dict[int, object] = {}  # message id -> what its placeholder shows now
    revealed: dict[int, int] = {}  # reply id -> how many of its characters this page has shown
    busy_drawn = None
    ends_at = time.monotonic() + settings.live_restart_seconds
    view = room.view()
    while True:
        behind = 0
        for message in visible_messages(view, keep_first=True):
            if message.id not in placeholders:
                with messages_area:
                    placeholders[message.id] = st.empty()
            shows = _reply_in_progress(message, stream, revealed, word_delay)
            if shows is None:
                shows = message
            elif stream:  # words of the reply not yet shown on this page
                behind = max(behind, len(_words(message.text[revealed[message.id] :])))
            if drawn.get(message.id) is not shows and drawn.get(message.id) != shows:
                with placeholders[message.id].container():
                    if isinstance(shows, Message):
                        render_message(message, participant_id)
                    else:
                        _writing(settings, shows or None)
                drawn[message.id] = shows
        if busy_drawn != view.replying_to:
            _replying_line(busy_area, view, settings.assistant_name)
            busy_drawn = view.replying_to
        # Only now, with what changed already on its way to the browser, may a full run follow.
        _follow_page_state(room, view, participant_id)
        if behind:  # reveal the next word after a pause (all of them at once without WORD_DELAY_MS)
            time.sleep(word_delay)
        elif not _wait_for_change(room, view.version, participant_id, ends_at):
            st.session_state.pop("first_shown", None)  # the run ends: Streamlit clears what it left
            return
        st.session_state.live_beat = time.monotonic()  # a yield point: a rerun or a closed tab stops here
        view = room.view()


def _wait_for_change(room: Room, version: int, participant_id: str, ends_at: float) -> bool:
    """Wait until the room changes (True) or it is time for this live run to end (False).

    Idle, a page costs one short wake-up per slice: it touches `st.session_state`, where Streamlit
    stops the run for a rerun (someone pressed Enter) or a closed tab, and says it is alive now and then.
    """
    alive_said = time.monotonic()
    while room.wait_for_change(version, WAIT_SLICE_SECONDS) == version:
        st.session_state.live_beat = time.monotonic()
        if time.monotonic() > ends_at:
            return False
        if time.monotonic() - alive_said > ALIVE_EVERY_SECONDS:
            if room.attach(participant_id, session_id()) is None:
                st.rerun(scope="app")  # dropped from the room meanwhile
            alive_said = time.monotonic()
    return True


def _reply_in_progress(
    message: Message, stream: bool, revealed: dict[int, int], word_delay: float
) -> str | None:
    """The text to show of a reply still being written or revealed ("" = typing), None once it is whole.

    Reveals the next word (more when far behind) of a streamed reply on each call.
    """
    if message.role is not Role.ASSISTANT:
        return None
    writing = message.status is Status.STREAMING
    if not stream:
        return "" if writing else None
    shown = revealed.setdefault(message.id, 0 if writing else len(message.text))
    words = _words(message.text[shown:])
    step = len(words) if not word_delay else max(1, len(words) - CATCH_UP_WORDS)
    shown += sum(len(w) for w in words[:step])
    revealed[message.id] = shown
    if shown < len(message.text) or writing:
        return message.text[:shown]
    return None
