"""The room's transcript for people to take away: Markdown to read, JSON to process.

Every message appears exactly once, in order, with its author, role, time and status.
"""

from __future__ import annotations

import json
from datetime import datetime

from shared.messages import Message, Role, Status
from shared.room import RoomView


def _when(message: Message) -> str:
    return message.created_at.isoformat(timespec="seconds")


def to_json(view: RoomView) -> str:
    return json.dumps(
        {
            "room": view.name,
            "created_at": view.created_at.isoformat(timespec="seconds"),
            "messages": [
                {
                    "id": m.id,
                    "role": m.role.value,
                    "author": m.author,
                    "text": m.text,
                    "time": _when(m),
                    "status": m.status.value,
                    **({"reply_to": list(m.reply_to)} if m.reply_to else {}),
                    **({"stopped_by": m.stopped_by} if m.stopped_by else {}),
                }
                for m in view.messages
                if not (m.role is Role.ASSISTANT and not m.text)
            ],
        },
        ensure_ascii=False,
        indent=2,
    )


def to_markdown(view: RoomView) -> str:
    lines = [f"# Room {view.name}", "", f"Started {view.created_at:%Y-%m-%d %H:%M} UTC.", ""]
    for m in view.messages:
        if m.role is Role.ASSISTANT and not m.text:
            continue
        if m.role is Role.SYSTEM:
            lines += [f"*{_when(m)} · {m.text}*", ""]
            continue
        note = {
            Status.ERROR: " (broke off)",
            Status.STOPPED: f" (stopped by {m.stopped_by})",
            Status.STREAMING: " (still being written)",
        }.get(m.status, "")
        # A blockquote keeps each message's own Markdown readable without letting it swallow the next.
        quoted = "\n".join("> " + line if line else ">" for line in m.text.splitlines())
        lines += [f"**{m.author}** · {_when(m)}{note}", "", quoted, ""]
    return "\n".join(lines)


def file_stem(room_name: str, created_at: datetime) -> str:
    return f"room-{room_name}-{created_at:%Y%m%d-%H%M}"


# label -> (how to write it, file suffix, MIME type, icon)
FORMATS = {
    "Markdown": (to_markdown, "md", "text/markdown", ":material/download:"),
    "JSON": (to_json, "json", "application/json", ":material/data_object:"),
}
