"""What a page reads of a room: a consistent view, the changes since a version, and the status line."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from shared.messages import Message, Notes, Participant, ReplyPolicy
from shared.store import RoomRecord


@dataclass(frozen=True)
class RoomStatus:
    """What the assistant is doing and when it speaks: small, so a page can take it on every wake-up."""

    replying_to: tuple[str, ...]  # whom the reply being written answers; empty between turns
    waiting: tuple[str, ...]  # people whose messages wait for the next turn, in the order they spoke
    turn: int  # counts turns, so that one turn's Stop button is not the next one's
    policy: ReplyPolicy
    policy_changes: int  # counts policy changes, so a page redraws its control when someone changes it
    host: str | None = None  # the host's participant id
    locked: bool = False  # nobody new may join
    instructions: str = ""  # the room's instructions, as its people wrote them
    instructions_locked: bool = False  # the host keeps them as they are
    activity: str = (
        ""  # what the assistant does while it writes the reply ("searching the web…"), if anything
    )
    notes: Notes = Notes()  # "Room notes": decisions, action items, open questions (values never changed)

    @property
    def busy(self) -> bool:
        return bool(self.replying_to or self.waiting)

    @classmethod
    def of(cls, record: RoomRecord) -> RoomStatus:
        """The status of a room record; hold its lock."""
        state = record.state
        # Messages carried over from a failed turn are not waited for: they go with the next message.
        return cls(
            replying_to=tuple(state.turn.addressees) if state.turn is not None else (),
            waiting=tuple(dict.fromkeys(record.messages[i - 1].author for i in state.queue)),
            turn=state.turns,
            policy=state.policy,
            policy_changes=state.policy_changes,
            host=state.host,
            locked=state.locked,
            instructions=state.instructions,
            instructions_locked=state.instructions_locked,
            notes=state.notes,
            activity=record.messages[state.reply_id - 1].activity
            if state.reply_id and state.reply_id <= len(record.messages)
            else "",
        )


@dataclass(frozen=True)
class RoomChanges:
    """What changed in a room since a version a page drew: all the page needs to catch up."""

    version: int
    messages: tuple[Message, ...]  # added or changed since then, by id
    participants: tuple[Participant, ...] | None  # None: nobody joined or left since then
    status: RoomStatus


@dataclass(frozen=True)
class RoomView:
    """A consistent copy of the room at one version, for a page to render."""

    name: str
    version: int
    messages: tuple[Message, ...]
    participants: tuple[Participant, ...]
    status: RoomStatus
    reply_id: int | None
    created_at: datetime

    @property
    def busy(self) -> bool:
        return self.status.busy

    @property
    def replying_to(self) -> tuple[str, ...]:
        return self.status.replying_to

    @property
    def policy(self) -> ReplyPolicy:
        return self.status.policy

    @property
    def host(self) -> str | None:
        return self.status.host

    @property
    def instructions(self) -> str:
        return self.status.instructions

    @property
    def reply(self) -> Message | None:
        """The assistant's reply being written now, if any."""
        return None if self.reply_id is None else self.messages[self.reply_id - 1]

    def participant(self, participant_id: str) -> Participant | None:
        return next((p for p in self.participants if p.id == participant_id), None)
