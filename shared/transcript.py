"""The room's transcript for people to take away: Markdown to read, JSON to process.

Every message appears exactly once, in order, with its author, role, time and status, the message it
replies to (quoted), and who reacted how; a message its author took back appears as "message deleted".
The room's notes (decisions, action items, open questions) come after its instructions.
Attached files are listed (Markdown) or described (JSON: name, type, size, picture size); their bytes
stay with the room.
A picture the assistant drew is listed like an attached file; the web pages a reply cites follow it.
"""

from __future__ import annotations

import json
from datetime import datetime
from urllib.parse import quote

from shared.attachments import kind_and_size
from shared.messages import (
    NOTE_LISTS,
    Attachment,
    Message,
    NoteKind,
    Notes,
    Quote,
    Role,
    Source,
    Status,
    escape_markdown,
)
from shared.room import RoomView


def _when(message: Message) -> str:
    return message.created_at.isoformat(timespec="seconds")


def _file(attachment: Attachment) -> dict[str, object]:
    return {
        "name": attachment.name,
        "type": attachment.mime,
        "size": attachment.size,
        **({"width": attachment.width, "height": attachment.height} if attachment.is_image else {}),
        **({"dropped": True} if attachment.dropped else {}),
    }


def _file_line(attachment: Attachment) -> str:
    pixels = f", {attachment.width}×{attachment.height}" if attachment.is_image else ""
    gone = " (no longer kept)" if attachment.dropped else ""
    name = attachment.name.replace("`", "'")
    return f"- attached `{name}` ({kind_and_size(attachment)}{pixels}){gone}"


def _quote(quote: Quote) -> dict[str, object]:
    if not quote.author:
        return {"id": quote.id, "deleted": True}
    return {"id": quote.id, "author": quote.author, "text": quote.text}


def _quote_line(quote: Quote) -> str:
    if not quote.author:
        return "↪ replying to a deleted message"
    return f"↪ replying to **{quote.author}**: {json.dumps(quote.text, ensure_ascii=False)}"


def _reactions_line(message: Message) -> str:
    """`(👍 Alice, Bob) (❤️ Carol)`"""
    return " ".join(f"({emoji} {', '.join(names)})" for emoji, names in message.reactions)


SAFE_IN_ADDRESSES = ":/?#@!$&'()*+,;=%~-._"  # what a cited address keeps as it is in `<...>`


def _source_line(source: Source) -> str:
    title = (source.title or source.url).replace("`", "'")
    return f"- source: `{title}` <{quote(source.url, safe=SAFE_IN_ADDRESSES)}>"


def _shown(message: Message) -> bool:
    """Not an assistant's reply with nothing in it yet (no words, no picture)."""
    return not (message.role is Role.ASSISTANT and not message.text and not message.attachments)


def _notes(notes: Notes) -> dict[str, list[dict[str, object]]]:
    def item(note) -> dict[str, object]:
        if note.kind is NoteKind.ACTION:
            return {"id": note.id, "who": note.who, "what": note.text, "by": note.by}
        return {"id": note.id, "text": note.text, "by": note.by}

    return {
        "decisions": [item(n) for n in notes.of(NoteKind.DECISION)],
        "action_items": [item(n) for n in notes.of(NoteKind.ACTION)],
        "open_questions": [item(n) for n in notes.of(NoteKind.QUESTION)],
    }


def _notes_lines(notes: Notes) -> list[str]:
    """The notes as Markdown lists (escaped: people and the model wrote them); nothing if there are none."""
    if not notes.items:
        return []
    lines = ["## Room notes", ""]
    for kind, title in NOTE_LISTS.items():
        items = notes.of(kind)
        lines += [f"### {title}", ""]
        for n in items:
            who = f"{escape_markdown(n.who)}: " if n.who else ""
            lines.append(f"- {who}{escape_markdown(n.text)}")
        lines += ([] if items else ["*None.*"]) + [""]
    return lines


def to_json(view: RoomView) -> str:
    return json.dumps(
        {
            "room": view.name,
            "created_at": view.created_at.isoformat(timespec="seconds"),
            "instructions": view.instructions,
            "notes": _notes(view.status.notes),
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
                    **({"attachments": [_file(a) for a in m.attachments]} if m.attachments else {}),
                    **({"replying_to": _quote(m.quote)} if m.quote else {}),
                    **({"reactions": {e: list(names) for e, names in m.reactions}} if m.reactions else {}),
                    **({"deleted": True} if m.deleted else {}),
                    **(
                        {"sources": [{"url": s.url, "title": s.title} for s in m.sources]}
                        if m.sources
                        else {}
                    ),
                }
                for m in view.messages
                if _shown(m)
            ],
        },
        ensure_ascii=False,
        indent=2,
    )


def to_markdown(view: RoomView) -> str:
    lines = [f"# Room {view.name}", "", f"Started {view.created_at:%Y-%m-%d %H:%M} UTC.", ""]
    if view.instructions:
        lines += [
            "Room instructions:",
            "",
            *("> " + line if line else ">" for line in view.instructions.splitlines()),
            "",
        ]
    lines += _notes_lines(view.status.notes)
    for m in view.messages:
        if not _shown(m):
            continue
        if m.role is Role.SYSTEM:
            lines += [f"*{_when(m)} · {m.text}*", ""]
            continue
        note = {
            Status.ERROR: " (broke off)",
            Status.STOPPED: f" (stopped by {m.stopped_by})",
            Status.STREAMING: " (still being written)",
        }.get(m.status, "")
        if m.deleted:
            lines += [f"**{m.author}** · {_when(m)}", "", "> *message deleted*", ""]
            continue
        lines += [f"**{m.author}** · {_when(m)}{note}", ""]
        if m.quote:
            lines += [_quote_line(m.quote), ""]
        # A blockquote keeps each message's own Markdown readable without letting it swallow the next.
        lines += ["\n".join("> " + line if line else ">" for line in m.text.splitlines()), ""]
        if m.attachments:  # a picture the assistant drew is listed like an attached file
            lines += [*map(_file_line, m.attachments), ""]
        if m.sources:
            lines += [*map(_source_line, m.sources), ""]
        if m.reactions:
            lines += [_reactions_line(m), ""]
    return "\n".join(lines)


def file_stem(room_name: str, created_at: datetime) -> str:
    return f"room-{room_name}-{created_at:%Y%m%d-%H%M}"


# label -> (how to write it, file suffix, MIME type, icon)
FORMATS = {
    "Markdown": (to_markdown, "md", "text/markdown", ":material/download:"),
    "JSON": (to_json, "json", "application/json", ":material/data_object:"),
}
