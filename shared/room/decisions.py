"""Reply policy "When it can help": after each batch of messages, the assistant is asked whether to answer.

Messages posted under this policy (and not mentioning the assistant) wait in the state's `undecided` list.
The reply worker, holding the room's lease, takes them as one batch (`take_batch`), asks the assistant one
small stateless question about them (`Assistant.decide`: no conversation, nothing stored), and settles the
batch (`settle_batch`): "yes" queues the messages for a turn like any others; "no" posts nothing, costs no
turn, and the messages go to the conversation with the next turn, as under "Only when mentioned".
"""

from __future__ import annotations

from dataclasses import replace

from shared.messages import Batch, Decision, Status
from shared.store import RoomChange, turn_writable

HISTORY_FOR_DECISION = 20  # earlier messages a decision sees, to judge what the new ones need


def take_batch(change: RoomChange, fence: int | None, room: str) -> Batch | None:
    """The messages awaiting a decision, if this worker may decide now; changes nothing."""
    state = change.state
    change.nothing()
    if not turn_writable(state, fence) or not state.undecided or state.turn is not None:
        return None
    messages = tuple(change.messages(state.undecided))
    return Batch(
        room=room,
        messages=messages,
        history=change.history(messages[0].id, HISTORY_FOR_DECISION),
        room_instructions=state.instructions,
    )


def settle_batch(change: RoomChange, fence: int | None, batch: Batch, decision: Decision) -> bool:
    """Answer the batch's messages (queued for the next turn) or let them pass (heard with the next turn).

    Only the messages still undecided are settled (a mention or a policy change may have taken them
    meanwhile); False if none were, or this worker no longer writes the room's turns.
    """
    state = change.state
    ids = [m.id for m in batch.messages if m.id in state.undecided]
    if not turn_writable(state, fence) or not ids:
        change.nothing()
        return False
    state.undecided = [i for i in state.undecided if i not in ids]
    if decision.answer:
        state.batches_answered += 1
        for message in change.messages(ids):
            change.put(replace(message, status=Status.QUEUED))
        state.queue.extend(ids)
    else:
        state.batches_passed += 1
        state.context.extend(ids)
    return True
