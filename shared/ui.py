"""Streamlit glue for the page scripts: the hub singleton, who this browser is, and how messages look.

The rules live in the room, not here; `live.py` follows the room on the chat page.
"""

from __future__ import annotations

import itertools
import logging
import time
import typing
import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from shared import identity, messages, transcript
from shared.attachments import AttachmentStore, check_upload, human_size, preview
from shared.catch_up import CatchUps
from shared.config import Settings, SettingsError, load_settings
from shared.errors import AttachmentRefused, JoinRefused, MessageRefused, RoomRefused
from shared.hub import DEFAULT_ROOM, Hub, RoomNameInvalid, clean_room_name
from shared.messages import Attachment, Message, Participant, ReplyPolicy, Role, Status
from shared.room import Room
from shared.room.hosting import REMOVED
from shared.store import StoreUnavailable

log = logging.getLogger(__name__)

OLD_TOKEN_PARAM = "me"  # where an older version kept who you are; ignored and removed from the address
ROOM_PARAM = "room"
INVITE_PARAM = "invite"  # a private room's secret, in its invite link
ROOMS_PAGE = "pages/rooms.py"
CHAT_PAGE = "pages/chat.py"
AVATARS = {"me": ":material/person:", "them": ":material/group:", Role.ASSISTANT: ":material/pets:"}


# --- the process-wide singletons ------------------------------------------------------------------


# Good settings are kept for the process's life (`_settings`): a change takes a restart, not a reload.
RESTART_HINT = (
    "Fix them in the environment, `.env` or `.streamlit/secrets.toml`, then restart the app: stop "
    "`streamlit run` and start it again, or on Streamlit Community Cloud choose **Reboot app** in the app's "
    "⋮ menu."
)


@st.cache_resource(show_spinner=False)
def _settings() -> Settings:
    return load_settings()


def settings_or_stop() -> Settings:
    """The settings, or a page that says what is wrong with them (one sentence per variable)."""
    try:
        return _settings()
    except SettingsError as error:
        st.error(
            "The app cannot start because of its settings:\n\n" + "\n".join(f"- {p}" for p in error.problems)
        )
        st.caption(RESTART_HINT)
        st.stop()


@st.cache_resource(show_spinner=False, on_release=Hub.shutdown)
def get_hub() -> Hub:
    return Hub(_settings())


STORE_RETRY_SECONDS = 1.0


def wait_for_the_store(hub: Hub, trouble: StoreUnavailable) -> None:
    st.warning(str(trouble), icon=":material/cloud_off:")
    while True:
        time.sleep(STORE_RETRY_SECONDS)
        st.session_state.store_wait = time.monotonic()  # a closed tab or a rerun stops the wait here
        try:
            hub.store.ping()
        except StoreUnavailable:
            continue
        st.rerun()


@st.cache_resource(show_spinner=False)
def get_catch_ups() -> CatchUps:
    return CatchUps()


def shutdown_hub() -> None:
    """Close every room's conversation as the server stops (`app.py`'s lifespan); nothing if no hub."""
    get_hub.clear()  # its `on_release` is `Hub.shutdown`


# --- who this browser session is ------------------------------------------------------------------


class _SessionEnd(typing.NamedTuple):
    """Tells the hub when this browser session ends (its tab closed), so its person can leave the room."""

    hub: Hub
    session_id: str

    def release(self) -> None:
        self.hub.sessions.ended(self.session_id)  # on the server's event loop: it only takes a note


@st.cache_resource(scope="session", on_release=_SessionEnd.release, show_spinner=False)
def _session_end(_hub: Hub, session_id: str) -> _SessionEnd:
    return _SessionEnd(_hub, session_id)


def session_id() -> str:
    # Streamlit's own session id changes on reload and is one constant under AppTest; keep our own.
    if "session_id" not in st.session_state:
        st.session_state.session_id = uuid.uuid4().hex
    return st.session_state.session_id


def participant_token() -> str:
    """Who this browser is, from its signed cookie (see `identity`); never from the address.

    Without the cookie (a server started without `app.py`'s middleware, or AppTest), the identity is
    kept for this browser session only: a reload then asks for a nickname again.
    """
    if OLD_TOKEN_PARAM in st.query_params:
        del st.query_params[OLD_TOKEN_PARAM]  # an old `?me=` link: it names nobody any more
    if "token" not in st.session_state:
        secret = identity.cookie_secret()
        try:
            cookie = st.context.cookies.get(identity.COOKIE)
        except Exception:  # no browser behind this session (AppTest): no cookie
            cookie = None
        value = identity.browser_value(cookie, secret)
        st.session_state.token = identity.participant_id(value, secret) if value else uuid.uuid4().hex
    return st.session_state.token


def current_participant(room: Room) -> Participant | None:
    """This browser's person in the room: a reload or a second tab of someone present gets back in."""
    token = participant_token()
    removed_stop(room)
    participant = room.attach(token, session_id())
    if participant is None and st.session_state.get("nickname") and room.left_on_purpose(token):
        st.session_state.nickname = ""  # they pressed Leave, perhaps in another tab: that is final
        st.session_state.join_note = "You left this room. Pick a nickname to join it again."
    elif participant is None and st.session_state.get("nickname"):
        # Back after the heartbeat timeout (a sleeping laptop) or a fresh room: rejoin quietly.
        try:
            joined, participant = get_hub().join(
                room.name, token, st.session_state.nickname, session_id(), room.invite_secret
            )
        except (JoinRefused, StoreUnavailable) as refusal:
            st.session_state.join_refusal = str(refusal)
            st.session_state.nickname = ""
        else:
            if joined is not room:  # the room closed as they came back: draw the fresh one they are in
                st.rerun()
    if participant is not None:
        st.session_state.nickname = participant.nickname
        hub = get_hub()
        _session_end(hub, session_id())
        hub.sessions.showing(session_id(), room, token)  # here on every page of the app, until the tab closes
    return participant


def join_form(room: Room) -> None:
    """Ask for a nickname; on success the page reruns as a member of the room."""
    with st.form("join", border=True):
        st.markdown("#### Pick a nickname to join the conversation")
        nickname = st.text_input(
            "Nickname", value=st.session_state.get("nickname", ""), placeholder="e.g. Alice"
        )
        joined = st.form_submit_button("Join", type="primary")
    refusal = st.session_state.pop("join_refusal", None)
    if note := st.session_state.pop("join_note", None):
        st.info(note, icon=":material/logout:")
    if joined:
        try:
            get_hub().join(room.name, participant_token(), nickname, session_id(), room.invite_secret)
        except (JoinRefused, StoreUnavailable) as error:
            refusal = str(error)
        else:
            st.session_state.nickname = nickname
            st.rerun()
    if refusal:
        st.error(refusal, icon=":material/badge:")


def leave(room: Room, participant: Participant) -> None:
    try:
        room.leave(participant.id)
    except StoreUnavailable as trouble:
        st.session_state.refusal = (f"{trouble} You have not left yet.", "")
        return
    st.session_state.nickname = ""


# --- posting ----------------------------------------------------------------------------------------


def post(room: Room, participant: Participant, sent: object) -> None:
    """Post what the person typed and attached (the chat box's value, or None); a refused file is
    explained in one sentence and the text still goes; a refused message hands its text back to them."""
    if sent is None:
        return
    text, files = (sent, []) if isinstance(sent, str) else (sent.text or "", list(sent.files))
    if not text.strip() and not files:
        return  # an empty box sent by Enter is not worth a word
    limit = room.settings.max_attachment_mb
    attached, refusals = [], []
    for upload in files:
        data = upload.getvalue()
        try:
            attached.append((check_upload(upload.name, data, limit), data))
        except AttachmentRefused as refusal:
            refusals.append(str(refusal))
    if not text.strip() and not attached:
        st.session_state.refusal = (" ".join(refusals) + " Nothing was sent.", "")
        return
    try:
        room.post(participant.id, text, attached)
    except MessageRefused as refusal:
        st.session_state.refusal = (" ".join([str(refusal), *refusals]), text)
    except StoreUnavailable:
        st.session_state.refusal = ("Your message was not sent: the room cannot be reached just now.", text)
    else:
        if refusals:
            st.session_state.refusal = (" ".join(refusals) + " The rest of your message was sent.", "")


def show_refusal() -> None:
    """Explain why the last message was not sent, and hand its text back to copy.

    Always one element, so that the live page leaves nothing stale behind once it is gone.
    """
    slot = st.empty()
    refusal = st.session_state.pop("refusal", None)
    if refusal is None:
        slot.empty()  # a new placeholder alone would leave the old refusal showing
        return
    reason, text = refusal
    with slot.container():
        st.error(reason, icon=":material/block:")
        if text.strip():
            with st.expander("Your unsent message, to copy and shorten"):
                st.code(text[:20_000] + ("\n…" if len(text) > 20_000 else ""), language=None)


# --- how messages look --------------------------------------------------------------------------------


def escape_markdown(text: str) -> str:
    """Show a nickname exactly as typed, never as formatting, links or HTML (the rule the offline assistant
    uses too, in `shared/messages.py`)."""
    return messages.escape_markdown(text)


def local_time(moment: datetime, *, with_date: bool = False) -> str:
    """The time in the browser's time zone (UTC when the browser does not say)."""
    try:
        zone = ZoneInfo(st.context.timezone) if st.context.timezone else None
    except Exception:  # an unknown zone name from the browser: UTC is good enough
        zone = None
    form = "%Y-%m-%d %H:%M" if with_date else "%H:%M"
    return moment.astimezone(zone).strftime(form) if zone else moment.strftime(form + " UTC")


def share_link(room: Room) -> str:
    """The address that brings someone into this room as themselves; a private room's carries its secret."""
    base = (st.context.url or "").split("?")[0] or "http://localhost:8501/"
    link = f"{base}?{ROOM_PARAM}={room.name}"
    return link + f"&{INVITE_PARAM}={room.invite_secret}" if room.private else link


def usage_help(usage: dict[str, int]) -> str:
    if not usage:
        return "Tokens the model used for this room's conversation (none yet, or the offline assistant)."
    return f"Input {usage.get('input_tokens', 0):,} · output {usage.get('output_tokens', 0):,} tokens."


def budget_help(budget: int) -> str:
    if not budget:
        return "Tokens this room's assistant used since midnight UTC; no daily budget is set (DAILY_TOKEN_BUDGET)."
    return (
        f"Tokens this room's assistant used since midnight UTC, against its daily budget of {budget:,}: "
        "once reached, it answers again the next day."
    )


def render_message(message: Message, my_id: str, files: AttachmentStore | None = None) -> None:
    """One message. A bubble always holds the same elements (header, text, one per attached file, note),
    so the live page can redraw it in place without leaving an old note behind."""
    when = local_time(message.created_at)
    if message.role is Role.SYSTEM:
        if message.status is Status.ERROR:  # a failure everyone should notice
            st.caption(f":red[:material/error: {escape_markdown(message.text)}] · {when}")
        else:
            st.caption(f":material/info: {escape_markdown(message.text)} · {when}")
        return
    if message.role is Role.ASSISTANT:
        to = ", ".join(escape_markdown(n) for n in message.reply_to)
        note = {
            Status.ERROR: ":material/warning: This reply broke off before it was finished.",
            Status.STOPPED: f":material/stop_circle: Stopped by {escape_markdown(message.stopped_by)}.",
        }.get(message.status)
        bubble(
            Role.ASSISTANT,
            f"**{escape_markdown(message.author)}** · {when}" + (f" · to {to}" if to else ""),
            message.text,
            note,
        )
        return
    mine = message.participant_id == my_id
    note = {
        Status.QUEUED: ":material/schedule: waiting for the assistant",
        Status.UNANSWERED: ":material/replay: not answered: it goes to the assistant again with the next message",
    }.get(message.status)
    bubble(
        "me" if mine else "them",
        f"**{escape_markdown(message.author)}**" + (" (you)" if mine else "") + f" · {when}",
        message.text,
        note,
        files=message.attachments,
        kept=files,
    )


PICTURE_WIDTH = 360  # pixels: a photo is shown this wide at most (its full size is a click away)
_file_keys = itertools.count()  # each drawing of a download button needs a key of its own


class _NotKept(Exception):
    """The room no longer keeps a file's bytes (raised, so that the cache below keeps no answer)."""


@st.cache_data(max_entries=500, show_spinner=False)
def _preview(attachment_id: str, _kept: AttachmentStore) -> bytes:
    """A picture at its display size, made once per attachment: its bytes are read (with Redis, fetched)
    only the first time, not on every drawing of every page (the id names the bytes: `_kept` is not
    hashed)."""
    data = _kept.get(attachment_id)
    if data is None:
        raise _NotKept(attachment_id)
    return preview(data, PICTURE_WIDTH)


def attachment(file: Attachment, kept: AttachmentStore | None) -> None:
    """One attached file as one element: the picture, a download button for a PDF, or a line saying it
    is gone. `kept`: the room's files' bytes."""
    name = escape_markdown(file.name)
    gone = f":material/hide_image: {name} ({human_size(file.size)}) is no longer kept by the room."
    if file.dropped or kept is None:
        st.caption(gone)
    elif file.is_image:
        try:
            picture = _preview(file.id, kept)
        except _NotKept:
            st.caption(gone)
        else:
            st.image(picture, caption=name, width=min(file.width or PICTURE_WIDTH, PICTURE_WIDTH))
    elif (data := kept.get(file.id)) is None:
        st.caption(gone)
    else:
        st.download_button(
            f"{name} · {human_size(file.size)}",
            lambda data=data: data,  # handed over when clicked, not copied into every page's drawing
            file_name=file.name,
            mime=file.mime,
            icon=":material/picture_as_pdf:",
            on_click="ignore",
            key=f"file-{file.id}-{next(_file_keys)}",
        )


def bubble(
    who: Role | str,
    header: str,
    text: str,
    note: str | None = None,
    files: tuple[Attachment, ...] = (),
    kept: AttachmentStore | None = None,
) -> None:
    name = "assistant" if who is Role.ASSISTANT else "user"
    with st.chat_message(name, avatar=AVATARS[who]):
        st.caption(header)
        st.markdown(text)
        for file in files:
            attachment(file, kept)
        note_slot = st.empty()
        if note:
            note_slot.caption(note)
        else:
            note_slot.empty()


# --- the sidebar --------------------------------------------------------------------------------------


def sidebar(
    room: Room, me: Participant | None, settings: Settings, assistant_label: str
) -> tuple[DeltaGenerator, DeltaGenerator]:
    """Who is here, the assistant, and the person's controls; returns the slots the live page keeps
    up to date (who is here, and the reply policy), drawn here as the room is now."""
    view = room.view()
    with st.sidebar:
        st.header("In this room")
        people_slot = st.empty()
        with people_slot.container():
            people(view.participants, me.id if me is not None else None, view.host, view.status.locked)
        st.markdown(f":material/pets: **{escape_markdown(settings.assistant_name)}** · {assistant_label}")
        policy_slot = st.empty()
        if me is not None:
            transcript_downloads(room)
            if st.button("Leave the room", icon=":material/logout:"):
                leave(room, me)
                st.rerun()
    return people_slot, policy_slot


def people(
    participants: tuple[Participant, ...], my_id: str | None, host: str | None = None, locked: bool = False
) -> None:
    """Who is here, as one element however many they are (the live page must not leave a name behind)."""
    lines = [
        f":material/person: {escape_markdown(p.nickname)}"
        + (" (host)" if p.id == host else "")
        + (" (you)" if p.id == my_id else "")
        for p in participants
    ]
    if locked:
        lines.append(":material/lock: *Locked by the host: nobody new may join.*")
    st.markdown("  \n".join(lines) or "*Nobody yet.*")


INSTRUCTIONS_LINE_CHARS = 160  # of the room's instructions, on the line under the chat page's title


def instructions_line(text: str) -> None:
    """The room's instructions in one short line (escaped: people wrote them), or nothing; one element."""
    if not text:
        st.empty()
        return
    flat = " ".join(text.split())
    short = flat[:INSTRUCTIONS_LINE_CHARS] + ("…" if len(flat) > INSTRUCTIONS_LINE_CHARS else "")
    st.caption(f":material/description: **Room instructions:** {escape_markdown(short)}")


def removed_stop(room: Room) -> None:
    """A browser whose person the host removed sees one sentence on every page of the room, and no form."""
    if room.removed(participant_token()):
        st.session_state.nickname = ""
        st.error(REMOVED, icon=":material/person_remove:")
        st.stop()


POLICY_LABELS = {
    ReplyPolicy.EVERY_MESSAGE: "Every message",
    ReplyPolicy.WHEN_MENTIONED: "Only when mentioned",
    ReplyPolicy.WHEN_HELPFUL: "When it can help",
}


def policy_help(name: str) -> str:
    return (
        f"Every message: {name} answers each batch of messages. Only when mentioned: {name} answers "
        f"messages that contain @{name}, knowing what was said before. When it can help: after each batch "
        f"of messages a small separate request decides whether {name} has something useful to say (a "
        f"mention always gets an answer); what it lets pass it still hears with its next reply."
    )


def transcript_downloads(room: Room) -> None:
    """The transcript to take away, e.g. before the room empties and starts fresh.

    The files are made when clicked, so they hold everything up to that moment and cost nothing before.
    """
    stem = transcript.file_stem(room.name, room.created_at)
    for label, (render, suffix, mime, icon) in transcript.FORMATS.items():
        st.download_button(
            f"Download {label}",
            lambda render=render: render(room.view()),
            file_name=f"{stem}.{suffix}",
            mime=mime,
            icon=icon,
            on_click="ignore",
        )


def room_name() -> str:
    """The room this page shows: `?room=` in the address, else the last one, else the lobby."""
    raw = st.query_params.get(ROOM_PARAM) or st.session_state.get("room")
    try:
        name = clean_room_name(raw)
    except RoomNameInvalid as error:
        st.error(str(error), icon=":material/meeting_room:")
        st.page_link(CHAT_PAGE, label="Go to the lobby", query_params={ROOM_PARAM: DEFAULT_ROOM})
        st.stop()
    st.session_state.room = name
    if st.query_params.get(ROOM_PARAM) != name:
        st.query_params[ROOM_PARAM] = name
    return name


def current_room() -> Room:
    """The room this page shows, or a page that says why it cannot be shown (private, closed, too many)."""
    name = room_name()
    invites = st.session_state.setdefault("invites", {})  # room name -> invite secret this session used
    invite = st.query_params.get(INVITE_PARAM) or invites.get(name)
    try:
        room = get_hub().room(name, invite)
    except StoreUnavailable as trouble:
        wait_for_the_store(get_hub(), trouble)
    except RoomRefused as refusal:
        st.error(str(refusal), icon=":material/lock:")
        st.page_link(ROOMS_PAGE, label="See the open rooms", icon=":material/meeting_room:")
        st.stop()
    if room.private:
        invites[name] = invite  # so the sidebar's pages, which drop the address, still show it
        if st.query_params.get(INVITE_PARAM) != invite:
            st.query_params[INVITE_PARAM] = invite  # a reload keeps working
    elif INVITE_PARAM in st.query_params:
        del st.query_params[INVITE_PARAM]
    return room


def assistant_banner(settings: Settings, assistant_label: str) -> None:
    """Say plainly which assistant answers, and explain settings that no longer do anything."""
    if settings.offline:
        st.info(
            f"**{escape_markdown(settings.assistant_name)} is the offline demo assistant here**: no AI model "
            "is connected, so it only greets people, tells the time and says who is in the room. To talk to a "
            "real model, set `OPENAI_API_KEY` in `.env` (or `.streamlit/secrets.toml`) and restart the app.",
            icon=":material/cloud_off:",
        )
    if settings.openai_assistant_id:
        st.warning(
            "`OPENAI_ASSISTANT_ID` is ignored: OpenAI shut the Assistants API down on 2026-08-26, so the "
            "assistant is now set by `OPENAI_MODEL`, `ASSISTANT_NAME` and `ASSISTANT_INSTRUCTIONS`.",
            icon=":material/history:",
        )
