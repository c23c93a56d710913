"""Pictures and PDFs attached to messages, and "Catch me up": checked from their bytes, kept with the room
(bounded, gone when it closes), handed to the assistant, listed in transcripts; a private summary apart
from the room."""

from __future__ import annotations

import io
import json
import os
from datetime import UTC, datetime

import pytest
from PIL import Image

from shared import transcript
from shared.assistant.offline import OfflineAssistant
from shared.attachments import MB, AttachmentStore, check_upload, preview, sniff
from shared.catch_up import CatchUps
from shared.errors import AttachmentRefused, CatchUpRefused, MessageRefused
from shared.messages import Picture, Role, Turn
from shared.room import Room
from tests import pages
from tests.fakes import Clock, Gate, ScriptedAssistant, fast_settings, wait_for_workers_to_end, wait_until


def picture(kind: str = "PNG", size: tuple[int, int] = (64, 48)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 80, 40)).save(out, format=kind)
    return out.getvalue()


PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


# --- what a file is, from its bytes -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "mime"),
    [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("GIF", "image/gif"), ("WEBP", "image/webp")],
)
@pytest.mark.promise_attachments
def test_each_picture_type_is_accepted_with_its_size_in_pixels(kind, mime):
    attachment = check_upload("photo", picture(kind, (64, 48)), max_mb=10)
    assert (attachment.mime, attachment.width, attachment.height) == (mime, 64, 48)
    assert attachment.is_image


@pytest.mark.promise_attachments
def test_a_pdf_is_accepted_as_a_file():
    attachment = check_upload("notes.pdf", PDF, max_mb=10)
    assert (attachment.mime, attachment.size, attachment.is_image) == ("application/pdf", len(PDF), False)


@pytest.mark.promise_attachments
def test_the_type_comes_from_the_content_not_the_name():
    assert check_upload("really-a-jpeg.png", picture("JPEG"), max_mb=10).mime == "image/jpeg"
    with pytest.raises(AttachmentRefused, match=r"^letter\.pdf was not attached: only a PNG, JPEG"):
        check_upload("letter.pdf", b"Dear Bob, ...", max_mb=10)


@pytest.mark.promise_attachments
def test_svg_and_other_types_are_refused_with_one_sentence_naming_the_file():
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    with pytest.raises(AttachmentRefused) as refusal:
        check_upload("drawing.svg", svg, max_mb=10)
    assert str(refusal.value) == (
        "drawing.svg was not attached: only a PNG, JPEG, GIF or WebP picture or a PDF can be attached."
    )
    assert sniff(b"PK\x03\x04 a zip") is None


@pytest.mark.promise_attachments
def test_a_picture_that_does_not_decode_is_refused_not_crashed_on():
    fake = b"\x89PNG\r\n\x1a\n" + b"not really a picture" * 10
    with pytest.raises(
        AttachmentRefused, match=r"^fake\.png was not attached: it looks like a PNG picture but"
    ):
        check_upload("fake.png", fake, max_mb=10)
    truncated = picture("JPEG", (300, 300))[:200]
    with pytest.raises(AttachmentRefused, match="does not open"):
        check_upload("cut.jpg", truncated, max_mb=10)


@pytest.mark.promise_attachments
def test_a_file_over_the_limit_is_refused_naming_the_file_and_the_limit():
    with pytest.raises(AttachmentRefused) as refusal:
        check_upload("big.pdf", b"%PDF-1.4\n" + b"0" * (3 * MB // 2), max_mb=1)
    assert str(refusal.value) == "big.pdf was not attached: it is 1.5 MB and the limit is 1 MB per file."


# --- where the bytes live --------------------------------------------------------------------------


@pytest.mark.promise_attachments
def test_the_store_keeps_bytes_once_and_lets_them_go_when_told():
    store = AttachmentStore()
    store.put("a", b"12345")
    store.put("a", b"12345")  # sent again: kept once
    store.put("b", b"123")
    assert (store.get("a"), store.get("b"), store.size) == (b"12345", b"123", 8)
    store.drop("a")
    assert (store.get("a"), store.size) == (None, 3)
    store.clear()
    assert (store.get("b"), store.size) == (None, 0)


@pytest.fixture
def assistant() -> ScriptedAssistant:
    return ScriptedAssistant()


@pytest.fixture
def make_room(assistant):
    rooms: list[Room] = []

    def make(**settings) -> Room:
        room = Room("lobby", fast_settings(**settings), assistant)
        room.join("id-Alice", "Alice", "tab-Alice")
        room.join("id-Bob", "Bob", "tab-Bob")
        rooms.append(room)
        return room

    yield make
    assistant.open_all_gates()
    for room in rooms:
        room.close()


@pytest.mark.promise_attachments
def test_a_message_carries_what_its_files_are_and_the_turn_carries_their_bytes(make_room, assistant):
    room = make_room()
    png, pdf = picture(), PDF
    files = [(check_upload("cat.png", png, 10), png), (check_upload("notes.pdf", pdf, 10), pdf)]
    message = room.post("id-Alice", "look", files)
    assert [a.name for a in message.attachments] == ["cat.png", "notes.pdf"]
    wait_until(lambda: assistant.turns and not room.busy, "the reply")
    [turn] = assistant.turns
    assert dict(turn.files) == {files[0][0].id: png, files[1][0].id: pdf}
    assert room.attachments.get(files[0][0].id) == png


@pytest.mark.promise_attachments
def test_files_alone_are_a_message_but_nothing_at_all_is_not(make_room):
    room = make_room()
    data = picture()
    message = room.post("id-Alice", "  ", [(check_upload("cat.png", data, 10), data)])
    assert (message.text, len(message.attachments)) == ("", 1)
    with pytest.raises(MessageRefused, match="empty"):
        room.post("id-Alice", "  ")


@pytest.mark.promise_attachments
def test_past_the_rooms_limit_the_oldest_files_go_and_their_message_says_so(make_room):
    room = make_room(max_room_attachments_mb=1)
    big = b"%PDF-1.4\n" + b"0" * (MB * 6 // 10)
    first = room.post("id-Alice", "one", [(check_upload("one.pdf", big, 10), big)])
    version = room.version
    second = room.post("id-Bob", "two", [(check_upload("two.pdf", big, 10), big)])

    changed = {m.id: m for m in room.changes_since(version).messages}
    assert changed[first.id].attachments[0].dropped, "everyone's page is told the first file is gone"
    assert room.attachments.get(first.attachments[0].id) is None
    assert room.attachments.get(second.attachments[0].id) == big
    assert not room.view().messages[second.id - 1].attachments[0].dropped


@pytest.mark.promise_attachments
def test_a_rooms_files_go_when_it_closes(make_room):
    room = make_room()
    data = picture()
    message = room.post("id-Alice", "x", [(check_upload("cat.png", data, 10), data)])
    room.close()
    assert room.attachments.get(message.attachments[0].id) is None
    assert room.attachments.size == 0


@pytest.mark.promise_attachments
def test_transcripts_list_the_files_and_carry_their_metadata(make_room):
    room = make_room()
    data = picture(size=(64, 48))
    room.post(
        "id-Alice", "look", [(check_upload("cat.png", data, 10), data), (check_upload("n.pdf", PDF, 10), PDF)]
    )
    markdown = transcript.to_markdown(room.view())
    assert "- attached `cat.png` (PNG picture, " in markdown and "64×48)" in markdown
    assert "- attached `n.pdf` (PDF, 45 bytes)" in markdown
    [message] = [m for m in json.loads(transcript.to_json(room.view()))["messages"] if m["author"] == "Alice"]
    assert message["attachments"] == [
        {"name": "cat.png", "type": "image/png", "size": len(data), "width": 64, "height": 48},
        {"name": "n.pdf", "type": "application/pdf", "size": 45},
    ]


@pytest.mark.promise_attachments
def test_the_offline_assistant_says_what_it_received(make_room):
    room = Room("lobby", fast_settings(), OfflineAssistant(fast_settings()))
    try:
        room.join("id-Alice", "Alice", "tab")
        data = picture(size=(64, 48))
        room.post("id-Alice", "what is this?", [(check_upload("cat.png", data, 10), data)])
        wait_until(lambda: not room.busy and room.view().messages[-1].role is Role.ASSISTANT, "the reply")
        reply = room.view().messages[-1].text
        assert "Alice, you sent `cat.png` (PNG picture, " in reply and "64×48 pixels)" in reply
    finally:
        room.close()


# --- what each person has seen, and "Catch me up" ----------------------------------------------------


@pytest.mark.promise_catch_up
def test_only_a_page_still_showing_the_room_counts_as_having_seen_it(make_room):
    room = make_room()
    assert room.last_seen("id-Bob") is None
    room.mark_seen("id-Bob", "tab-Bob", 3)
    room.detach("id-Bob", "tab-Bob")  # the tab closed
    room.mark_seen("id-Bob", "tab-Bob", 9)  # its run drew on for a moment: Bob did not see that
    assert room.last_seen("id-Bob") == 3


@pytest.mark.promise_catch_up
def test_the_offline_catch_up_says_who_said_how_much_and_the_last_lines(make_room):
    room = make_room()
    for n in range(3):
        room.post("id-Alice", f"alice {n}")
    room.post("id-Bob", "bob 0")
    summary = OfflineAssistant(fast_settings()).summarize(room.view().messages, "Carol")
    assert summary.startswith("While you were away, Carol: Alice 3 messages and Bob 1 message.")
    assert summary.endswith("- Alice: `alice 1`\n- Alice: `alice 2`\n- Bob: `bob 0`")


@pytest.mark.promise_catch_up
def test_a_catch_up_summarizes_what_others_said_since_and_leaves_the_room_alone(make_room, assistant):
    room = make_room()
    seen = room.view().messages[-1].id
    room.post("id-Alice", "while Bob was away")
    wait_until(lambda: not room.busy, "the reply")
    room.post("id-Bob", "I am back")  # his own message is not news to him
    wait_until(lambda: not room.busy, "the reply")
    before = room.view()

    job = CatchUps().start(room, "id-Bob", "Bob", seen)
    assert job.done.wait(5)
    [(messages, whom)] = assistant.summaries
    assert whom == "Bob"
    assert [m.text for m in messages] == [
        "while Bob was away",
        "Answer to while Bob was away",
        "Answer to I am back",
    ]
    assert job.text.startswith("Summary for Bob of while Bob was away")
    after = room.view()
    # The catch-up counts against Bob's flood limit (a change of its own), but adds nothing anyone sees.
    assert (after.messages, after.participants, after.status) == (
        before.messages,
        before.participants,
        before.status,
    )


@pytest.mark.promise_catch_up
def test_one_catch_up_at_a_time_per_person_and_each_counts_against_the_flood_limit(make_room, assistant):
    room = make_room(rate_limit_messages=2, rate_limit_seconds=60)
    catch_ups = CatchUps()
    gate = Gate()
    assistant.will_hang_summarizing(gate)
    first = catch_ups.start(room, "id-Bob", "Bob", 0)
    gate.wait_reached()
    with pytest.raises(CatchUpRefused, match="still being written"):
        catch_ups.start(room, "id-Bob", "Bob", 0)
    other = catch_ups.start(room, "id-Alice", "Alice", 0)  # someone else's is theirs
    gate.open()
    assert first.done.wait(5) and other.done.wait(5)

    catch_ups.start(room, "id-Bob", "Bob", 0).done.wait(5)  # Bob's second within the window
    with pytest.raises(MessageRefused, match="Slow down"):
        catch_ups.start(room, "id-Bob", "Bob", 0)


@pytest.mark.promise_attachments
def test_a_wide_picture_is_shown_from_a_small_copy_and_a_small_one_as_it_is():
    wide, small = picture("JPEG", (4000, 3000)), picture("GIF", (200, 100))
    with Image.open(io.BytesIO(preview(wide, 360))) as shown:
        assert shown.size == (360, 270)
    assert preview(small, 360) is small


# --- a refused post changes nothing (on both stores) ----------------------------------------------


@pytest.fixture
def room_on_store(store):
    """`make(**settings)`: a room with Alice and Bob on the test's store (memory, or a real Redis), its
    clock moved only by hand (so a flood limit holds for the whole test)."""
    rooms: list[Room] = []
    assistant = ScriptedAssistant()

    def make(**settings) -> Room:
        room = Room("lobby", fast_settings(**settings), assistant, store, clock=Clock())
        room.join("id-Alice", "Alice", "tab-Alice")
        room.join("id-Bob", "Bob", "tab-Bob")
        rooms.append(room)
        return room

    yield make
    assistant.open_all_gates()
    for room in rooms:
        room.close()
    wait_for_workers_to_end(store)


def noise_picture(side: int = 500) -> bytes:
    """A PNG of random pixels: it does not compress, so it weighs what its pixels do (~0.7 MB at 500)."""
    out = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(out, format="PNG")
    return out.getvalue()


BIG = b"%PDF-1.4\n" + b"0" * (MB * 6 // 10)


def files_shown(room: Room) -> dict[int, tuple]:
    """The files of every message that has some, as pages show them (the assistant may answer meanwhile:
    its replies and the messages' statuses are no concern here)."""
    return {m.id: m.attachments for m in room.view().messages if m.attachments}


@pytest.mark.promise_attachments
def test_a_post_refused_for_flooding_lets_no_earlier_file_go(room_on_store):
    room = room_on_store(max_room_attachments_mb=1, rate_limit_messages=2, rate_limit_seconds=60)
    first = room.post("id-Alice", "one", [(check_upload("one.pdf", BIG, 10), BIG)])
    room.post("id-Alice", "two")  # Alice's limit is reached
    before = files_shown(room)
    with pytest.raises(MessageRefused, match="Slow down"):
        room.post("id-Alice", "three", [(check_upload("three.pdf", BIG, 10), BIG)])

    assert room.attachments.get(first.attachments[0].id) == BIG, "the room's earlier file is still there"
    assert files_shown(room) == before and room.attachments.size == len(BIG)

    second = room.post("id-Bob", "four", [(check_upload("four.pdf", BIG, 10), BIG)])  # accepted: it goes now
    assert room.attachments.get(first.attachments[0].id) is None
    assert room.view().messages[first.id - 1].attachments[0].dropped, "its message says so, for everyone"
    assert room.attachments.get(second.attachments[0].id) == BIG
    assert room.attachments.size == len(BIG)


@pytest.mark.promise_attachments
def test_a_drawing_for_a_turn_that_is_over_lets_no_earlier_file_go(room_on_store):
    room = room_on_store(max_room_attachments_mb=1)
    first = room.post("id-Alice", "one", [(check_upload("one.pdf", BIG, 10), BIG)])
    before = files_shown(room)
    over = Turn(room="lobby", messages=(), history=(), present=(), now=datetime.now(UTC), number=99)
    drawing = Picture(noise_picture(), "image/png", "drawing-1.png")
    assert len(drawing.data) + len(BIG) > MB

    assert room.dress_reply(over, -1, pictures=[drawing]) == (False, None)
    assert room.attachments.get(first.attachments[0].id) == BIG
    assert files_shown(room) == before and room.attachments.size == len(BIG)


@pytest.mark.usefixtures("fresh_app")
@pytest.mark.promise_attachments
def test_a_message_whose_file_the_room_let_go_of_says_so_on_the_page(monkeypatch):
    monkeypatch.setenv("MAX_ROOM_ATTACHMENTS_MB", "1")
    alice = pages.join("Alice", pages.open_page(token="id-alice"))
    room = pages.get_room()
    room.post("id-alice", "one", [(check_upload("one.pdf", BIG, 10), BIG)])
    room.post("id-alice", "two", [(check_upload("two.pdf", BIG, 10), BIG)])  # the first file goes
    alice.run()
    gone = [c.value for c in alice.caption if "no longer kept" in c.value]
    assert gone == [":material/hide_image: one\\.pdf (614 KB) is no longer kept by the room."]
    assert [b.label for b in alice.get("download_button") if ".pdf" in b.label] == ["two\\.pdf · 614 KB"]
