"""“Catch me up”: a private summary of what one person missed, asked of the assistant apart from the room.

The summary is never posted to the room nor added to its conversation: the assistant's `summarize` is a
separate, stateless request, and the page that asked keeps the result. One summary at a time per person,
and each counts against the person's flood limit like a message.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from dataclasses import dataclass, field

from shared.errors import AssistantError, BudgetSpent, CatchUpRefused
from shared.messages import Message, said
from shared.room import Room
from shared.spending import Budget, stopped_line
from shared.store import StoreUnavailable

log = logging.getLogger(__name__)


@dataclass
class CatchUp:
    """One summary being written for one person; the page polls `done`."""

    missed: int  # how many messages it summarizes
    text: str = ""  # the summary, once done
    error: str = ""  # why there is none, once done
    done: threading.Event = field(default_factory=threading.Event)


def missed_messages(messages: tuple[Message, ...], since_id: int, my_id: str) -> list[Message]:
    """What others said after `since_id` (the last message a page of this person showed)."""
    return [m for m in said(messages) if m.id > since_id and m.participant_id != my_id]


class CatchUps:
    """Starts summaries; each person has at most one at a time in a room, on every process (the room's
    store holds the claim, which also lapses by itself if its process dies)."""

    def start(self, room: Room, participant_id: str, nickname: str, since_id: int) -> CatchUp:
        """Start summarizing what this person missed; CatchUpRefused or MessageRefused (flood) if not now."""
        key = (room.name, participant_id)
        # Long enough for one whole request; the claim is released as soon as the summary is written.
        lapse = room.settings.request_timeout_seconds * 2
        if not room.store.claim(room.name, f"catch-up:{participant_id}", lapse, uuid.uuid4().hex):
            raise CatchUpRefused("Your summary is still being written; it appears here in a moment.")
        try:
            room.check_rate(participant_id)
        except Exception:
            room.store.release_claim(room.name, f"catch-up:{participant_id}")
            raise
        missed = missed_messages(room.view().messages, since_id, participant_id)
        job = CatchUp(missed=len(missed))
        threading.Thread(
            target=self._write,
            args=(room, key, missed, nickname, job),
            name=f"catch-up-{room.name}",
            daemon=True,
        ).start()
        return job

    def _write(
        self, room: Room, key: tuple[str, str], missed: list[Message], nickname: str, job: CatchUp
    ) -> None:
        usage: dict[str, int] = {}
        try:
            # Through the room's purse like every model call: none is made once a budget is spent.
            job.text = room.assistant.summarize(missed, nickname, usage, purse=room.purse)
        except BudgetSpent as spent:
            job.error = stopped_line(Budget.APP if spent.app else Budget.ROOM, room.settings)
        except AssistantError as error:
            job.error = f"{room.settings.assistant_name} could not catch you up: {error}"
        except Exception as error:
            log.exception("room %s: a catch-up failed", room.name)
            job.error = f"{room.settings.assistant_name} could not catch you up ({type(error).__name__})."
        finally:
            room.record_usage(usage)  # in the room's totals; the budgets counted it as it was paid (purse)
            with contextlib.suppress(StoreUnavailable):
                room.store.release_claim(room.name, f"catch-up:{key[1]}")
            job.done.set()
