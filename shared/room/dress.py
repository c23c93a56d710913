"""What an assistant's reply carries besides its words: what the assistant is doing now ("searching the
web…"), the web pages it cites, the pictures it drew. The rule for putting them on the reply, fenced like
the reply's other writes (`shared.room.turns`).

Each rule is a plain function over a `RoomChange` (testable without a room); `Room` runs them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from shared.messages import Attachment, Role, Source, Status, Turn
from shared.room.talk import keep_files
from shared.store import RoomChange, turn_writable


def dress_reply(
    change: RoomChange,
    turn: Turn,
    fence: int | None,
    *,
    activity: str | None,
    sources: Sequence[Source],
    pictures: Sequence[Attachment],
    files_limit: int,
    author: str,
    now: datetime,
) -> tuple[bool, int | None]:
    """Set the reply's activity (None: leave it), add the sources it does not cite yet and the pictures.

    An activity or picture may come before the reply's first words: then this makes the reply, with no
    text yet, so everyone sees at once what the assistant is doing. Returns whether the worker still
    writes the turn, and the reply's id. `files_limit`: the bytes of files the room keeps: past it, older
    files go in this change (`keep_files`), never before the pictures are on the reply.
    """
    state = change.state
    if not turn_writable(state, fence, turn.number):
        change.nothing()
        return False, None
    if state.reply_id is None:
        reply = change.add(
            Role.ASSISTANT, "", now, author=author, status=Status.STREAMING, reply_to=turn.addressees
        )
        state.reply_id = reply.id
    else:
        reply = change.message(state.reply_id)
    cited = {source.url for source in reply.sources}
    new_sources = tuple(dict.fromkeys(s for s in sources if s.url not in cited))
    dressed = replace(
        reply,
        activity=reply.activity if activity is None else activity,
        sources=reply.sources + new_sources,
        attachments=reply.attachments + tuple(pictures),
    )
    if dressed == reply:
        change.nothing()
        return True, reply.id
    change.put(dressed)
    keep_files(change, reply.id, pictures, files_limit)
    return True, reply.id
