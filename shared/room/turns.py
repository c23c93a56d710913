"""The assistant's turns: the rules for a worker taking the room, starting a turn, beginning its reply,
ending it, counting what it cost, and keeping the room's conversation.

One worker writes a room's turns at a time (see `shared.worker` and `shared.lease`): every rule it runs
carries its lease's fence, and the state says which fence may write now (`state.fence`). A fence of None
means the worker no longer holds its lease: it may count tokens, nothing more. A worker that takes over a
room ends the turn its dead predecessor left open, once, and the messages of that turn go to the
assistant again with the next message. The reply's growth is not a rule: the store appends it
(`Store.grow`), fenced the same way.

Each rule is a plain function over a `RoomChange` (testable without a room); `Room` runs them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

from shared.messages import Role, Status, Turn
from shared.store import RoomChange, RoomState, TurnRecord

HISTORY_FOR_TURN = 50  # finished messages handed to assistants that keep no state of their own
BROKE_OFF = "The assistant's reply broke off because its worker stopped."
LOST_REPLY = "The assistant's reply was lost: the rooms' store came back without its last writes."


def utc_day(now: datetime) -> str:
    """The UTC day (ISO) a room's daily token budget counts."""
    return now.astimezone(UTC).date().isoformat()


def writes(state: RoomState, turn_number: int, fence: int | None) -> bool:
    """Whether the worker holding `fence` still writes that turn (it was not stopped, taken over or closed)."""
    turn = state.turn
    mine = fence is not None and turn is not None and turn.number == turn_number and state.fence == fence
    return mine and not state.closed


def adopt(change: RoomChange, fence: int, now: datetime) -> None:
    """This worker writes the room's turns from now on; a turn left open by a dead one ends here."""
    state = change.state
    state.fence = fence
    if state.turn is not None:
        end_turn(change, now, BROKE_OFF, carry_over=True)


def start_turn(
    change: RoomChange, room: str, fence: int | None, now: datetime, files: Callable[[str], bytes | None]
) -> Turn | None:
    """Take every queued message (and any carried over) into one turn; None if there is nothing to
    answer or this worker may not. `files`: an attachment's bytes by id, if the room still keeps them."""
    state = change.state
    if fence is None or state.fence != fence or state.closed or not state.queue or state.turn is not None:
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
    mine = writes(state, turn.number, fence)
    if not mine or not text or state.reply_id is not None:
        change.nothing()
        return mine, None
    reply = change.add(
        Role.ASSISTANT, text, now, author=author, status=Status.STREAMING, reply_to=turn.addressees
    )
    state.reply_id = reply.id
    return True, reply.id


def end_turn(
    change: RoomChange,
    now: datetime,
    error: str | None = None,
    *,
    carry_over: bool = False,
    stopped_by: str = "",
) -> None:
    """End the turn in progress: its reply keeps its text, marked complete, stopped (by whom) or broken
    off (`error`, shown to all). With `carry_over` the assistant never saw the turn's messages: they are
    marked unanswered and go with the next turn. `now`: when, for the lines it adds."""
    state = change.state
    turn, state.turn = state.turn, None
    if state.reply_id is not None:
        reply = change.message(state.reply_id)
        status = Status.ERROR if error else Status.STOPPED if stopped_by else Status.COMPLETE
        # However the turn ends, the assistant is no longer doing anything ("searching the web…" goes).
        change.put(replace(reply, status=status, stopped_by=stopped_by, activity=""))
        state.reply_id = None
    if turn is not None and carry_over:
        state.carried_over = turn.message_ids + state.carried_over
        state.context = turn.context_ids + state.context
        for message in change.messages(turn.message_ids):
            change.put(replace(message, status=Status.UNANSWERED))
    if stopped_by and not error:
        change.add(Role.SYSTEM, f"{stopped_by} stopped the reply.", now)
    if error:
        again = " It will try again with the next message." if carry_over else ""
        change.add(Role.SYSTEM, error + again, now, status=Status.ERROR)


def count_usage(change: RoomChange, today: str, usage: dict[str, int]) -> int | None:
    """Add `usage` to the room's totals and today's (UTC) tokens, a new day starting from 0; today's
    count, or None if it used none (then nothing changes)."""
    tokens = usage.get("total_tokens", 0)
    if tokens <= 0:
        return None
    state = change.state
    if state.usage_day != today:
        state.usage_day, state.tokens_on_day = today, 0
    state.tokens_on_day += tokens
    for key, value in usage.items():
        state.usage[key] = state.usage.get(key, 0) + value
    return state.tokens_on_day


def record_usage(change: RoomChange, today: str, usage: dict[str, int]) -> int | None:
    """Count tokens used outside a turn (a catch-up, a decision); today's count, or None."""
    tokens = count_usage(change, today, usage)
    if tokens is None:
        change.nothing()
    return tokens


def finish_turn(
    change: RoomChange,
    turn: Turn,
    fence: int | None,
    began: int | None,
    today: str,
    *,
    error: str | None,
    carry_over: bool,
    now: datetime,
) -> int | None:
    """End the turn as its worker saw it end (complete, or broken off with `error`), unless it is over
    already (stopped, taken over, the room closed). Its tokens (`turn.usage`) count whatever happened: a
    reply that broke off was still paid for. `began`: the reply's id as the worker made it; a store that
    no longer has it lost the reply. Returns today's token count, or None if the turn used none."""
    tokens = count_usage(change, today, dict(turn.usage))
    if writes(change.state, turn.number, fence):
        lost = began is not None and change.state.reply_id != began
        end_turn(change, now, LOST_REPLY if lost and not error else error, carry_over=carry_over)
    elif tokens is None:
        change.nothing()
    return tokens


def forgotten(change: RoomChange, fence: int | None, message_ids: list[int]) -> bool:
    """The worker took these deleted messages out of the conversation (or gave up): they leave
    `to_forget`. False if this worker no longer writes the room's turns."""
    state = change.state
    left = [m for m in state.to_forget if m.id not in message_ids]
    if fence is None or state.fence != fence or len(left) == len(state.to_forget):
        change.nothing()
        return False
    state.to_forget = left
    return True


def set_conversation(change: RoomChange, conversation: str, fence: int | None) -> bool:
    """Keep the conversation the worker opened; False if the room closed or another worker took it."""
    state = change.state
    if fence is None or state.closed or state.fence != fence:
        change.nothing()
        return False
    state.conversation = conversation
    return True


def forget_conversation(change: RoomChange) -> None:
    """The assistant lost the conversation; the next turn opens a new one."""
    change.state.conversation = None
