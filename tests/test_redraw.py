"""A message redrawn in place sends the page only the parts that changed (shared/web/messages.py).

The handles here record what would be sent; the full drawing itself runs in the AppTest and Chromium
suites, which check what pages show.
"""

from __future__ import annotations

from datetime import UTC, datetime

from shared.messages import Message, Role, Status
from shared.web.messages import Drawn, Parts, message_parts, redraw, writing_parts


class Handle:
    """Stands for the element placeholder a part was drawn in; records what is sent to it."""

    def __init__(self, log: list, name: str):
        self.log, self.name = log, name

    def caption(self, text: str) -> None:
        self.log.append((self.name, "caption", text))

    def markdown(self, text: str) -> None:
        self.log.append((self.name, "markdown", text))

    def empty(self) -> None:
        self.log.append((self.name, "empty", None))


def drawn(parts: Parts, log: list) -> Drawn:
    return Drawn(parts, Handle(log, "header"), Handle(log, "text"), Handle(log, "note"))


def test_a_growing_reply_sends_only_its_text():
    log: list = []
    before = writing_parts("CatGPT", "Hello")
    shown = drawn(before, log)
    after = redraw(None, shown, writing_parts("CatGPT", "Hello Alice"), None)
    assert log == [("text", "markdown", "Hello Alice")]
    assert after.parts.text == "Hello Alice"
    redraw(None, after, writing_parts("CatGPT", "Hello Alice"), None)  # nothing new: nothing sent
    assert len(log) == 1


def test_a_message_the_assistant_took_sends_only_its_note():
    log: list = []
    when = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    queued = Message(
        id=3,
        role=Role.USER,
        text="hi",
        created_at=when,
        author="Bob",
        participant_id="b",
        status=Status.QUEUED,
    )
    shown = drawn(message_parts(queued, "a"), log)
    taken = Message(**{**queued.__dict__, "status": Status.COMPLETE})
    redraw(None, shown, message_parts(taken, "a"), None)
    assert log == [("note", "empty", None)]


def test_a_finished_reply_sends_its_header_and_the_rest_of_its_text():
    log: list = []
    shown = drawn(writing_parts("CatGPT", "Hello"), log)
    when = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    done = Message(
        id=4, role=Role.ASSISTANT, text="Hello Bob!", created_at=when, author="CatGPT", reply_to=("Bob",)
    )
    redraw(None, shown, message_parts(done, "a"), None)
    assert [(part, kind) for part, kind, _ in log] == [("header", "caption"), ("text", "markdown")]
    assert "to Bob" in log[0][2] and log[1][2] == "Hello Bob!"
