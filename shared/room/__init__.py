"""The room: its people, their messages, the queue awaiting a reply, and the reply in progress.

The rules are written once, as plain functions over one change to the room's state (`shared.store`'s
`RoomChange`, made atomically in memory or Redis), each testable without a room, grouped by theme:
- `presence`: joining, leaving, the reaper letting go of people who went away;
- `talk`: posting and its limits, replying to a message, reactions, taking one's message back, the
  reply policy, Stop;
- `turns`: a worker taking the room, starting a turn, beginning and ending its reply, counting tokens,
  the conversation and the deleted messages it must forget;
- `dress`: what the reply carries besides its words (what the assistant is doing, sources, pictures);
- `lifetime`: a new room, closing it (for good, or once it is idle and empty), finishing its closing;
- `hosting`: the room's instructions, its host, removing people and locking the room;
- `decisions`: reply policy "When it can help", whether the assistant answers a batch of messages.

One object runs them: `Room` (`room.py`), with this process's copy of the room (`mirror.py`), the
browser sessions showing it and what they drew (`seen.py`; what a person has not seen yet, and the
mentions of them in it, is `unread.py`), and its reply worker (`shared.worker`, which
owns its lease, its turn and the pace of its writes). What pages read is in `views.py`.
"""

from __future__ import annotations

from shared.room.hosting import MAX_INSTRUCTIONS_CHARS
from shared.room.presence import CLOSED
from shared.room.room import CLOSE_WAIT_SECONDS, Room, utcnow
from shared.room.talk import mentions
from shared.room.turns import HISTORY_FOR_TURN
from shared.room.views import RoomChanges, RoomStatus, RoomView

__all__ = [
    "CLOSED",
    "CLOSE_WAIT_SECONDS",
    "HISTORY_FOR_TURN",
    "MAX_INSTRUCTIONS_CHARS",
    "Room",
    "RoomChanges",
    "RoomStatus",
    "RoomView",
    "mentions",
    "utcnow",
]
