"""What a reply worker and its room are to each other: the tasks the room gives, and what the worker may
ask of the room (`WorkerRoom`; `shared.room.Room` is the one)."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Sequence

    from shared.assistant import Assistant
    from shared.config import Settings
    from shared.messages import Batch, Decision, Message, NotesBatch, NotesUpdate, Picture, Source, Turn
    from shared.spending import Budget, Purse
    from shared.store import Growth, Store


class WorkerTask(enum.Enum):
    """What the room gives its worker to do next."""

    ANSWER = "answer"  # messages wait: answer them in one turn (opening the conversation if none is open)
    STOP = "stop"  # the room closed


class WorkerRoom(Protocol):
    """What the worker needs of its room (`shared.room.Room` is the one): the whole contract between them.

    Every write passes the worker's fence (None once its lease is lost: then nothing is written) and
    raises `RoomClosed` or `StoreUnavailable` as the room's changes do.
    """

    name: str
    settings: Settings
    assistant: Assistant
    store: Store
    purse: Purse  # every call to the model goes through it

    @property
    def serving(self) -> bool:
        """Whether this process still serves the room."""

    def next_task(self, not_before: float, recheck: float | None) -> WorkerTask:
        """Block until there is something to answer (not before `not_before`, monotonic time) or the
        room closed; look again every `recheck` seconds."""

    def adopt(self, fence: int) -> None: ...
    def start_turn(self, fence: int | None) -> Turn | None: ...
    def begin_reply(self, turn: Turn, fence: int | None, text: str) -> tuple[bool, int | None]:
        """Whether the worker still writes the turn, and the reply's id if this made it."""

    def dress_reply(
        self,
        turn: Turn,
        fence: int | None,
        *,
        activity: str | None = None,
        sources: Sequence[Source] = (),
        pictures: Sequence[Picture] = (),
    ) -> tuple[bool, int | None]:
        """Put what the assistant is doing, the sources it cites and the pictures it drew on the turn's
        reply (made if no words came yet); whether the worker still writes the turn, and the reply's id.
        Raises `AttachmentRefused` for a picture that is no real one."""

    def took_growth(self, growth: Growth, version: int) -> None:
        """The worker appended to the reply in the store (`Store.grow`): the room's copy takes it."""

    def finish_turn(
        self, turn: Turn, fence: int | None, began: int | None, error: str | None, *, carry_over: bool
    ) -> None:
        """End the turn (unless it is over already) and count its tokens (`turn.usage`)."""

    def conversation(self) -> str | None: ...
    def set_conversation(self, conversation: str, fence: int | None) -> bool: ...
    def forget_conversation(self) -> None: ...
    def notice(self, text: str, *, failure: bool = False) -> None: ...
    def record_usage(self, usage: dict[str, int]) -> None: ...
    def tokens_today(self) -> int: ...
    def budget_spent(self) -> Budget | None:
        """The daily budget (the room's or the app's) that stops the assistant now, if any."""

    def to_forget(self, fence: int | None = None) -> list[Message]:
        """Messages their authors deleted after the assistant saw them, as they were sent (with `fence`,
        none unless that worker writes the room's turns)."""

    def forgot(self, fence: int | None, message_ids: list[int]) -> bool:
        """Those messages are out of the conversation (or the worker gave up on them)."""

    def take_batch(self, fence: int | None) -> Batch | None: ...
    def settle_batch(self, fence: int | None, batch: Batch, decision: Decision) -> bool: ...
    def take_notes_batch(self, fence: int | None) -> NotesBatch | None: ...
    def settle_notes(self, fence: int | None, batch: NotesBatch, update: NotesUpdate) -> bool: ...
