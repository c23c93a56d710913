"""The chat box: what a person sends (text, pictures, PDFs) goes to the room; a refusal is explained under
the conversation, with the unsent text handed back to copy."""

from __future__ import annotations

import streamlit as st

from shared.attachments import check_upload
from shared.errors import AttachmentRefused, MessageRefused
from shared.messages import Participant
from shared.room import Room
from shared.store import StoreUnavailable
from shared.web.session import Session, session


def chat_box() -> object:
    """The box. It never closes: Streamlit drops what a disabled widget sends, and a message written
    while the assistant replies simply waits for the next turn."""
    return st.chat_input("Send message", key="message", accept_file="multiple")


def post(room: Room, participant: Participant, sent: object) -> None:
    """Post what the person typed and attached (the chat box's value, or None); a refused file is
    explained in one sentence and the text still goes; a refused message hands its text back to them.
    A file's type is checked from its content, not its name."""
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
        session.refusal = (" ".join(refusals) + " Nothing was sent.", "")
        return
    replying = session.take(Session.replying_to)
    replying_to = replying[1] if replying and replying[0] == room.name else None  # not another room's
    try:
        room.post(participant.id, text, attached, replying_to=replying_to)
    except MessageRefused as refusal:
        session.refusal = (" ".join([str(refusal), *refusals]), text)
        session.replying_to = replying  # still replying when they send it again
    except StoreUnavailable:
        session.refusal = ("Your message was not sent: the room cannot be reached just now.", text)
        session.replying_to = replying
    else:
        if refusals:
            session.refusal = (" ".join(refusals) + " The rest of your message was sent.", "")


def show_refusal() -> None:
    """Explain why the last message was not sent, and hand its text back to copy.

    Always one element, so that the live page leaves nothing stale behind once it is gone.
    """
    slot = st.empty()
    refusal = session.take(Session.refusal)
    if refusal is None:
        slot.empty()  # a new placeholder alone would leave the old refusal showing
        return
    reason, text = refusal
    with slot.container():
        st.error(reason, icon=":material/block:")
        if text.strip():
            with st.expander("Your unsent message, to copy and shorten"):
                st.code(text[:20_000] + ("\n…" if len(text) > 20_000 else ""), language=None)
