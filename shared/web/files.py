"""How an attached file looks in a message: a picture at its display size, a download button for a PDF,
or a line saying the room no longer keeps it (a picture the assistant drew shows the same way)."""

from __future__ import annotations

import itertools

import streamlit as st

from shared.attachments import AttachmentStore, human_size, preview
from shared.messages import Attachment, escape_markdown

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
