"""No page makes a browser talk to anyone but the app, in real Chromium: every request and websocket of
two pages is recorded while they chat with an attached picture, someone writes pictures from elsewhere in
Markdown and HTML, the model answers with web sources and writes a catch-up summary with a picture in it,
and one of them reads every other page. Every request must go to the app's own address; a local server
that stands for "elsewhere" counts what it is asked for, and must be asked nothing.

Also: every response carries the app's Content-Security-Policy, and no page breaks it; and a stranger who
reads every page never receives a secret setting.
"""

from __future__ import annotations

import threading
import urllib.request
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from PIL import Image

from tests.e2e.conftest import ARTIFACTS, DEADLINE_SECONDS, wait_until
from tests.e2e.test_attachments import send_with_files
from tests.e2e.test_openai_path import watch_everything_sent_to
from tests.e2e.test_two_people import MAIN, MESSAGE, SIDEBAR, in_room, join, reply_text, send, turn_over
from tests.openai_server import API_KEY, Say, Search

pytestmark = pytest.mark.e2e

GIF = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"


class Elsewhere:
    """A web server that stands for anyone but the app: it answers every GET with a 1-pixel GIF and
    counts what it was asked for."""

    def __init__(self):
        asked = self.asked = Counter()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                asked[self.path] += 1
                self.send_response(200)
                self.send_header("Content-Type", "image/gif")
                self.send_header("Content-Length", str(len(GIF)))
                self.end_headers()
                self.wfile.write(GIF)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def elsewhere():
    server = Elsewhere()
    yield server
    server.close()


@pytest.fixture
def whiteboard(tmp_path: Path) -> Path:
    path = tmp_path / "whiteboard.png"
    Image.new("RGB", (320, 200), (250, 236, 214)).save(path, format="PNG")
    return path


def record(page, requests: list[str], console: list[str]) -> None:
    """Every request the page makes (pictures, scripts, fonts, the websocket) and every console line."""
    page.on("request", lambda request: requests.append(request.url))
    page.on("websocket", lambda socket: requests.append(socket.url))
    page.on("console", lambda line: console.append(f"{line.type}: {line.text}"))


def origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return ({"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme), parts.netloc)


@pytest.mark.promise_markup
def test_every_request_of_every_page_goes_to_the_app_alone(
    app_server, new_page, openai_server, elsewhere, whiteboard
):
    server = app_server(
        OPENAI_API_KEY=API_KEY, OPENAI_BASE_URL=openai_server.base_url, WEB_SEARCH="on", WORD_DELAY_MS="0"
    )

    requests: list[str] = []
    console: list[str] = []
    alice, bob = new_page(), new_page()
    for page in (alice, bob):
        record(page, requests, console)
    join(alice, server.url, "Alice")
    join(bob, server.url, "Bob")

    # A chat with an attached picture: it shows on Bob's page, from the app.
    send_with_files(alice, "the whiteboard from Tuesday", whiteboard)
    picture = bob.locator(MESSAGE).filter(has_text="the whiteboard from Tuesday").locator("img")
    wait_until(lambda: picture.count() == 1, DEADLINE_SECONDS, "the picture on Bob's page")
    wait_until(
        lambda: picture.evaluate("img => img.complete && img.naturalWidth > 0"),
        DEADLINE_SECONDS,
        "the picture to load on Bob's page",
    )
    wait_until(lambda: "You said: the whiteboard" in reply_text(bob), DEADLINE_SECONDS, "the reply")
    wait_until(lambda: turn_over(alice), DEADLINE_SECONDS, "the turn to end")

    # Pictures from elsewhere, in Markdown (inline and by reference) and in HTML; the reply repeats them.
    send(
        alice,
        f"look ![a tracker]({elsewhere.url}/inline.gif) and ![by reference][r] "
        f'<img src="{elsewhere.url}/html.gif">\n\n[r]: {elsewhere.url}/reference.gif',
    )
    wait_until(lambda: "You said: look" in reply_text(bob), DEADLINE_SECONDS, "the reply that repeats them")
    wait_until(lambda: turn_over(alice), DEADLINE_SECONDS, "the turn to end")
    said = bob.locator(MESSAGE).filter(has_text="look")
    pictures_said = (said.get_by_role("link", name="a tracker").count(), said.locator("img").count())

    # A reply with web sources, one of them elsewhere's address.
    openai_server.script(
        Search("Cats purr at about 25 Hz.", ((f"{elsewhere.url}/source", "A page elsewhere"),))
    )
    send(alice, "why do cats purr? look it up")
    for name, page in (("Alice", alice), ("Bob", bob)):
        link = page.locator(f'{MESSAGE} a[href="{elsewhere.url}/source"]')
        wait_until(lambda link=link: link.count() == 1, DEADLINE_SECONDS, f"the source link on {name}'s page")
    wait_until(lambda: turn_over(alice), DEADLINE_SECONDS, "the turn to end")

    # A catch-up whose summary holds a picture from elsewhere.
    bob_address = bob.url
    bob.goto("about:blank")  # Bob steps away; he stays in the room for the grace period
    send(alice, "Lunch at noon on Friday?")
    wait_until(lambda: "You said: Lunch" in reply_text(alice), DEADLINE_SECONDS, "the reply")
    wait_until(lambda: turn_over(alice), DEADLINE_SECONDS, "the turn to end")
    bob.goto(bob_address)
    in_room(bob)
    summary = f"Alice asks about lunch ![a map]({elsewhere.url}/summary.gif) on Friday."
    openai_server.script(Say(summary))
    bob.get_by_role("button", name="Catch me up").click()
    wait_until(
        lambda: "Alice asks about lunch" in bob.locator(MAIN).inner_text(), DEADLINE_SECONDS, "the summary"
    )
    summary_links = bob.locator(MAIN).get_by_role("link", name="a map").count()

    # Every other page, with its icons.
    for title, heading in (("This room", "Room lobby"), ("Rooms", "Rooms"), ("About", "About")):
        bob.locator(SIDEBAR).get_by_role("link", name=title).click()
        bob.get_by_role("heading", name=heading).first.wait_for(timeout=DEADLINE_SECONDS * 1000)
    bob.screenshot(path=str(ARTIFACTS / "strangers-about-bob.png"))
    alice.screenshot(path=str(ARTIFACTS / "strangers-alice.png"), full_page=True)

    assert not elsewhere.asked, f"pages fetched from elsewhere: {dict(elsewhere.asked)}"
    app = origin(server.url)
    away = [url for url in requests if urlsplit(url).scheme not in ("data", "blob") and origin(url) != app]
    assert not away, f"requests that left the app: {away}"
    assert any(url.startswith("ws://") for url in requests), "the pages' websockets were recorded"
    # The message and the reply that repeats it show the picture as a link; so does the summary.
    assert pictures_said[0] >= 2 and pictures_said[1] == 0, pictures_said
    assert summary_links == 1
    with urllib.request.urlopen(server.url) as answer:
        policy = answer.headers["Content-Security-Policy"] or ""
    assert "img-src 'self' data: blob:" in policy and "default-src 'self'" in policy
    broken = [line for line in console if "Content Security Policy" in line]
    assert not broken, f"the policy refused something a page wanted: {broken}"
    assert "Traceback" not in server.log()


@pytest.mark.promise_api_key
def test_a_stranger_reading_every_page_receives_no_secret_setting(app_server, new_page, redis_server):
    redis_server.client().config_set("requirepass", "redis-pw-4f9a1c")
    secrets = ("sk-key-7b2e90", "base-user", "base-pw-c3d8e1", "base-token-a61f02", "redis-pw-4f9a1c")
    server = app_server(
        OPENAI_API_KEY=secrets[0],
        OPENAI_BASE_URL=f"https://{secrets[1]}:{secrets[2]}@127.0.0.1:9/v1?api-key={secrets[3]}",
        REDIS_URL=f"redis://:{secrets[4]}@127.0.0.1:{redis_server.port}/0",
    )
    stranger = new_page()
    received = watch_everything_sent_to(stranger)
    stranger.goto(server.url)
    stranger.get_by_role("textbox", name="Nickname").wait_for(timeout=DEADLINE_SECONDS * 1000)
    shown = [stranger.content()]
    for title, heading in (("This room", "Room lobby"), ("Rooms", "Rooms"), ("About", "About")):
        stranger.locator(SIDEBAR).get_by_role("link", name=title).click()
        stranger.get_by_role("heading", name=heading).first.wait_for(timeout=DEADLINE_SECONDS * 1000)
        shown.append(stranger.content())
    settings = stranger.locator('[data-testid="stTable"]')
    wait_until(lambda: "REDIS_URL" in settings.inner_text(), DEADLINE_SECONDS, "the settings on About")
    shown.append(stranger.content())
    stranger.screenshot(path=str(ARTIFACTS / "strangers-about-settings.png"), full_page=True)

    everything = "".join(shown + received)
    assert "WORD_DELAY_MS" in everything and f"127.0.0.1:{redis_server.port}" in everything
    for secret in secrets:
        assert secret not in everything, f"a stranger received {secret}"
        assert secret not in server.log(), f"the server logged {secret}"
