"""A room's life: what a new room holds, the rules for closing it (for good, or once it is idle and
empty), and finishing its closing.

A room is decided closed and marked so in one change: a join either comes first (the room is no longer
empty and stays) or finds it closed (and the hub gives a fresh one). With Redis, exactly one process
closes it. That change leaves a job in the store (a `Closing`): delete the room's data and its
conversation. Nothing in a change waits for the model's server: `finish_closing` does that afterwards, run
by whoever holds the room's reaper claim, so a process that dies midway leaves the job to another.

Each rule is a plain function over a `RoomChange` (testable without a room); `Room` runs them.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from shared.messages import Message, Role
from shared.room.turns import CLOSED_MID_REPLY, broke_off, end_turn
from shared.store import Closing, RoomChange, RoomState, Store

if TYPE_CHECKING:
    from shared.assistant import Assistant


def fresh_room(
    assistant_name: str,
    now: datetime,
    clock: float,
    invite_secret: str | None,
    *,
    hosted: bool = True,
) -> tuple[RoomState, Message]:
    """A new room's state and its first message. `invite_secret`: a private room's (it is listed nowhere
    and lets in only who brings it); `hosted`: whether its first person hosts it (the default room's does
    not, unless DEFAULT_ROOM_HOST is on)."""
    state = RoomState.fresh(now)
    state.empty_since = clock
    state.invite_secret = invite_secret
    state.hosted = hosted
    text = f"Welcome to the room! {assistant_name} answers every message."
    return state, Message(id=1, role=Role.SYSTEM, text=text, created_at=state.created_at)


def idle_and_empty(state: RoomState, clock: float, grace: float) -> bool:
    """Nobody has been here for `grace` seconds, and no reply is written or waited for."""
    return (
        state.empty_since is not None
        and clock - state.empty_since >= grace
        and state.turn is None
        and not state.queue
    )


def mark_closed(change: RoomChange, now: datetime) -> None:
    """The room closes: a reply in progress keeps what it had (its late words are dropped), broken off
    and never complete, and the conversation is set aside to be closed."""
    state = change.state
    if state.closed:
        change.nothing()
        return
    if state.turn is not None:
        end_turn(change, now, broke_off(CLOSED_MID_REPLY))
    state.closed = True
    if state.conversation is not None:
        state.conversation_to_close, state.conversation = state.conversation, None


def close_if_idle(change: RoomChange, clock: float, grace: float, now: datetime) -> bool:
    """Close the room if it is idle and empty (see `idle_and_empty`); True if this run did."""
    state = change.state
    if state.closed or not idle_and_empty(state, clock, grace):
        change.nothing()
        return False
    mark_closed(change, now)
    return True


def finish_closing(store: Store, assistant: Assistant, closing: Closing) -> None:
    """Finish closing a room marked closed: its data goes (files included; nothing, if the name opened
    again since, under another generation), then its conversation at the model's server, then the job.

    Each step done twice does no harm, so a process that dies midway leaves a job that the next holder of
    the room's reaper claim finishes: the data is gone already, and a conversation deleted already is
    gone too (the assistant takes "not found" as done). May wait on the model's server."""
    store.delete(closing.room, closing.generation)
    if closing.conversation is not None:
        assistant.close_conversation(closing.conversation)
    store.closed(closing)
