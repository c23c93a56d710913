""" "Room notes" on the pages: the panel (folded at the top of the chat page, kept current by its live
page; open on This room), and on This room the controls to add, edit and remove an item, redrawn every
`LIVE_SECONDS` in a fragment of their own, so others' edits and the assistant's notes show up there too.

Everything in the notes was written by people or the model: it is drawn escaped, never as raw HTML.
"""

from __future__ import annotations

import zlib

import streamlit as st

from shared.errors import ChatError
from shared.messages import NOTE_LISTS, NoteItem, NoteKind, Notes
from shared.room import Room
from shared.room.notes import MAX_NOTE_CHARS, MAX_WHO_CHARS
from shared.web.messages import escape_markdown
from shared.web.session import Session, session

TITLE = "Room notes"
HOW_TO_MARK = (
    'Start a line with "decided:" for a decision, "todo @Name" for an action item, or end a question '
    'with "?open" to note it; the assistant notes what it hears too, when a model is connected.'
)
LIVE_SECONDS = 3.0  # This room: how often its notes are drawn again (a fragment; nothing else reruns)
SINGULAR = {NoteKind.DECISION: "decision", NoteKind.ACTION: "action item", NoteKind.QUESTION: "open question"}


def _line(item: NoteItem) -> str:
    who = f"**{escape_markdown(item.who)}**: " if item.who else ""
    by = f" · *{escape_markdown(item.by)}*" if item.by else ""
    return f"- {who}{escape_markdown(item.text)}{by}"


def notes_lists(notes: Notes) -> None:
    """The three lists as one Markdown element (one element, so a redraw leaves nothing behind)."""
    parts = []
    for kind, title in NOTE_LISTS.items():
        items = notes.of(kind)
        parts.append(f"**{title}**\n\n" + ("\n".join(map(_line, items)) if items else "*None yet.*"))
    st.markdown("\n\n".join(parts))


def notes_panel(notes: Notes, *, expanded: bool = False) -> None:
    """The panel: folded on the chat page (its live page redraws it when the notes change)."""
    with st.expander(f":material/checklist: {TITLE}", expanded=expanded):
        notes_lists(notes)
        st.caption(HOW_TO_MARK + " Edit or remove items on the This room page.")


def live_notes_section(room: Room, my_id: str | None) -> None:
    """This room's notes, drawn again every `LIVE_SECONDS` from the process's copy of the room (no store
    read). A form's widgets keep their keys from one draw to the next, so what a person is typing in one
    stays; a form whose item someone else changed is drawn fresh with the new text (`_item_form`)."""

    # What became of a change is said once per run of the page, above the notes: drawn inside them, the
    # next redraw would take it away. A refused form keeps what was typed through that run.
    said, refused = session.take(Session.notes_said), session.take(Session.notes_refused)
    if my_id is not None and said:
        st.success(said)
    if my_id is not None and refused:
        st.error(refused)

    @st.fragment(run_every=LIVE_SECONDS)
    def section() -> None:
        notes_section(room, my_id)

    section()


def notes_section(room: Room, my_id: str | None) -> None:
    """This room's notes, open, with a form per item for anyone present (the room checks again)."""
    notes = room.notes
    if my_id is None:
        notes_lists(notes)
        st.caption("Join the room on the chat page to change them.")
        return
    st.caption(HOW_TO_MARK + " Anyone here may add, edit or remove an item, and everyone is told.")
    for kind, title in NOTE_LISTS.items():
        st.subheader(title)
        items = notes.of(kind)
        if not items:
            st.markdown("*None yet.*")
        for number, item in enumerate(items, 1):
            _item_form(room, my_id, item, f"{SINGULAR[kind].capitalize()} {number}")
    _add_form(room, my_id)


def _item_form(room: Room, my_id: str, item: NoteItem, name: str) -> None:
    # Keyed by what the item says: an edit by someone else draws a fresh form with the new text.
    with st.form(f"note-{item.id}-{zlib.crc32(f'{item.who}|{item.text}'.encode())}", border=True):
        by = f" (noted by {escape_markdown(item.by)})" if item.by else ""
        who = item.who
        if item.kind is NoteKind.ACTION:
            who = st.text_input(f"{name}: who{by}", value=item.who, max_chars=MAX_WHO_CHARS)
        text = st.text_input(
            f"{name}{by}" if item.kind is not NoteKind.ACTION else f"{name}: what",
            value=item.text,
            max_chars=MAX_NOTE_CHARS,
        )
        left, right = st.columns(2)
        save = left.form_submit_button(f"Save {name.lower()}", icon=":material/save:")
        remove = right.form_submit_button(f"Remove {name.lower()}", icon=":material/delete:")
    if save or remove:
        _act(
            lambda: room.remove_note(my_id, item.id) if remove else room.edit_note(my_id, item.id, text, who),
            f"{name} {'removed' if remove else 'saved'}. Everyone in the room was told.",
        )


def _add_form(room: Room, my_id: str) -> None:
    # A new form (empty) once this tab added an item; a refused one, or anyone else's change, keeps what
    # was typed.
    with st.form(f"note-add-{session.notes_added}", border=True):
        st.markdown("**Add to the notes**")
        kind = st.selectbox("List", list(NOTE_LISTS), format_func=NOTE_LISTS.get)
        who = st.text_input("Who (action items only)", max_chars=MAX_WHO_CHARS)
        text = st.text_input("Note", max_chars=MAX_NOTE_CHARS, placeholder="e.g. We meet on Friday at 6")
        added = st.form_submit_button("Add to the notes", icon=":material/add:")
    if added:

        def add() -> None:
            room.add_note(my_id, kind, text, who)
            session.notes_added += 1

        _act(add, f"Added to {NOTE_LISTS[kind]}. Everyone in the room was told.")


def _act(change, done: str) -> None:
    try:
        change()
    except ChatError as refusal:
        session.notes_refused = str(refusal)
    else:
        session.notes_said = done
    st.rerun()
