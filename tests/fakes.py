"""Small, honest stand-ins for the tests: a scripted assistant, a clock to move by hand, and a poller.

The scripted assistant implements the `Assistant` seam and records every call, so a test can say
what the room asked for, not only what it showed.
"""

from __future__ import annotations

import inspect
import itertools
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator

from shared.assistant import Batch, Decision, NotesBatch, NotesUpdate, Turn
from shared.config import Settings
from shared.worker import ReplyWorker

GATE_TIMEOUT_SECONDS = 10.0


def fast_settings(**overrides) -> Settings:
    """Settings with no word delay and tiny grace periods, so tests wait for behaviour, not time."""
    values = dict(
        word_delay_ms=0,
        leave_grace_seconds=0.05,
        room_empty_grace_seconds=0.05,
        heartbeat_timeout_seconds=5,
        rate_limit_messages=1_000,  # flood control has its own tests; here people may post in bursts
    )
    values.update(overrides)
    return Settings(**values)


def wait_until(predicate: Callable[[], object], what: str = "", timeout: float = 5.0) -> None:
    """Poll `predicate` until it is true; fail saying what never happened once `timeout` passes."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"Gave up after {timeout:g} s waiting for {what or _describe(predicate)}")
        time.sleep(0.002)


def _describe(predicate: Callable[[], object]) -> str:
    try:
        return inspect.getsource(predicate).strip()
    except (OSError, TypeError):
        return repr(predicate)


class Clock:
    """A monotonic clock that moves only when the test says so."""

    def __init__(self, start: float = 1_000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Gate:
    """A point in a scripted reply where the assistant waits until the test opens it."""

    def __init__(self) -> None:
        self.reached = threading.Event()
        self._opened = threading.Event()

    def open(self) -> None:
        self._opened.set()

    def wait_reached(self, timeout: float = 5.0) -> None:
        if not self.reached.wait(timeout):
            raise AssertionError(f"The assistant did not reach the gate within {timeout:g} s")

    def pass_through(self) -> None:
        self.reached.set()
        if not self._opened.wait(GATE_TIMEOUT_SECONDS):
            raise AssertionError("A gate in a scripted reply was never opened")


Step = str | Gate | BaseException


class ScriptedAssistant:
    """Answers each turn from a script (or with a default reply) and records everything it is asked.

    A scripted reply is a list of steps: text pieces to yield, gates to wait at, an exception to raise.
    Without a script, a turn gets "Answer to " followed by its messages' texts joined with " + ".
    """

    label = "Scripted test assistant"
    keeps_notes = False  # a test that wants the assistant's notes sets it (and `will_keep_notes`)

    def __init__(self, name: str = "CatGPT"):
        self.name = name
        self.turns: list[Turn] = []
        self.reply_conversations: list[str] = []  # the conversation each turn was asked in
        self.reply_threads: list[threading.Thread] = []  # the thread each turn was asked on
        self.opened: dict[str, str] = {}  # conversation handle -> the room it was opened for
        self.closed: list[str] = []
        self.forgotten: list[tuple[str, tuple[int, ...]]] = []  # (conversation, message ids) of each forget
        self.summaries: list[tuple[tuple, str]] = []  # (messages, for whom) of each catch-up asked for
        self._replies: deque[tuple[Step, ...]] = deque()
        self.batches: list[Batch] = []  # every batch a decision was asked about ("When it can help")
        self.decision_tokens = 0  # what each decision reports it cost
        self._decisions: deque[Decision | BaseException] = deque()
        self.notes_batches: list[NotesBatch] = []  # every batch the notes were kept after
        self._notes: deque[NotesUpdate | BaseException] = deque()
        self._open_failures: deque[BaseException] = deque()
        self._close_gates: deque[Gate] = deque()
        self._summary_gates: deque[Gate] = deque()
        self._gates: list[Gate] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    # --- what the test scripts ----------------------------------------------------------------

    def will_reply(self, *steps: Step) -> None:
        """Script the next turn that has no script yet."""
        with self._lock:
            self._gates.extend(s for s in steps if isinstance(s, Gate))
            self._replies.append(steps)

    def will_fail_to_open(self, error: BaseException) -> None:
        """The next open_conversation raises `error`."""
        with self._lock:
            self._open_failures.append(error)

    def will_hang_closing(self, gate: Gate) -> None:
        """The next close_conversation waits at `gate`, as a deletion on a hung server would."""
        with self._lock:
            self._gates.append(gate)
            self._close_gates.append(gate)

    def open_all_gates(self) -> None:
        with self._lock:
            for gate in self._gates:
                gate.open()

    def texts_of_turns(self) -> list[list[str]]:
        """What each turn asked about, as the messages' texts."""
        with self._lock:
            return [[m.text for m in turn.messages] for turn in self.turns]

    # --- the Assistant seam -------------------------------------------------------------------

    def open_conversation(self, room: str) -> str:
        with self._lock:
            if self._open_failures:
                raise self._open_failures.popleft()
            conversation = f"conversation-{next(self._ids)}"
            self.opened[conversation] = room
            return conversation

    def reply(self, conversation: str, turn: Turn) -> Iterator[str]:
        with self._lock:
            self.turns.append(turn)
            self.reply_conversations.append(conversation)
            self.reply_threads.append(threading.current_thread())
            steps = self._replies.popleft() if self._replies else self.default_reply(turn)
        for step in steps:
            if isinstance(step, Gate):
                step.pass_through()
            elif isinstance(step, BaseException):
                raise step
            else:
                yield step

    def forget(self, conversation: str, messages) -> None:
        with self._lock:
            self.forgotten.append((conversation, tuple(m.id for m in messages)))

    def close_conversation(self, conversation: str) -> None:
        with self._lock:
            gate = self._close_gates.popleft() if self._close_gates else None
        if gate is not None:
            gate.pass_through()
        with self._lock:
            self.closed.append(conversation)

    def will_hang_summarizing(self, gate: Gate) -> None:
        """The next summarize waits at `gate`."""
        with self._lock:
            self._gates.append(gate)
            self._summary_gates.append(gate)

    def summarize(
        self, messages, for_nickname: str, usage: dict[str, int] | None = None, *, purse=None
    ) -> str:
        with self._lock:
            self.summaries.append((tuple(messages), for_nickname))
            gate = self._summary_gates.popleft() if self._summary_gates else None
        if gate is not None:
            gate.pass_through()
        return f"Summary for {for_nickname} of " + " + ".join(m.text for m in messages)

    def will_decide(self, *outcomes: Decision | BaseException) -> None:
        """Script the next decisions ("When it can help"); unscripted, a batch with a "?" is answered."""
        with self._lock:
            self._decisions.extend(outcomes)

    def decide(self, batch: Batch, usage: dict[str, int] | None = None, *, purse=None) -> Decision:
        with self._lock:
            self.batches.append(batch)
            outcome = self._decisions.popleft() if self._decisions else None
        if usage is not None:
            usage["total_tokens"] = usage.get("total_tokens", 0) + self.decision_tokens
        if purse is not None and self.decision_tokens:  # paid like a model call: through the room's purse
            with purse.spend(self.decision_tokens) as bill:
                bill.report(self.decision_tokens)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome or Decision(any("?" in m.text for m in batch.messages), "scripted default")

    def will_keep_notes(self, *outcomes: NotesUpdate | BaseException) -> None:
        """Script what the next notes requests propose; unscripted: no change."""
        with self._lock:
            self._notes.extend(outcomes)

    def keep_notes(
        self, batch: NotesBatch, usage: dict[str, int] | None = None, *, purse=None
    ) -> NotesUpdate:
        with self._lock:
            self.notes_batches.append(batch)
            outcome = self._notes.popleft() if self._notes else NotesUpdate()
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    @staticmethod
    def default_reply(turn: Turn) -> tuple[str, ...]:
        return ("Answer", " to ", " + ".join(m.text for m in turn.messages))


def workers_on(*stores: object) -> list[ReplyWorker]:
    """The reply workers still running for rooms kept in these stores (a hub's, a test's)."""
    return [
        thread
        for thread in threading.enumerate()
        if isinstance(thread, ReplyWorker)
        and thread.is_alive()
        and any(thread.room.store is s for s in stores)
    ]


def wait_for_workers_to_end(*stores: object, timeout: float = 5.0) -> None:
    """Fail, saying where each one waits, if a reply worker of these stores' rooms outlives `timeout`.

    Fixtures check the workers of what they made, not every thread in the process: a worker leaked by
    one test fails that test alone.
    """
    deadline = time.monotonic() + timeout
    while left := workers_on(*stores):
        if time.monotonic() > deadline:
            frames = sys._current_frames()
            where = "\n".join(
                f"{thread.name}:\n" + "".join(traceback.format_stack(frames[thread.ident]))
                for thread in left
                if thread.ident in frames
            )
            raise AssertionError(f"{len(left)} reply worker(s) still running after {timeout:g} s:\n{where}")
        time.sleep(0.01)
