"""The room: its people, their messages, the queue awaiting a reply, and the reply in progress.

The rules are written once, in four parts, over the store seam (`shared.store`: memory or Redis):
- `core`: how a rule changes the room, how pages read and follow it, closing;
- `presence`: joining, browser sessions coming and going, leaving, the reaper's rule;
- `talk`: posting and its limits, the reply policy, Stop;
- `turns`: the reply worker's lease, its turns and the reply as it grows, the conversation;
- `hosting`: the room's instructions, its host, removing people and locking the room;
- `decisions`: reply policy "When it can help", whether the assistant answers a batch of messages.
"""

from __future__ import annotations

from shared.room.core import CLOSE_WAIT_SECONDS, RoomCore, utcnow
from shared.room.decisions import Decisions
from shared.room.hosting import MAX_INSTRUCTIONS_CHARS, Hosting
from shared.room.presence import Presence
from shared.room.talk import Talk, mentions
from shared.room.turns import HISTORY_FOR_TURN, Turns
from shared.room.views import RoomChanges, RoomStatus, RoomView

__all__ = [
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


class Room(Presence, Talk, Hosting, Decisions, Turns, RoomCore):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.store.shared:
            self._ensure_worker()  # any process may have to take over a room whose worker died
