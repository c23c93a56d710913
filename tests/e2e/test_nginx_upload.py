"""A picture of several MB goes through `deploy/nginx.conf` to the other person, on the other process.

nginx refuses a request body over 1 MB unless told otherwise (413), and Streamlit uploads each attached
file as one request: the shipped config must let through what `MAX_ATTACHMENT_MB` allows.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image

from tests.e2e.conftest import ARTIFACTS, DEADLINE_SECONDS, wait_until
from tests.e2e.test_redis import alice_and_bob_through_nginx, no_tracebacks
from tests.e2e.test_two_people import MESSAGE, send, sidebar_text

pytestmark = pytest.mark.e2e

UPLOADING = '[data-testid="stFileChipIconSpinner"]'
UPLOAD_REFUSED = '[data-testid="stFileChipIconError"]'
PICTURE = '[data-testid="stImage"] img'


@pytest.fixture
def big_picture(tmp_path: Path) -> Path:
    """A PNG of random noise, which does not compress: about 3.5 MB, over nginx's 1 MB default."""
    width, height = 1200, 1000
    path = tmp_path / "noise.png"
    Image.frombytes("RGB", (width, height), os.urandom(width * height * 3)).save(path, format="PNG")
    assert 3 * 2**20 < path.stat().st_size < 5 * 2**20
    return path


@pytest.mark.promise_attachments
def test_a_picture_of_several_mb_goes_through_nginx_to_the_other_process(
    redis_apps, nginx_in_front, new_page, big_picture
):
    a, b, nginx, alice, bob = alice_and_bob_through_nginx(redis_apps, nginx_in_front, new_page)
    wait_until(lambda: "Alice" in sidebar_text(bob), DEADLINE_SECONDS, "Bob to see Alice")

    alice.locator('[data-testid="stChatInput"] input[type="file"]').set_input_files([str(big_picture)])
    chip, uploading = alice.locator('[data-testid="stFileChip"]'), alice.locator(UPLOADING)
    wait_until(lambda: chip.count() == 1 and uploading.count() == 0, DEADLINE_SECONDS, "the upload to end")
    assert chip.locator(UPLOAD_REFUSED).count() == 0, chip.inner_text()  # nginx's 413 shows here
    send(alice, "A big picture through nginx")

    picture = bob.locator(MESSAGE).filter(has_text="A big picture through nginx").locator(PICTURE)
    wait_until(lambda: picture.count() == 1, DEADLINE_SECONDS, "Bob to see Alice's picture")
    wait_until(
        lambda: picture.evaluate("img => img.complete && img.naturalWidth") > 0,
        DEADLINE_SECONDS,
        "the picture to load in Bob's page",
    )
    bob.screenshot(path=str(ARTIFACTS / "nginx-upload-bob.png"))
    requests = (nginx.folder / "logs" / "chat-access.log").read_text()
    assert "upload_file" in requests and '" 413 ' not in requests
    assert "[emerg]" not in nginx.errors() and "[crit]" not in nginx.errors()
    no_tracebacks(a, b)
