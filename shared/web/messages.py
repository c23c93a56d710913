"""How a message looks: one chat bubble per message (its header, text, attached files, the sources a reply
cites and a note), the reply being written, and times in the browser's time zone."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

import streamlit as st

from shared import messages
from shared.markdown_pictures import as_typed, pictures_as_links
from shared.messages import Attachment, Message, Role, Source, Status
from shared.web.actions import Menu, menu
from shared.web.files import attachment

if TYPE_CHECKING:
    from collections.abc import Callable

    from streamlit.delta_generator import DeltaGenerator

    from shared.attachments import AttachmentStore

    # Draws a message's row of actions (or nothing, for None) in a slot.
    DrawMenu = Callable[[DeltaGenerator, Menu | None], None]

AVATARS = {"me": ":material/person:", "them": ":material/group:", Role.ASSISTANT: ":material/pets:"}


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
    menu: Menu | None = None  # reactions, Reply, Delete; None: nobody can act on it (yet)
    anchor: int | None = None  # the message's id when a reply quotes it: the quote's link scrolls here
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


def quote_line(message: Message) -> str:
    """The line above a reply's text: whom it replies to and what they said, linked to that message."""
    quote = message.quote
    if quote is None:
        return ""
    if not quote.author:  # its author deleted it
        return f":material/reply: [*a deleted message*](#m-{quote.id})"
    said = f" “{escape_markdown(quote.text)}”" if quote.text else ""
    return f":material/reply: [**{escape_markdown(quote.author)}**{said}](#m-{quote.id})"


def message_parts(message: Message, my_id: str, my_name: str = "", *, quoted: bool = False) -> Parts:
    """What `message` shows to the person `my_id` (`my_name`); `quoted`: a reply on the page quotes it,
    so it holds the anchor the quote links to (only then: an anchor is one more element per message)."""
    when = local_time(message.created_at)
    anchor = message.id if quoted else None
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
        row = menu(message, my_id, my_name)
        # A picture the assistant drew shows like an attached one.
        return Parts(
            Role.ASSISTANT,
            header,
            message.text,
            note,
            message.attachments,
            menu=row,
            anchor=anchor,
            sources=sources_line(message.sources),
        )
    mine = message.participant_id == my_id
    note = {
        Status.QUEUED: ":material/schedule: waiting for the assistant",
        Status.UNANSWERED: ":material/replay: not answered: it goes to the assistant again with the next message",
    }.get(message.status)
    header = f"**{escape_markdown(message.author)}**" + (" (you)" if mine else "") + f" · {when}"
    who = "me" if mine else "them"
    if message.deleted:
        return Parts(who, header, ":material/delete: *message deleted*", anchor=anchor)
    if message.quote is not None:  # under the author's name: one element less per message
        header += "  \n" + quote_line(message)
    return Parts(who, header, message.text, note, message.attachments, menu(message, my_id, my_name), anchor)


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
    note: DeltaGenerator | None = None  # what `under` says: a reply's sources, then its note
    menu: DeltaGenerator | None = None


# Anchors take no room (their element is lifted out of the bubble's flow, and moves with the bubble), and
# a link to one scrolls its message to just under the page's top bar.
ANCHOR_STYLE = (
    "<style>div[data-testid='stElementContainer']:has(.m-anchor){position:absolute}"
    "[data-testid='stChatMessage']{position:relative}.m-anchor{scroll-margin-top:4rem}</style>"
)


def under(parts: Parts) -> str:
    """What a bubble says under its text, in one caption (one element, not one each): a reply's sources,
    then the message's note."""
    return "  \n".join(line for line in (parts.sources, parts.note) if line)


def draw(
    slot: DeltaGenerator,
    parts: Parts,
    files: AttachmentStore | None = None,
    draw_menu: DrawMenu | None = None,
) -> Drawn:
    """The message in `slot`, in place of what it held. A bubble always holds the same elements (header,
    text, one per attached file, what is `under` it, actions; an anchor first when a reply quotes it),
    empty ones included: the browser keeps what a bubble held past the elements a new run draws in it
    (a live run never ends, so Streamlit never clears them), so a bubble drawn with fewer elements than
    before would leave an old one behind. Each is drawn at once, not as a placeholder filled after, and
    the bubble is the slot itself, in no container of its own: every element sent is a message to the
    page, and the server wakes its event loop for each."""
    if parts.who is Role.SYSTEM:
        slot.caption(parts.header)
        return Drawn(parts)
    name = "assistant" if parts.who is Role.ASSISTANT else "user"
    with slot.chat_message(name, avatar=AVATARS[parts.who]):
        if parts.anchor is not None:  # our own markup and a number: no text of anyone's
            st.html(f'<div id="m-{int(parts.anchor)}" class="m-anchor"></div>')
        header, text = st.caption(parts.header), st.markdown(shown_text(parts))
        for file in parts.files:
            attachment(file, files)
        below = under(parts)
        note = st.caption(below) if below else st.empty()
        row = st.empty()
        if draw_menu is not None:
            draw_menu(row, parts.menu)
    return Drawn(parts, header, text, note, row)


def shown_text(parts: Parts) -> str:
    """A message's Markdown as drawn: a person's with their line breaks, the model's as it wrote it."""
    return pictures_as_links(parts.text) if parts.who is Role.ASSISTANT else as_typed(parts.text)


def redraw(
    slot: DeltaGenerator,
    drawn: Drawn | None,
    parts: Parts,
    files: AttachmentStore | None,
    draw_menu: DrawMenu | None = None,
) -> Drawn:
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
        or (parts.who, parts.files, parts.anchor) != (drawn.parts.who, drawn.parts.files, drawn.parts.anchor)
    ):
        return draw(slot, parts, files, draw_menu)
    if parts.header != drawn.parts.header:
        drawn.header.caption(parts.header)
    if parts.text != drawn.parts.text:
        drawn.text.markdown(shown_text(parts))
    below = under(parts)
    if below != under(drawn.parts):
        if below:
            drawn.note.caption(below)
        else:
            drawn.note.empty()
    if parts.menu != drawn.parts.menu and drawn.menu is not None and draw_menu is not None:
        draw_menu(drawn.menu, parts.menu)
    drawn.parts = parts
    return drawn
