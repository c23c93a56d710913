"""Room notes as pages show them (AppTest, several sessions in one process): folded at the top of the chat
page, open on This room with a form per item for anyone present."""

from __future__ import annotations

import pytest

from shared.messages import NoteKind, Role
from tests.pages import errors, get_room, join, send, unescape

pytestmark = [pytest.mark.usefixtures("fresh_app"), pytest.mark.promise_room_notes]


def room_page(at):
    return at.switch_page("pages/room.py").run()


def notes_panel(at):
    (panel,) = [e for e in at.expander if e.label.endswith("Room notes")]
    return panel


def form_button(at, label: str):
    return next(b for b in at.button if b.label == label)


def text_input(at, label: str):
    return next(t for t in at.text_input if t.label == label)


def system_lines() -> list[str]:
    return [m.text for m in get_room().view().messages if m.role is Role.SYSTEM]


def test_marked_lines_show_folded_in_the_room_notes_on_everyones_chat_page():
    alice, bob = join("Alice"), join("Bob")
    send(alice, "decided: we meet **Friday**\ntodo @Bob book the room\nWho brings food? ?open")
    bob.run()

    panel = notes_panel(bob)
    assert not panel.proto.expanded  # folded: the conversation stays on top
    lists = unescape(panel.markdown[0].value)
    assert "**Decisions**\n\n- we meet **Friday** · *Alice*" in lists  # shown as text, not bold
    assert "\\*\\*Friday\\*\\*" in panel.markdown[0].value
    assert "- **Bob**: book the room · *Alice*" in lists
    assert "**Open questions**\n\n- Who brings food? · *Alice*" in lists


def test_on_this_room_anyone_present_edits_removes_and_adds_an_item():
    alice, bob = join("Alice"), join("Bob")
    send(alice, "decided: we meet Friday\ntodo @Bob book the room")
    room_page(bob)
    assert not bob.exception

    text_input(bob, "Decision 1 (noted by Alice)").input("we meet Saturday")
    form_button(bob, "Save decision 1").click().run()
    assert [i.text for i in get_room().notes.of(NoteKind.DECISION)] == ["we meet Saturday"]
    assert system_lines()[-1] == "Bob edited the notes."
    assert any("Decision 1 saved" in s.value for s in bob.success)

    text_input(bob, "Action item 1: who (noted by Alice)").input("Carol")
    form_button(bob, "Save action item 1").click().run()
    assert [(i.who, i.text) for i in get_room().notes.of(NoteKind.ACTION)] == [("Carol", "book the room")]

    form_button(bob, "Remove decision 1").click().run()
    assert get_room().notes.of(NoteKind.DECISION) == ()

    room_page(alice)
    alice.selectbox[0].select(NoteKind.QUESTION)
    text_input(alice, "Note").input("Which floor?")
    form_button(alice, "Add to the notes").click().run()
    assert [i.text for i in get_room().notes.of(NoteKind.QUESTION)] == ["Which floor?"]
    assert system_lines()[-1] == "Alice edited the notes."


def test_a_refused_note_says_why_and_keeps_what_was_typed():
    alice = join("Alice")
    room_page(alice)
    alice.selectbox[0].select(NoteKind.ACTION)
    text_input(alice, "Note").input("book the room")
    form_button(alice, "Add to the notes").click().run()

    assert errors(alice) == ["An action item needs someone to do it (who), so nothing changed."]
    assert text_input(alice, "Note").value == "book the room"
    assert get_room().notes.items == ()


def test_someone_not_in_the_room_sees_the_notes_without_forms():
    alice = join("Alice")
    send(alice, "decided: we meet Friday")
    from tests.pages import open_page

    stranger = room_page(open_page())
    assert not stranger.exception
    assert "we meet Friday" in "".join(m.value for m in stranger.markdown)
    assert [b for b in stranger.button if b.label.startswith("Save")] == []
