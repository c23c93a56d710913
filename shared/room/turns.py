"""The assistant's turns: the rules for a worker taking the room, starting a turn, beginning its reply,
ending it, counting what it cost, and keeping the room's conversation.

One worker writes a room's turns at a time (see `shared.worker` and `shared.lease`): every rule it runs
carries its lease's fence, and one rule says whether that fence may still write (`turn_writable`). A fence
of None means the worker no longer holds its lease, or its process stopped serving the room: it may count
tokens, nothing more. A worker that takes over a room ends the turn its predecessor left open, once, as
broken off; that turn's messages go to the assistant again only if its reply never began (otherwise the
conversation has them). Every turn ends in `end_turn`, as an `Ending` says. The reply's growth is not a
rule: the store appends it (`Store.grow`), fenced by the same rule (`growing_reply`).

Each rule is a plain function over a `RoomChange` (testable without a room); `Room` runs them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

from shared.messages import Role, Status, Turn
from shared.store import RoomChange, TurnRecord, turn_writable

HISTORY_FOR_TURN = 50  # finished messages handed to assistants that keep no state of their own
BROKE_OFF = "The assistant's reply broke off because its worker stopped."
CLOSED_MID_REPLY = "The assistant's reply broke off because the room closed."
LOST_REPLY = "The assistant's reply was lost: the rooms' store came back without its last writes."
TRY_AGAIN = " It will try again with the next message."


@dataclass(frozen=True)
class Ending:
    """How a turn ends: its reply's status, the line everyone is shown (none for a complete reply), who
    pressed Stop, and whether its messages go to the assistant again with the next turn (`carry_over`:
    the assistant never got them)."""

    status: Status
    line: str = ""
    stopped_by: str = ""
    carry_over: bool = False


COMPLETE = Ending(Status.COMPLETE)


def stopped(nickname: str) -> Ending:
    """Someone pressed Stop: the reply keeps its text so far."""
    return Ending(Status.STOPPED, f"{nickname} stopped the reply.", stopped_by=nickname)


def broke_off(why: str, *, carry_over: bool = False) -> Ending:
    """The reply was cut short (`why`, shown to all); never complete, whatever text it has."""
    return Ending(Status.ERROR, why + (TRY_AGAIN if carry_over else ""), carry_over=carry_over)


def adopt(change: RoomChange, fence: int, now: datetime) -> None:
    """This worker writes the room's turns from now on; a turn its predecessor left open (its process
    died, was told to stop, or lost the lease) ends here as broken off. If its reply began, the model had
    the turn's messages and the conversation keeps them: they are not sent again."""
    state = change.state
    state.fence = fence
    if state.turn is not None:
        end_turn(change, now, broke_off(BROKE_OFF, carry_over=state.reply_id is None))


def start_turn(
    change: RoomChange, room: str, fence: int | None, now: datetime, files: Callable[[str], bytes | None]
) -> Turn | None:
    """Take every queued message (and any carried over) into one turn; None if there is nothing to
    answer or this worker may not. `files`: an attachment's bytes by id, if the room still keeps them."""
    state = change.state
    if not turn_writable(state, fence) or not state.queue or state.turn is not None:
        change.nothing()
        return None
    ids = state.carried_over + state.queue
    state.carried_over, state.queue = [], []
    context = tuple(change.messages(state.context))
    state.context = []
    messages = tuple(replace(m, status=Status.COMPLETE) for m in change.messages(ids))
    for message in messages:  # taken: no longer "waiting for the assistant"
        change.put(message)
    first = min(m.id for m in messages + context)
    state.turns += 1
    turn = Turn(
        room=room,
        messages=messages,
        history=change.history(first, HISTORY_FOR_TURN),
        present=tuple(p.nickname for p in state.participants.values()),
        now=now,
        context=context,
        number=state.turns,
        room_instructions=state.instructions,
        room_notes=state.notes,
        files={
            a.id: data
            for m in (*context, *messages)
            for a in m.attachments
            if (data := files(a.id)) is not None
        },
    )
    state.turn = TurnRecord(
        number=turn.number,
        message_ids=list(ids),
        context_ids=[m.id for m in context],
        addressees=list(turn.addressees),
        fence=fence,
    )
    return turn


def begin_reply(
    change: RoomChange, turn: Turn, fence: int | None, text: str, author: str, now: datetime
) -> tuple[bool, int | None]:
    """The reply's first words make its message. Returns whether the worker still writes the turn, and
    the reply's id if this made it (its next words are appended by the store)."""
    state = change.state
    mine = turn_writable(state, fence, turn.number)
    if not mine or not text or state.reply_id is not None:
        change.nothing()
        return mine, None
    reply = change.add(
        Role.ASSISTANT, text, now, author=author, status=Status.STREAMING, reply_to=turn.addressees
    )
    state.reply_id = reply.id
    return True, reply.id


def end_turn(change: RoomChange, now: datetime, how: Ending) -> None:
    """End the turn in progress, `how` says (complete, stopped, broken off): its reply keeps its text with
    that status, everyone is shown its line, and with `carry_over` its messages are marked unanswered and
    go with the next turn. `now`: when, for the line it adds. The one place a turn ends."""
    state = change.state
    turn, state.turn = state.turn, None
    if state.reply_id is not None:
        reply = change.message(state.reply_id)
        # However the turn ends, the assistant is no longer doing anything ("searching the web…" goes).
        change.put(replace(reply, status=how.status, stopped_by=how.stopped_by, activity=""))
        state.reply_id = None
    if turn is not None and how.carry_over:
        state.carried_over = turn.message_ids + state.carried_over
        state.context = turn.context_ids + state.context
        for message in change.messages(turn.message_ids):
            change.put(replace(message, status=Status.UNANSWERED))
    if how.line:
        line_status = Status.ERROR if how.status is Status.ERROR else Status.COMPLETE
        change.add(Role.SYSTEM, how.line, now, status=line_status)


def count_usage(change: RoomChange, usage: dict[str, int]) -> int | None:
    """Add `usage` to the room's totals since it opened; the tokens it counted, or None if it used none
    (then nothing changes). What a day may spend is the budgets' ledgers' (`shared.spending`)."""
    tokens = usage.get("total_tokens", 0)
    if tokens <= 0:
        return None
    for key, value in usage.items():
        change.state.usage[key] = change.state.usage.get(key, 0) + value
    return tokens


def record_usage(change: RoomChange, usage: dict[str, int]) -> int | None:
    """Count tokens used outside a turn (a catch-up, a decision); the tokens counted, or None."""
    tokens = count_usage(change, usage)
    if tokens is None:
        change.nothing()
    return tokens


def finish_turn(
    change: RoomChange,
    turn: Turn,
    fence: int | None,
    began: int | None,
    *,
    error: str | None,
    carry_over: bool,
    now: datetime,
) -> int | None:
    """End the turn as its worker saw it end (complete, or broken off with `error`; `carry_over`: the
    assistant never got its messages), unless it is no longer the worker's to end (stopped, taken over,
    the room closed, or `fence` None: the worker lost its lease or its process stopped serving the room,
    and the next holder ends it). Its tokens (`turn.usage`) count whatever happened: a reply that broke
    off was still paid for. `began`: the reply's id as the worker made it; a store that no longer has it
    lost the reply. Returns the tokens counted, or None if the turn used none."""
    tokens = count_usage(change, dict(turn.usage))
    if turn_writable(change.state, fence, turn.number):
        lost = began is not None and change.state.reply_id != began
        if error is not None:
            how = broke_off(error, carry_over=carry_over)
        elif lost:
            how = broke_off(LOST_REPLY)
        else:
            how = replace(COMPLETE, carry_over=carry_over)  # no reply began: nothing to call complete
        end_turn(change, now, how)
    elif tokens is None:
        change.nothing()
    return tokens


def forgotten(change: RoomChange, fence: int | None, message_ids: list[int]) -> bool:
    """The worker took these deleted messages out of the conversation (or gave up): they leave
    `to_forget`. False if this worker no longer writes the room's turns."""
    state = change.state
    left = [m for m in state.to_forget if m.id not in message_ids]
    if not turn_writable(state, fence) or len(left) == len(state.to_forget):
        change.nothing()
        return False
    state.to_forget = left
    return True


def set_conversation(change: RoomChange, conversation: str, fence: int | None) -> bool:
    """Keep the conversation the worker opened; False if the room closed or another worker took it."""
    state = change.state
    if not turn_writable(state, fence):
        change.nothing()
        return False
    state.conversation = conversation
    return True


def forget_conversation(change: RoomChange) -> None:
    """The assistant lost the conversation; the next turn opens a new one."""
    change.state.conversation = None
