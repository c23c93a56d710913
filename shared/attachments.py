"""Files attached to messages: what a file is (checked from its bytes), and where a room keeps the bytes.

A `Message` carries only an `Attachment` (name, type, size, picture size); the bytes live in the room's
`AttachmentStore`, so pages that copy and compare messages never copy files. A room is bounded
(MAX_ROOM_ATTACHMENTS_MB): which files go past it is the room's rule (`shared.room.talk.keep_files`), decided
in the same change as the message that brings new ones; the store only holds bytes and lets them go.
"""

from __future__ import annotations

import io
import threading
import uuid

from PIL import Image, UnidentifiedImageError

from shared.errors import AttachmentRefused
from shared.messages import Attachment

MB = 1024 * 1024
# What each accepted type starts with; anything else (SVG, HTML, archives, ...) is refused.
_PICTURES = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}
KINDS = {
    "image/png": "PNG picture",
    "image/jpeg": "JPEG picture",
    "image/gif": "GIF picture",
    "image/webp": "WebP picture",
    "application/pdf": "PDF",
}
ACCEPTED = "a PNG, JPEG, GIF or WebP picture or a PDF"
MAX_PIXELS = 50_000_000  # a picture bigger than this is a decompression bomb, not a photo


def sniff(data: bytes) -> str | None:
    """The MIME type the content says it is, from its first bytes; None for anything not accepted."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data.lstrip(b"\x00\t\n\r ")[:5] == b"%PDF-":
        return "application/pdf"
    return None


def human_size(size: int) -> str:
    if size < 1024:
        return f"{size} bytes"
    if size < MB:
        return f"{size / 1024:.0f} KB"
    return f"{size / MB:.1f} MB"


def kind_and_size(attachment: Attachment) -> str:
    """ "PNG picture, 12.0 KB": what a file is, as transcripts and assistants describe it."""
    return f"{KINDS.get(attachment.mime, attachment.mime)}, {human_size(attachment.size)}"


def check_upload(name: str, data: bytes, max_mb: int) -> Attachment:
    """The attachment for an uploaded file, or AttachmentRefused with one sentence naming the file."""
    name = "".join(c for c in name if c.isprintable()).strip()[:200] or "unnamed file"
    if len(data) > max_mb * MB:
        raise AttachmentRefused(
            f"{name} was not attached: it is {human_size(len(data))} and the limit is {max_mb} MB per file."
        )
    mime = sniff(data)
    if mime is None:
        raise AttachmentRefused(f"{name} was not attached: only {ACCEPTED} can be attached.")
    width = height = 0
    if mime.startswith("image/"):
        try:
            with Image.open(io.BytesIO(data)) as picture:
                width, height = picture.size
                if width * height > MAX_PIXELS:
                    raise AttachmentRefused(
                        f"{name} was not attached: at {width}×{height} pixels it is too large a picture."
                    )
                if _PICTURES.get(picture.format or "") != mime:
                    raise ValueError(f"content says {mime}, Pillow says {picture.format}")
                picture.load()  # decodes every pixel: a truncated or fake picture fails here
        except AttachmentRefused:
            raise
        except (
            UnidentifiedImageError,
            OSError,
            ValueError,
            SyntaxError,
            Image.DecompressionBombError,
        ) as error:
            raise AttachmentRefused(
                f"{name} was not attached: it looks like a {KINDS[mime]} but does not open as one."
            ) from error
    return Attachment(id=uuid.uuid4().hex, name=name, mime=mime, size=len(data), width=width, height=height)


def preview(data: bytes, max_width: int) -> bytes:
    """The picture at most `max_width` pixels wide (itself if it already is: an animated GIF stays one).

    Made once per picture, not once per page and redraw: Streamlit would otherwise decode and resize the
    full picture every time any page draws it.
    """
    with Image.open(io.BytesIO(data)) as picture:
        if picture.width <= max_width:
            return data
        height = max(1, round(picture.height * max_width / picture.width))
        small = picture.convert("RGBA" if picture.mode in ("RGBA", "LA", "P") else "RGB")
        small = small.resize((max_width, height), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    small.save(out, format="PNG" if small.mode == "RGBA" else "JPEG", quality=85)
    return out.getvalue()


class AttachmentStore:
    """One room's file bytes by attachment id (in this process's memory)."""

    def __init__(self) -> None:
        self._files: dict[str, bytes] = {}
        self._size = 0
        self._lock = threading.Lock()

    def put(self, attachment_id: str, data: bytes) -> None:
        """Keep a file's bytes (once: a second put of the same id changes nothing)."""
        with self._lock:
            if attachment_id not in self._files:
                self._files[attachment_id] = data
                self._size += len(data)

    def get(self, attachment_id: str) -> bytes | None:
        with self._lock:
            return self._files.get(attachment_id)

    def drop(self, attachment_id: str) -> None:
        with self._lock:
            data = self._files.pop(attachment_id, None)
            self._size -= len(data or b"")

    def clear(self) -> None:
        """The room closed: its files go with it."""
        with self._lock:
            self._files.clear()
            self._size = 0

    @property
    def size(self) -> int:
        with self._lock:
            return self._size
