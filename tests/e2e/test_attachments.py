"""Pictures and PDFs in the chat box, and "Catch me up", in real Chromium pages against `streamlit run`.

A picture attached on one page shows on the other and reaches the model as an `input_image` (a PDF as an
`input_file`); refused files are explained while the text still goes; a catch-up summary shows only on the
page that asked, and neither the room nor its conversation on the server changes.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from tests.e2e.conftest import ARTIFACTS, DEADLINE_SECONDS, wait_until
from tests.e2e.test_two_people import ACTIONS, MAIN, MESSAGE, bubble_texts, join, reply_text, turn_over
from tests.openai_server import API_KEY, Say

pytestmark = pytest.mark.e2e


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    picture = Image.new("RGB", (640, 400), (250, 236, 214))
    pen = ImageDraw.Draw(picture)
    for x in range(0, 640, 48):
        pen.ellipse((x, 110, x + 130, 300), outline=(205, 90, 40), width=6)
    pen.text((24, 24), "whiteboard, Tuesday: ship attachments", fill=(30, 30, 30))
    made = {
        "whiteboard.png": io.BytesIO(),
        "agenda.pdf": b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n",
        "big.pdf": b"%PDF-1.4\n" + b"0" * (1536 * 1024),
        "fake.png": b"\x89PNG\r\n\x1a\n" + b"not really a picture" * 10,
        "drawing.svg": b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
    }
    picture.save(made["whiteboard.png"], format="PNG")
    paths = {}
    for name, data in made.items():
        paths[name] = tmp_path / name
        paths[name].write_bytes(data.getvalue() if isinstance(data, io.BytesIO) else data)
    return paths


def send_with_files(page, text: str, *paths: Path) -> None:
    """Attach files through the chat box's own file input, wait for their upload, then send."""
    page.locator('[data-testid="stChatInput"] input[type="file"]').set_input_files([str(p) for p in paths])
    chips = page.locator('[data-testid="stFileChip"]')
    wait_until(
        lambda: (
            chips.count() == len(paths) and page.locator('[data-testid="stFileChipIconSpinner"]').count() == 0
        ),
        DEADLINE_SECONDS,
        "the files to upload",
    )
    box = page.get_by_placeholder("Send message")
    box.fill(text)
    submit = page.locator('[data-testid="stChatInputSubmitButton"]')
    wait_until(submit.is_enabled, DEADLINE_SECONDS, "the send button to take the message")
    box.press("Enter")


@pytest.mark.promise_attachments
def test_a_picture_attached_on_one_page_shows_on_the_other_and_reaches_the_model(
    app_server, new_page, openai_server, files
):
    server = app_server(
        OPENAI_API_KEY=API_KEY, OPENAI_BASE_URL=openai_server.base_url, OPENAI_MODEL="test-model"
    )
    alice, bob = new_page(), new_page()
    join(alice, server.url, "Alice")
    join(bob, server.url, "Bob")

    send_with_files(
        alice,
        "Here is the whiteboard from Tuesday and the agenda",
        files["whiteboard.png"],
        files["agenda.pdf"],
    )

    picture = bob.locator('[data-testid="stChatMessage"] [data-testid="stImage"] img')
    wait_until(lambda: picture.count() == 1, DEADLINE_SECONDS, "Bob to see Alice's picture")
    wait_until(
        lambda: picture.evaluate("img => img.complete && img.naturalWidth") > 0,
        DEADLINE_SECONDS,
        "the picture to load in Bob's page",
    )
    with bob.expect_download(timeout=DEADLINE_SECONDS * 1000) as download:
        bob.get_by_role("button", name="agenda.pdf · 45 bytes").click()
    assert download.value.suggested_filename == "agenda.pdf"
    assert Path(download.value.path()).read_bytes() == files["agenda.pdf"].read_bytes()
    wait_until(lambda: "You said: Here is the whiteboard" in reply_text(bob), DEADLINE_SECONDS, "the reply")
    wait_until(lambda: turn_over(bob), DEADLINE_SECONDS, "the turn to end")

    [image] = openai_server.input_parts("input_image")
    assert image["image_url"].startswith("data:image/png;base64,iVBORw0KGgo")
    [pdf] = openai_server.input_parts("input_file")
    assert pdf["filename"] == "agenda.pdf" and pdf["file_data"].startswith(
        "data:application/pdf;base64,JVBERi0x"
    )

    wait_until(
        lambda: "writing…" not in bob.locator(MAIN).inner_text(), DEADLINE_SECONDS, "the reply to settle"
    )
    bob.locator(MAIN).screenshot(path=str(ARTIFACTS / "attachments.png"))
    assert "Traceback" not in server.log()


@pytest.mark.promise_attachments
def test_an_oversized_file_and_a_fake_picture_are_refused_and_the_text_still_goes(
    app_server, new_page, files
):
    server = app_server(MAX_ATTACHMENT_MB="1")
    alice, bob = new_page(), new_page()
    join(alice, server.url, "Alice")
    join(bob, server.url, "Bob")

    send_with_files(
        alice,
        "my words survive",
        files["big.pdf"],
        files["fake.png"],
        files["drawing.svg"],
        files["agenda.pdf"],
    )

    wait_until(
        lambda: any("my words survive" in t for t in bubble_texts(bob)),
        DEADLINE_SECONDS,
        "Bob to get the text",
    )
    refusal = alice.locator('[data-testid="stAlert"]').filter(has_text="was not attached")
    wait_until(lambda: refusal.count() == 1, DEADLINE_SECONDS, "Alice to be told about the refused files")
    said = refusal.inner_text()
    assert "big.pdf was not attached: it is 1.5 MB and the limit is 1 MB per file." in said
    assert "fake.png was not attached: it looks like a PNG picture but does not open as one." in said
    assert (
        "drawing.svg was not attached: only a PNG, JPEG, GIF or WebP picture or a PDF can be attached."
        in said
    )
    assert "The rest of your message was sent." in said
    # The accepted file went along; the refused ones went nowhere.
    assert bob.get_by_role("button", name="agenda.pdf · 45 bytes").count() == 1
    bob_page = bob.locator(MAIN).inner_text()
    assert "big.pdf" not in bob_page and "fake.png" not in bob_page and "drawing.svg" not in bob_page
    alice.screenshot(path=str(ARTIFACTS / "attachments-refused-alice.png"))
    assert "Traceback" not in server.log()


@pytest.mark.promise_catch_up
def test_a_catch_up_shows_only_on_the_page_that_asked_and_changes_nothing_shared(
    app_server, new_page, openai_server
):
    server = app_server(
        OPENAI_API_KEY=API_KEY,
        OPENAI_BASE_URL=openai_server.base_url,
        OPENAI_MODEL="test-model",
        LEAVE_GRACE_SECONDS="120",
    )
    alice, bob = new_page(), new_page()
    join(alice, server.url, "Alice")
    join(bob, server.url, "Bob")
    bob_address = bob.url  # carries Bob's token: coming back to it is Bob coming back
    bob.goto("about:blank")  # Bob steps away; he stays in the room for the grace period

    for text in ("Lunch at noon on Friday?", "Bob, can you book the table?"):
        alice.get_by_placeholder("Send message").fill(text)
        alice.get_by_placeholder("Send message").press("Enter")
        wait_until(lambda text=text: f"You said: {text}" in reply_text(alice), DEADLINE_SECONDS, "the reply")
        wait_until(lambda: turn_over(alice), DEADLINE_SECONDS, "the turn to end")

    bob.goto(bob_address)
    wait_until(
        lambda: "New since you were last here" in bob.locator(MAIN).inner_text(),
        DEADLINE_SECONDS,
        "the divider",
    )
    assert "New since you were last here" not in alice.locator(MAIN).inner_text()
    [conversation] = openai_server.conversations
    wait_until(  # the last reply's button of actions comes 0.5 s after it: Alice's page as it settles
        lambda: alice.locator(MESSAGE).count() == alice.locator(f"{MESSAGE} {ACTIONS}").count(),
        DEADLINE_SECONDS,
        "Alice's page to settle",
    )
    items_before, alice_before = openai_server.items(conversation), bubble_texts(alice)
    requests_before = len(openai_server.response_requests())
    summary = "Alice suggests lunch at noon on Friday and asks Bob to book the table."
    openai_server.script(Say(summary))

    bob.get_by_role("button", name="Catch me up").click()
    wait_until(lambda: summary in bob.locator(MAIN).inner_text(), DEADLINE_SECONDS, "Bob's summary")
    assert "Only you can see this summary" in bob.locator(MAIN).inner_text()

    [request] = openai_server.response_requests()[requests_before:]
    assert "conversation" not in request and request["store"] is False
    assert '[Alice] "Bob, can you book the table?"' in request["input"][0]["content"]
    assert openai_server.items(conversation) == items_before, "the shared conversation never saw it"
    alice.wait_for_timeout(500)  # let a wrongly posted summary reach Alice's page before looking
    assert summary not in alice.locator("body").inner_text()
    assert bubble_texts(alice) == alice_before, "nothing was added to the room"
    assert summary not in " ".join(bubble_texts(bob))

    bob.screenshot(path=str(ARTIFACTS / "catch-up.png"))  # the sidebar too: Bob is in the room with Alice
    assert "Traceback" not in server.log()
