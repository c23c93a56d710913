"""What a person can do to a message on the chat page: react (👍 ❤️ 😂 😮 🎉, one of each, toggled), reply
to it, and delete their own; and, above the chat box, the message they are replying to or about to delete.

Each message has one small button under it, named for whose message it is ("Actions for Bob's message")
and then labelled with its reactions and who made them; it opens the
message's actions as one row of pills (one element, not seven buttons). The row is drawn only while its
button is open: opening or closing it reruns the page, and every other message sends its page one element
(the button), not two, which is what each new message costs the server for every page that watches
(docs/bench.md, "Levers"). A row of pills under every message cost each page more than the rest of its
bubbles (the bench's Chromium pages). The row is drawn inside the live run and redrawn there when its
reactions change, so each redraw needs a key of its own (`act-<message id>-<n>`); a click is handled by the
callback the drawing carries, which Streamlit runs before the rerun, whichever drawing was clicked. A new
run draws the row first with the key the page shows (`Session.menu_drawings`): the browser keeps an
earlier run's keyed element that a new run puts another element in place of, beside it, until the run
ends, and a live run never does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import streamlit as st

from shared.errors import MessageRefused
from shared.messages import REACTIONS, Message, Quote, Role, Status, escape_markdown
from shared.room.talk import quote_of
from shared.store import StoreUnavailable
from shared.web.session import Session, session

if TYPE_CHECKING:
    from streamlit.delta_generator import DeltaGenerator

    from shared.room import Room

REPLY, DELETE = "reply", "delete"
_LABELS = {REPLY: ":material/reply: Reply", DELETE: ":material/delete: Delete"}
NAMES_SHOWN = 2  # on the button, per reaction: the first people who made it, then how many more


@dataclass(frozen=True)
class Menu:
    """What a message's row of pills shows: its reactions (emoji, who), and whether it is the viewer's."""

    message_id: int
    reactions: tuple[tuple[str, tuple[str, ...]], ...]
    mine: bool  # the viewer wrote it: they may delete it
    my_reactions: tuple[str, ...]  # the emojis the viewer put on it (by their participant id): shown selected
    quote: Quote  # what a reply to it quotes, for the box's "Replying to"


def menu(message: Message, my_id: str, my_name: str) -> Menu | None:
    """The row of a message people can act on; None for a system line, a reply being written, a deleted
    message."""
    if message.role is Role.SYSTEM or message.deleted or message.status is Status.STREAMING:
        return None
    mine = message.role is Role.USER and message.participant_id == my_id
    quote = Quote(message.id, message.author, first_line(message))
    return Menu(message.id, message.reactions, mine, message.reactions_of(my_id, my_name), quote)


def first_line(message: Message) -> str:
    """What a reply quotes of a message (the room's rule, `quote_of`); a message of files only names them."""
    return quote_of(message).text or ", ".join(file.name for file in message.attachments)


def draw_menu(slot: DeltaGenerator, row: Menu | None, drawing: int, room: Room, my_id: str) -> None:
    """The message's button and the row of pills it opens, in `slot` (emptied for None). `drawing`: how
    many times this run drew it before."""
    if row is None:
        slot.empty()
        return
    counts = dict(row.reactions)
    options = [*REACTIONS, REPLY, *([DELETE] if row.mine else [])]
    mine = list(row.my_reactions)
    key = f"act-{row.message_id}-{drawing}"
    # Opening or closing the button reruns the page: its row is drawn only while it is open, so a
    # closed one (every message but the one a person is acting on) is one element, not two.
    box = slot.popover(
        button_label(row),
        icon=":material/add_reaction:",
        type="tertiary",
        key=f"menu-{row.message_id}-{drawing}",
        on_change="rerun",
    )
    if not box.open:
        return
    session.set_widget(key, mine)  # the pills show this person's reactions as the room holds them
    with box:
        st.pills(
            "React, reply or delete" if row.mine else "React or reply",
            options,
            selection_mode="multi",
            format_func=lambda option: _LABELS.get(option) or _count(option, counts),
            key=key,
            on_change=_acted,
            args=(room, my_id, row, key, tuple(mine)),
            label_visibility="collapsed",
        )


def button_label(row: Menu) -> str:
    """The message's button as a person would name it, then who reacted how: "Actions for Bob's message ·
    👍 Bob". Streamlit hides its icons from screen readers and gives a popover no other name, so the
    visible words are the button's name (and its row's, which Streamlit labels the same)."""
    whose = "your" if row.mine else f"{escape_markdown(row.quote.author)}'s"
    reactions = reactions_line(row)
    return f"Actions for {whose} message" + (f" · {reactions}" if reactions else "")


def reactions_line(row: Menu) -> str:
    """Who reacted how, for the message's button: "👍 Bob, Zoë +2 · 🎉 Ann"; empty when nobody did."""
    shown = []
    for emoji, names in row.reactions:
        first = ", ".join(escape_markdown(n) for n in names[:NAMES_SHOWN])
        more = f" +{len(names) - NAMES_SHOWN}" if len(names) > NAMES_SHOWN else ""
        shown.append(f"{emoji} {first}{more}")
    return " · ".join(shown)


def _count(emoji: str, counts: dict[str, tuple[str, ...]]) -> str:
    return f"{emoji} {len(counts[emoji])}" if counts.get(emoji) else emoji


def _acted(room: Room, my_id: str, row: Menu, key: str, before: tuple[str, ...]) -> None:
    """A click on a message's row (run by Streamlit before the rerun): the pill that changed is the action."""
    now = session.widget(key) or []
    clicked = set(now) ^ set(before)
    try:
        for option in clicked:
            if option == REPLY:
                session.replying_to = (room.name, row.message_id, row.quote.author, row.quote.text)
            elif option == DELETE:
                session.deleting = (room.name, row.message_id, row.quote.text)
            else:
                room.react(my_id, row.message_id, option)
    except MessageRefused as refusal:
        session.refusal = (str(refusal), "")
    except StoreUnavailable:
        session.refusal = ("That did not reach the room: it cannot be reached just now.", "")


def pending(room: Room, my_id: str) -> None:
    """Above the chat box: the message being replied to (with Cancel), or the delete to confirm. Always
    one element, so the live page leaves nothing stale behind."""
    slot = st.empty()
    deleting, replying = session.deleting, session.replying_to
    if deleting is not None and deleting[0] == room.name:
        _, _, line = deleting
        with slot.container(border=True):
            st.caption(f":material/delete: Delete your message “{escape_markdown(line)}” for everyone?")
            with st.container(horizontal=True):
                st.button("Delete", key="delete-yes", type="primary", on_click=_delete, args=(room, my_id))
                st.button("Keep it", key="delete-no", on_click=_forget_delete)
    elif replying is not None and replying[0] == room.name:
        _, _, author, line = replying
        with slot.container(horizontal=True, vertical_alignment="center"):
            st.caption(
                f":material/reply: Replying to **{escape_markdown(author)}**: “{escape_markdown(line)}”"
            )
            st.button(
                "Cancel", key="reply-cancel", icon=":material/close:", type="tertiary", on_click=_no_reply
            )
    else:
        slot.empty()


def _delete(room: Room, my_id: str) -> None:
    deleting = session.take(Session.deleting)
    if deleting is None or deleting[0] != room.name:
        return
    try:
        room.delete_message(my_id, deleting[1])
    except MessageRefused as refusal:
        session.refusal = (str(refusal), "")
    except StoreUnavailable:
        session.refusal = ("Your message was not deleted: the room cannot be reached just now.", "")


def _forget_delete() -> None:
    del session.deleting


def _no_reply() -> None:
    del session.replying_to
