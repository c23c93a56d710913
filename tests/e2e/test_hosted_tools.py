"""OpenAI's hosted tools end to end: `streamlit run app.py` with WEB_SEARCH and IMAGE_GENERATION on, against
the test OpenAI server, and two people on two Chromium pages.

While the tool runs both pages say what the assistant is doing; then both show the sources as links, or
the picture it drew.
"""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from tests.e2e.conftest import ARTIFACTS, DEADLINE_SECONDS, wait_until
from tests.e2e.test_two_people import join, main_text, reply_text, send, turn_over
from tests.openai_server import API_KEY, Draw, Search

pytestmark = [pytest.mark.e2e, pytest.mark.promise_hosted_tools]

SOURCES = (
    ("https://example.org/cats", "All about cats"),
    ("https://example.com/whiskers", "Whiskers *and* more"),
)
TOOL_SECONDS = 4.0  # how long the test server's tool runs: long enough for both pages to show it


def two_people(app_server, new_page, openai_server):
    server = app_server(
        OPENAI_API_KEY=API_KEY,
        OPENAI_BASE_URL=openai_server.base_url,
        WEB_SEARCH="on",
        IMAGE_GENERATION="on",
    )
    alice, bob = new_page(), new_page()
    join(alice, server.url, "Alice")
    join(bob, server.url, "Bob")
    return alice, bob


def test_both_pages_see_the_search_running_then_its_sources_as_links(app_server, new_page, openai_server):
    alice, bob = two_people(app_server, new_page, openai_server)
    openai_server.script(Search("Cats purr at about 25 Hz.", SOURCES, seconds=TOOL_SECONDS))

    send(alice, "why do cats purr? look it up")
    for name, page in (("Alice", alice), ("Bob", bob)):
        wait_until(
            lambda page=page: "searching the web" in main_text(page),
            DEADLINE_SECONDS,
            f"{name}'s page to say the assistant searches the web",
        )
    bob.screenshot(path=str(ARTIFACTS / "hosted-searching-bob.png"))
    for name, page in (("Alice", alice), ("Bob", bob)):
        wait_until(
            lambda page=page: "25 Hz" in reply_text(page) and turn_over(page),
            DEADLINE_SECONDS,
            f"the reply on {name}'s page",
        )
        for url, title in SOURCES:
            link = page.locator(f'[data-testid="stChatMessage"] a[href="{url}"]')
            wait_until(lambda link=link: link.count() == 1, DEADLINE_SECONDS, f"the link to {url} for {name}")
            assert link.inner_text() == title  # the title's stars are shown, not taken as emphasis
        assert "searching the web" not in main_text(page)
    alice.screenshot(path=str(ARTIFACTS / "hosted-sources-alice.png"))


def test_both_pages_see_the_drawing_being_made_then_the_picture(app_server, new_page, openai_server):
    alice, bob = two_people(app_server, new_page, openai_server)
    out = io.BytesIO()
    Image.new("RGB", (120, 80), (240, 150, 40)).save(out, format="PNG")
    picture = base64.b64encode(out.getvalue()).decode("ascii")
    openai_server.script(Draw(picture, "Here is an orange cat.", seconds=TOOL_SECONDS))

    send(alice, "draw me an orange cat")
    for name, page in (("Alice", alice), ("Bob", bob)):
        wait_until(
            lambda page=page: "drawing" in main_text(page),
            DEADLINE_SECONDS,
            f"{name}'s page to say the assistant is drawing",
        )
    alice.screenshot(path=str(ARTIFACTS / "hosted-drawing-alice.png"))
    for name, page in (("Alice", alice), ("Bob", bob)):
        wait_until(
            lambda page=page: "orange cat." in reply_text(page) and turn_over(page),
            DEADLINE_SECONDS,
            f"the reply on {name}'s page",
        )
        images = page.locator('[data-testid="stChatMessage"]').filter(has_text="CatGPT ·").locator("img")
        wait_until(
            lambda images=images: images.count() >= 1, DEADLINE_SECONDS, f"the picture on {name}'s page"
        )
        wait_until(
            lambda images=images: images.last.evaluate("img => img.complete && img.naturalWidth > 0"),
            DEADLINE_SECONDS,
            f"the picture to load on {name}'s page",
        )
        assert "drawing-1.png" in reply_text(page)
        assert "is replying to Alice · drawing" not in main_text(page)
    bob.screenshot(path=str(ARTIFACTS / "hosted-picture-bob.png"))
