"""The README's pictures, made by one command from the code as it is:

    flock /tmp/e2e.lock python -m scripts.pictures            # every scene
    flock /tmp/e2e.lock python -m scripts.pictures busy rooms  # only these (file names without .png)

It starts `streamlit run app.py` on a free loopback port with the offline demo assistant, and for the
scenes that need the OpenAI path (web search, drawing) a second one pointed at `tests/openai_server.py`
posing as a model named `local-test-model`. It drives headless Debian Chromium (never `playwright
install`) through each scene and writes docs/NAME.png for every name in `SCENES`, the only pictures the
README may use (`tests/test_pictures.py` checks both ways). Each picture is one browser window, scrolled
so that the newest message sits above the chat box; two windows are taller than the rest, where what
belongs together would not fit (the host's controls below the room's notes; the notes above the lines
that made them).
"""

from __future__ import annotations

import base64
import io
import logging
import re
import sys
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
WINDOW = {"width": 1200, "height": 1150}  # one large laptop window; shown at full width in the README
MODEL = "local-test-model"  # what the OpenAI-path scenes say answers: the test server, not OpenAI

# docs/NAME.png -> what the picture shows. The README uses exactly these pictures.
SCENES = {
    "two-people.png": "Alice and Bob in the lobby; CatGPT (the offline demo assistant) answers each by name",
    "busy.png": "CatGPT replies to Alice while Bob's and Carol's messages wait for the next turn; the box open",
    "reply-and-reactions.png": "Bob's reply quotes Alice's message; reactions under it name who reacted",
    "catch-up.png": "Bob comes back to messages he missed: New since you were last here, and his private summary",
    "host-controls.png": "The This room page as the host sees it: instructions, notes, Remove beside each person, Lock",
    "search.png": "Bob's search for a word in the sidebar, and the earlier message he chose scrolled into view",
    "room-notes.png": "Room notes open on Bob's chat page: a decision, an action item and an open question, marked",
    "private-room.png": "A private room's chat page with its invite link",
    "rooms.png": "The Rooms page: open rooms, a new room, the Private room box",
    "unread.png": "Bob's Rooms page: a room he is in marked unread and mentions you, and the notice of it",
    "web-sources.png": f"A reply that searched the web, its sources as links ({MODEL}, the test server)",
    "drawing.png": f"A picture the assistant drew, in the room like an attached one ({MODEL}, the test server)",
}

log = logging.getLogger("pictures")

MESSAGE = '[data-testid="stChatMessage"]'
SIDEBAR = '[data-testid="stSidebar"]'
MAIN = '[data-testid="stMainBlockContainer"]'
CHAT_BOX = '[data-testid="stChatInput"]'
WAIT_MS = 60_000
# The chat page scrolls inside Streamlit's main section, not the window.
SCROLL_TO_BOTTOM = (
    '() => { for (const e of document.querySelectorAll(\'[data-testid="stMain"], '
    '[data-testid="stAppScrollToBottomContainer"], section.main\')) e.scrollTop = e.scrollHeight; '
    "window.scrollTo(0, document.body.scrollHeight); }"
)


# --- driving a page ---------------------------------------------------------------------------------


def wait_for(page, predicate: Callable[[], object], what: str, seconds: float = 60) -> None:
    """Wait for `what`; if it never comes, keep the page as it was in test-results/ (to see why)."""
    from tests.e2e.conftest import ARTIFACTS, wait_until

    try:
        wait_until(predicate, seconds, what)
    except AssertionError:
        page.screenshot(path=str(ARTIFACTS / "pictures-failed.png"))
        raise


def join(page, url: str | None, nickname: str) -> None:
    if url is not None:
        page.goto(url)
    page.get_by_role("textbox", name="Nickname").fill(nickname)
    page.get_by_role("button", name="Join").click()
    page.get_by_placeholder("Send message").wait_for(timeout=WAIT_MS)


def send(page, text: str) -> None:
    box = page.get_by_placeholder("Send message")
    box.fill(text)
    box.press("Enter")


def main_text(page) -> str:
    return page.locator(MAIN).inner_text()


def turn_over(page) -> bool:
    """No reply is being written and none waits (the status line sits by the chat box, outside MAIN)."""
    text = page.locator("body").inner_text()
    return "is replying to" not in text and "waiting for" not in text and "writing…" not in text


def settle(page, *, live: bool = True) -> None:
    """Let the page finish drawing. A page whose run ends (This room, Rooms) is settled when nothing faded
    is left from an earlier run; the live chat page never ends its run, so it gets a moment instead (a
    message's row of actions comes 0.5 s after it)."""
    if not live:
        wait_for(page, lambda: page.locator('[data-stale="true"]').count() == 0, "the page to settle")
    page.wait_for_timeout(1200)


def shoot(page, name: str, *, chat: bool = True) -> None:
    """docs/NAME: the window as it is, the newest message scrolled above the chat box (checked)."""
    assert name in SCENES, f"{name} is not in SCENES"
    if chat:
        page.evaluate(SCROLL_TO_BOTTOM)
        page.wait_for_timeout(400)
        last, box = page.locator(MESSAGE).last.bounding_box(), page.locator(CHAT_BOX).bounding_box()
        if not (last and box and last["y"] + last["height"] <= box["y"] + 1):
            log.warning("%s: the last message is not all above the chat box (%s, %s)", name, last, box)
    # No hover or focus tooltip in the picture.
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    page.mouse.move(WINDOW["width"] - 1, WINDOW["height"] - 1)
    page.wait_for_timeout(300)
    page.screenshot(path=str(DOCS / name))
    log.info("wrote docs/%s", name)


# --- the scenes -------------------------------------------------------------------------------------


def offline_scenes(browser, url: str, wanted: set[str]) -> None:
    """Everything the offline demo assistant can show, on one server: the lobby, a hosted room (searched),
    a small room that keeps notes, a private room, and the Rooms page that lists them and marks news."""
    from tests.e2e.test_message_actions import pill
    from tests.e2e.test_search import in_view
    from tests.e2e.test_unread_mentions import link_to, toasts

    def window():
        return browser.new_context(viewport=WINDOW).new_page()

    alice, bob, carol = window(), window(), window()

    # The lobby: two people and the assistant.
    join(alice, url, "Alice")
    join(bob, url, "Bob")
    wait_for(bob, lambda: "Alice" in bob.locator(SIDEBAR).inner_text(), "Bob to see Alice")
    send(alice, "Hi Bob! CatGPT, what time is it?")
    wait_for(bob, lambda: "Hi Alice!" in main_text(bob) and turn_over(bob), "the reply to Alice")
    send(bob, "Hello Alice 👋 Shall we plan the trip in its own room?")
    wait_for(bob, lambda: "Bob, you said" in main_text(bob) and turn_over(bob), "the reply to Bob")
    settle(bob)
    if "two-people.png" in wanted:
        shoot(bob, "two-people.png")

    if "reply-and-reactions.png" in wanted:
        # Only when mentioned: the assistant's replies would quote the messages and match them too.
        alice.locator(SIDEBAR).get_by_text("Only when mentioned").click()
        wait_for(
            bob,
            lambda: bob.locator(SIDEBAR).get_by_role("radio", name="Only when mentioned").is_checked(),
            "the policy on Bob's page",
        )
        first = "Lunch at noon on Friday? The place by the river"
        send(alice, first)
        wait_for(bob, lambda: first in main_text(bob), "Alice's message on Bob's page")
        pill(bob, first, "👍").click()
        wait_for(alice, lambda: pill(alice, first, "👍 1").count() == 1, "Bob's 👍 on Alice's page")
        pill(alice, first, "🎉").click()
        wait_for(bob, lambda: pill(bob, first, "🎉 1").count() == 1, "Alice's 🎉 on Bob's page")
        pill(bob, first, "Reply").click()
        bob.get_by_text("Replying to Alice").wait_for(timeout=WAIT_MS)
        answer = "Yes, noon works for me"
        send(bob, answer)
        wait_for(alice, lambda: answer in main_text(alice), "Bob's reply on Alice's page")
        alice.keyboard.press("Escape")
        settle(alice)
        shoot(alice, "reply-and-reactions.png")

    # A room Alice opens and hosts: the assistant busy while others write.
    trip = url + "?room=trip-planning"
    join(alice, trip, "Alice")
    join(bob, trip, "Bob")
    join(carol, trip, "Carol")
    wait_for(carol, lambda: "Bob" in carol.locator(SIDEBAR).inner_text(), "Carol to see Bob")
    send(alice, "Where should we go in May: Lisbon or Porto?")
    wait_for(carol, lambda: "is replying to Alice" in main_text(carol), "the reply to start")
    send(bob, "Porto! The food is amazing")
    send(carol, "Lisbon has the trams though")
    wait_for(carol, lambda: main_text(carol).count("waiting for") >= 1, "the waiting messages")
    if "busy.png" in wanted:
        wait_for(carol, lambda: "Carol" in main_text(carol) and "waiting for" in main_text(carol), "Carol's")
        carol.wait_for_timeout(300)
        shoot(carol, "busy.png")
    wait_for(carol, lambda: turn_over(carol), "the turns to end", seconds=120)

    # Catch me up: Bob steps away, comes back to what he missed.
    if "catch-up.png" in wanted:
        bob_address = bob.url
        bob.goto("about:blank")
        for text in ("Porto it is, then. Bob, can you look at hotels near the river?",):
            send(alice, text)
            wait_for(alice, lambda text=text: text in main_text(alice), "Alice's message")
            wait_for(alice, lambda: turn_over(alice), "the turn to end")
        bob.goto(bob_address)
        wait_for(bob, lambda: "New since you were last here" in main_text(bob), "the divider")
        bob.get_by_role("button", name="Catch me up").click()
        wait_for(bob, lambda: "Only you can see this summary" in main_text(bob), "Bob's summary")
        settle(bob)
        bob.get_by_text("New since you were last here").first.evaluate(
            "e => e.scrollIntoView({block: 'start'})"
        )
        shoot(bob, "catch-up.png", chat=False)

    # The host's controls, on the This room page.
    if "host-controls.png" in wanted:
        alice.locator(SIDEBAR).get_by_role("link", name="This room").click()
        alice.get_by_role("heading", name="Room trip-planning").first.wait_for(timeout=WAIT_MS)
        alice.get_by_role("textbox", name="Room instructions").fill(
            "We are planning a weekend in Portugal in May. Keep answers short and suggest one thing at a time."
        )
        alice.get_by_role("button", name="Save instructions").click()
        alice.get_by_text("Saved. Everyone in the room was told").wait_for(timeout=WAIT_MS)
        settle(alice, live=False)
        # The room's notes sit between the instructions and the host's controls: a window tall
        # enough for both, from the instructions' heading down to Lock room.
        heading, lock = alice.get_by_role("heading", name="Room instructions"), alice.get_by_text("Lock room")
        alice.set_viewport_size({"width": WINDOW["width"], "height": 2400})
        span = lock.bounding_box()["y"] + lock.bounding_box()["height"] - heading.bounding_box()["y"]
        alice.set_viewport_size({"width": WINDOW["width"], "height": int(span) + 300})
        heading.evaluate("e => e.scrollIntoView({block: 'start'})")
        # A window made shorter at its bottom keeps where it is scrolled to: cut just below Lock room.
        bottom = heading.bounding_box()["y"] + span + 40
        alice.set_viewport_size({"width": WINDOW["width"], "height": int(bottom)})
        shoot(alice, "host-controls.png", chat=False)
        alice.set_viewport_size(WINDOW)

    # Search: Bob, reading the latest, finds the question that started it all; choosing it scrolls back.
    if "search.png" in wanted:
        bob.evaluate(SCROLL_TO_BOTTOM)
        sidebar = bob.locator(SIDEBAR)
        sidebar.get_by_role("textbox", name="Search this room").fill("porto")
        sidebar.get_by_role("button", name="Search", exact=True).click()
        # Each result: who, when, and a few words around the first word found.
        found = sidebar.get_by_role("button", name=re.compile(r"^Alice · .* · .*Lisbon or Porto\?"))
        wait_for(bob, lambda: found.count() == 1, "Alice's question among the results")
        found.click()
        asked = bob.locator(MESSAGE).filter(has_text="Where should we go in May")
        asked = asked.filter(has_text="Actions for Alice's message")  # hers, not a reply quoting it
        wait_for(bob, lambda: asked.count() == 1 and in_view(bob, asked), "Bob's page to show the question")
        settle(bob)
        shoot(bob, "search.png", chat=False)

    # Room notes: three marked lines in a small room of their own, and Bob's notes open above them.
    if wanted & {"room-notes.png", "unread.png"}:
        lunch = url + "?room=friday-lunch"
        join(alice, lunch, "Alice")
        join(bob, lunch, "Bob")
        alice.locator(SIDEBAR).get_by_text("Only when mentioned").click()  # no reply: all fits the window
        wait_for(bob, lambda: "to reply to only when mentioned" in main_text(bob), "the policy")
        for page, text in (
            (alice, "decided: Friday lunch at noon, at the place by the river"),
            (bob, "todo @Bob book a table for six"),
            (alice, "Can we bring the kids? ?open"),
        ):
            send(page, text)
            wait_for(bob, lambda text=text: text in main_text(bob), "the message on Bob's page")
        panel = bob.locator('[data-testid="stExpander"]').filter(has_text="Room notes")
        panel.get_by_text("Room notes").click()
        noted = ("Friday lunch at noon", "book a table for six", "Can we bring the kids?")
        wait_for(bob, lambda: all(n in panel.inner_text() for n in noted), "the three items in Bob's notes")
        settle(bob)
        if "room-notes.png" in wanted:
            # The notes open at the top and the lines that made them at the bottom: a window as tall as
            # the page, from its title down to the chat box.
            bob.evaluate(SCROLL_TO_BOTTOM)
            bob.wait_for_timeout(400)
            title = bob.get_by_role("heading", name="Shared chat room").bounding_box()
            taller = WINDOW["height"] + max(0, int(24 - title["y"]))
            bob.set_viewport_size({"width": WINDOW["width"], "height": taller})
            shoot(bob, "room-notes.png")
            bob.set_viewport_size(WINDOW)

    # A private room, opened from the Rooms page.
    dana = window()
    if "private-room.png" in wanted:
        dana.goto(url + "rooms")
        dana.get_by_role("textbox", name="Room name").fill("surprise-party")
        dana.get_by_text("Private room").click()
        dana.get_by_role("button", name="Open room").click()
        join(dana, None, "Dana")
        # No reply, so that the invite link at the top and the newest message both fit the window.
        dana.locator(SIDEBAR).get_by_text("Only when mentioned").click()
        dana.get_by_text("to reply to only when mentioned").first.wait_for(timeout=WAIT_MS)
        send(dana, "The surprise party is on Friday at 8: tell nobody outside this room!")
        wait_for(dana, lambda: "tell nobody outside" in main_text(dana), "Dana's message")
        settle(dana)
        shoot(dana, "private-room.png")

    # The Rooms page: the lobby and trip-planning listed, the private room not.
    if "rooms.png" in wanted:
        bob.goto(url + "rooms")
        bob.get_by_role("button", name="Open room").wait_for(timeout=WAIT_MS)
        wait_for(bob, lambda: "trip-planning" in main_text(bob), "the rooms listed")
        bob.get_by_role("textbox", name="Room name").fill("book-club")
        bob.get_by_text("Private room").click()
        settle(bob, live=False)
        shoot(bob, "rooms.png", chat=False)

    # Unread and mentions: Bob, on the Rooms page, is mentioned in friday-lunch, which he is still in.
    if "unread.png" in wanted:
        bob.goto(url + "rooms")
        wait_for(bob, lambda: "all read" in link_to(bob, "friday-lunch"), "friday-lunch listed as read")
        for text in ("The river place only has a table at 12:30", "@Bob can you still make it at 12:30?"):
            send(alice, text)
            wait_for(alice, lambda text=text: text in main_text(alice), "Alice's message")
        wait_for(
            bob,
            lambda: (
                "2 unread" in link_to(bob, "friday-lunch") and "mentions you" in link_to(bob, "friday-lunch")
            ),
            "friday-lunch marked",
        )
        wait_for(bob, lambda: any("mentioned you in friday-lunch" in t for t in toasts(bob)), "the notice")
        settle(bob, live=False)
        shoot(bob, "unread.png", chat=False)


def a_drawing() -> str:
    """A small cat, drawn here: the test server hands it back as the model's picture (base64 PNG)."""
    picture = Image.new("RGB", (320, 240), (255, 244, 214))
    pen = ImageDraw.Draw(picture)
    orange, dark = (240, 150, 40), (60, 40, 20)
    pen.polygon([(95, 95), (115, 30), (150, 85)], fill=orange)
    pen.polygon([(170, 85), (205, 30), (225, 95)], fill=orange)
    pen.ellipse((80, 60, 240, 200), fill=orange)
    pen.ellipse((120, 110, 138, 130), fill=dark)
    pen.ellipse((182, 110, 200, 130), fill=dark)
    pen.polygon([(152, 145), (168, 145), (160, 156)], fill=dark)
    for y in (150, 162):
        pen.line((60, y - 6, 130, y), fill=dark, width=2)
        pen.line((190, y, 260, y - 6), fill=dark, width=2)
    out = io.BytesIO()
    picture.save(out, format="PNG")
    return base64.b64encode(out.getvalue()).decode("ascii")


def openai_scenes(browser, url: str, model_server, wanted: set[str]) -> None:
    """Web search and drawing: OpenAI's hosted tools, played by the test server."""
    from tests.openai_server import Draw, Search

    alice, bob = (browser.new_context(viewport=WINDOW).new_page() for _ in range(2))
    join(alice, url, "Alice")
    join(bob, url, "Bob")
    if "web-sources.png" in wanted:
        model_server.script(
            Search(
                "Cats purr by twitching the muscles of the larynx, at about 25 to 150 Hz; "
                "purring may even help their bones heal.",
                (
                    ("https://en.wikipedia.org/wiki/Purr", "Purr - Wikipedia"),
                    ("https://www.scientificamerican.com/article/why-do-cats-purr/", "Why do cats purr?"),
                ),
                seconds=1.0,
            )
        )
        send(alice, "@CatGPT why do cats purr? Look it up please")
        wait_for(bob, lambda: "25 to 150 Hz" in main_text(bob) and turn_over(bob), "the reply with sources")
        settle(bob)
        shoot(bob, "web-sources.png")
    if "drawing.png" in wanted:
        model_server.script(Draw(a_drawing(), "Here is an orange cat, purring.", seconds=1.0))
        send(bob, "Nice! Now draw us an orange cat")
        wait_for(bob, lambda: "purring." in main_text(bob) and turn_over(bob), "the drawing")
        image = bob.locator(MESSAGE).last.locator("img")
        wait_for(bob, lambda: image.count() >= 1, "the picture")
        wait_for(bob, lambda: image.last.evaluate("i => i.complete && i.naturalWidth > 0"), "it to load")
        settle(bob)
        shoot(bob, "drawing.png")


# --- the command ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S")
    names = argv if argv is not None else sys.argv[1:]
    wanted = {f"{n.removesuffix('.png')}.png" for n in names} or set(SCENES)
    if unknown := wanted - set(SCENES):
        raise SystemExit(f"no such scene: {', '.join(sorted(unknown))} (scenes: {', '.join(SCENES)})")

    from playwright.sync_api import sync_playwright

    from bench.browser import CHROMIUM_ARGS, chromium_path
    from tests.e2e.conftest import AppServer
    from tests.openai_server import API_KEY, OpenAIServer

    if not (path := chromium_path()):
        raise SystemExit("no Chromium here: apt-get install chromium (never `playwright install`)")
    # Nobody leaves while the scenes run: a tab that moves on stays in its room (shown on the Rooms page).
    quiet = {"LEAVE_GRACE_SECONDS": "1800", "HEARTBEAT_TIMEOUT_SECONDS": "1800", "RATE_LIMIT_SECONDS": "0"}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            offline = wanted - {"web-sources.png", "drawing.png"}
            if offline:
                server = AppServer({"WORD_DELAY_MS": "120", **quiet})
                try:
                    offline_scenes(browser, server.url, offline)
                finally:
                    server.stop()
            if hosted := wanted & {"web-sources.png", "drawing.png"}:
                with OpenAIServer() as model_server:
                    model_server.delta_delay = 0.03
                    server = AppServer(
                        {
                            "OPENAI_API_KEY": API_KEY,
                            "OPENAI_BASE_URL": model_server.base_url,
                            "OPENAI_MODEL": MODEL,
                            "WEB_SEARCH": "on",
                            "IMAGE_GENERATION": "on",
                            "WORD_DELAY_MS": "0",
                            **quiet,
                        }
                    )
                    try:
                        openai_scenes(browser, server.url, model_server, hosted)
                    finally:
                        server.stop()
        finally:
            browser.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
