"""A message redrawn in place sends the page only the parts that changed (shared/web/messages.py).

The handles here record what would be sent; the full drawing itself runs in the AppTest and Chromium
suites, which check what pages show.
"""

from __future__ import annotations

from datetime import UTC, datetime

from shared.config import Settings
from shared.messages import QUOTE_CHARS, Message, Quote, ReplyPolicy, Role, Status
from shared.room import RoomStatus
from shared.web.actions import Menu, button_label, first_line, reactions_line
from shared.web.messages import Drawn, Parts, message_parts, redraw, writing_parts
from shared.web.status_line import StatusLine


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


def _said(**fields) -> Message:
    when = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
    return Message(
        **{
            "id": 7,
            "role": Role.USER,
            "text": "Lunch?",
            "created_at": when,
            "author": "Alice",
            "participant_id": "a",
        }
        | fields
    )


def test_a_reaction_redraws_only_the_row_of_actions():
    log: list = []
    menus: list = []
    shown = drawn(message_parts(_said(), "b", "Bob"), log)
    shown.menu = Handle(log, "menu")
    reacted = _said(reactions=(("👍", ("Bob",)),))
    after = redraw(None, shown, message_parts(reacted, "b", "Bob"), None, lambda slot, row: menus.append(row))
    assert log == [] and len(menus) == 1
    assert menus[0].reactions == (("👍", ("Bob",)),) and not menus[0].mine
    assert after.parts.menu == menus[0]


def test_only_the_author_gets_delete_and_nobody_acts_on_system_lines_or_replies_being_written():
    assert message_parts(_said(), "a", "Alice").menu.mine
    assert not message_parts(_said(), "b", "Bob").menu.mine
    assert message_parts(_said(role=Role.SYSTEM, author=""), "a").menu is None
    writing = _said(role=Role.ASSISTANT, author="CatGPT", participant_id="", status=Status.STREAMING)
    assert message_parts(writing, "a").menu is None
    assert message_parts(_said(role=Role.ASSISTANT, author="CatGPT", participant_id=""), "a").menu is not None


def test_a_deleted_message_shows_that_it_was_deleted_and_nothing_of_it():
    parts = message_parts(_said(text="", deleted=True), "b", "Bob")
    assert "message deleted" in parts.text and parts.menu is None and not parts.files


def test_a_reply_shows_its_quote_linked_to_the_message_escaped_or_that_it_was_deleted():
    quoted = message_parts(_said(id=9, quote=Quote(7, "Al*ce", "[click](http://x)")), "b").header
    assert quoted.endswith("(#m-7)") and r"Al\*ce" in quoted and r"\[click\]" in quoted
    gone = message_parts(_said(id=9, quote=Quote(7, "", "")), "b").header
    assert "a deleted message" in gone and "(#m-7)" in gone


def test_only_a_quoted_message_holds_an_anchor():
    assert message_parts(_said(), "b").anchor is None
    assert message_parts(_said(), "b", quoted=True).anchor == 7
    assert first_line(_said(text="  first line\nsecond")) == "first line"
    assert len(first_line(_said(text="x" * 500))) == QUOTE_CHARS


def test_a_messages_button_names_who_reacted_the_first_two_then_how_many_more_escaped():
    quote = Quote(1, "Alice", "Lunch?")
    assert reactions_line(Menu(1, (), False, (), quote)) == ""  # nobody reacted
    row = Menu(1, (("👍", ("Bob", "Zoë", "Ann", "Cy")), ("🎉", ("*Al*",))), False, ("👍",), quote)
    assert reactions_line(row) == "👍 Bob, Zoë +2 · 🎉 \\*Al\\*"


def test_a_messages_button_is_named_for_whose_message_it_is_as_a_person_would_say():
    assert (
        button_label(Menu(1, (), False, (), Quote(1, "*Al*", "Lunch?"))) == "Actions for \\*Al\\*'s message"
    )
    assert button_label(Menu(1, (), True, (), Quote(1, "Bob", "Hi"))) == "Actions for your message"
    row = Menu(1, (("👍", ("Bob",)),), False, (), Quote(1, "Alice", "Lunch?"))
    assert button_label(row) == "Actions for Alice's message · 👍 Bob"


class Slot(Handle):
    """A placeholder the status line draws in; records what is sent to it."""

    def warning(self, text: str, **_) -> None:
        self.log.append((self.name, "warning", text))

    def button(self, label: str, **_) -> bool:
        self.log.append((self.name, "button", label))
        return False


def test_the_busy_line_is_sent_again_only_when_what_it_says_changes():
    log: list = []
    line = StatusLine(None, "a", Settings(), Slot(log, "busy"), Slot(log, "stop"))
    replying = RoomStatus(("Alice",), (), 1, ReplyPolicy.EVERY_MESSAGE, 0)
    line.show(replying)
    assert [what for slot, *what in log if slot == "busy"] == [
        ["caption", ":material/edit: **CatGPT** is replying to Alice…"]
    ]
    log.clear()
    line.show(RoomStatus(("Alice",), (), 1, ReplyPolicy.EVERY_MESSAGE, 1))  # the policy's count: not said
    assert log == []
    line.show(RoomStatus(("Alice",), ("Bob",), 1, ReplyPolicy.EVERY_MESSAGE, 1))
    assert log == [("busy", "caption", ":material/edit: **CatGPT** is replying to Alice… · next: Bob")]
    log.clear()
    line.show_problem("The room cannot be reached")  # a warning takes the line's place...
    line.show_problem(None)  # ...and when it goes, the line is drawn again though it did not change
    assert log[-1] == ("busy", "caption", ":material/edit: **CatGPT** is replying to Alice… · next: Bob")
