"""How a message looks: one chat bubble per message (its header, text, attached files, the sources a reply
cites and a note), the reply being written, and times in the browser's time zone."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

import streamlit as st

from shared import messages
from shared.attachments import AttachmentStore, human_size, preview
from shared.messages import Attachment, Message, Role, Source, Status

if TYPE_CHECKING:
    from streamlit.delta_generator import DeltaGenerator

AVATARS = {"me": ":material/person:", "them": ":material/group:", Role.ASSISTANT: ":material/pets:"}
PICTURE_WIDTH = 360  # pixels: a photo is shown this wide at most (its full size is a click away)
_file_keys = itertools.count()  # each drawing of a download button needs a key of its own


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


@dataclasses.dataclass(frozen=True)
class Parts:
    """What a message shows, part by part: a redraw sends the page only the parts that changed."""

    who: Role | str  # whose bubble ("me", "them", the assistant), or Role.SYSTEM: a line without one
    header: str
    text: str = ""
    note: str | None = None
    files: tuple[Attachment, ...] = ()
    sources: str = ""  # the web pages a reply cites, as one line of Markdown links


# What a link's address keeps as it is: the characters of a URL that mean nothing to Markdown.
SAFE_IN_LINKS = ":/?#@!$&'*+,;=%~-._"


def sources_line(sources: Sequence[Source]) -> str:
    """The pages a reply cites as Markdown links: titles escaped, and only http(s) addresses become links
    (quoted, so no address can end the link early or carry markup); anything else is shown as text."""
    shown = []
    for source in sources:
        title = escape_markdown(source.title.strip() or source.url)
        parts = urlsplit(source.url)
        if parts.scheme in ("http", "https") and parts.hostname:
            shown.append(f"[{title}]({quote(source.url, safe=SAFE_IN_LINKS)})")
        else:
            shown.append(title)
    return ":material/travel_explore: Sources: " + " · ".join(shown) if shown else ""


def message_parts(message: Message, my_id: str) -> Parts:
    when = local_time(message.created_at)
    if message.role is Role.SYSTEM:
        if message.status is Status.ERROR:  # a failure everyone should notice
            return Parts(Role.SYSTEM, f":red[:material/error: {escape_markdown(message.text)}] · {when}")
        return Parts(Role.SYSTEM, f":material/info: {escape_markdown(message.text)} · {when}")
    if message.role is Role.ASSISTANT:
        to = ", ".join(escape_markdown(n) for n in message.reply_to)
        note = {
            Status.ERROR: ":material/warning: This reply broke off before it was finished.",
            Status.STOPPED: f":material/stop_circle: Stopped by {escape_markdown(message.stopped_by)}.",
        }.get(message.status)
        header = f"**{escape_markdown(message.author)}** · {when}" + (f" · to {to}" if to else "")
        # A picture the assistant drew shows like an attached one.
        return Parts(
            Role.ASSISTANT, header, message.text, note, message.attachments, sources_line(message.sources)
        )
    mine = message.participant_id == my_id
    note = {
        Status.QUEUED: ":material/schedule: waiting for the assistant",
        Status.UNANSWERED: ":material/replay: not answered: it goes to the assistant again with the next message",
    }.get(message.status)
    header = f"**{escape_markdown(message.author)}**" + (" (you)" if mine else "") + f" · {when}"
    return Parts("me" if mine else "them", header, message.text, note, message.attachments)


def writing_parts(assistant_name: str, text: str | None) -> Parts:
    """The reply being written: the words shown so far, or (not streamed) that it is typing."""
    name = escape_markdown(assistant_name)
    return Parts(Role.ASSISTANT, f"**{name}** · writing…", text or f"*{name} is typing…*")


@dataclasses.dataclass
class Drawn:
    """A message as drawn on the page, with a handle on each part that may change alone."""

    parts: Parts
    header: DeltaGenerator | None = None  # None: a system line, redrawn whole
    text: DeltaGenerator | None = None
    note: DeltaGenerator | None = None
    sources: DeltaGenerator | None = None


def draw(parts: Parts, files: AttachmentStore | None = None) -> Drawn:
    """A bubble always holds the same elements (header, text, one per attached file, a reply's sources,
    note), so a redraw in place replaces each of them and leaves no old note behind."""
    if parts.who is Role.SYSTEM:
        st.caption(parts.header)
        return Drawn(parts)
    name = "assistant" if parts.who is Role.ASSISTANT else "user"
    with st.chat_message(name, avatar=AVATARS[parts.who]):
        header, text = st.empty(), st.empty()
        header.caption(parts.header)
        text.markdown(parts.text)
        for file in parts.files:
            attachment(file, files)
        sources = st.empty() if parts.who is Role.ASSISTANT else None  # only a reply cites pages
        if sources is not None and parts.sources:
            sources.caption(parts.sources)
        note = st.empty()
        if parts.note:
            note.caption(parts.note)
    return Drawn(parts, header, text, note, sources)


def redraw(slot: DeltaGenerator, drawn: Drawn | None, parts: Parts, files: AttachmentStore | None) -> Drawn:
    """Bring the message drawn in `slot` up to `parts`, sending only what changed: a reply being written
    costs its text (not a new bubble of four elements), a message the assistant took its note.

    Each element sent is work for the server (a message to the page) and for the browser (React draws it
    again): the bench measured a watching page receive 52 elements a second while replies streamed to 10
    sessions, and 17 with this.
    """
    if drawn is not None and drawn.parts == parts:
        return drawn
    if (
        drawn is None
        or drawn.header is None
        or (parts.who, parts.files) != (drawn.parts.who, drawn.parts.files)
    ):
        with slot.container():
            return draw(parts, files)
    if parts.header != drawn.parts.header:
        drawn.header.caption(parts.header)
    if parts.text != drawn.parts.text:
        drawn.text.markdown(parts.text)
    if parts.sources != drawn.parts.sources and drawn.sources is not None:
        if parts.sources:
            drawn.sources.caption(parts.sources)
        else:
            drawn.sources.empty()
    if parts.note != drawn.parts.note:
        if parts.note:
            drawn.note.caption(parts.note)
        else:
            drawn.note.empty()
    drawn.parts = parts
    return drawn


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
