"""Accessibility in Chromium: axe-core finds nothing serious on any page, and a person who uses only the
keyboard can join, talk, act on a message and leave.

axe-core comes from the npm registry (`.ci/run` installs it into `.ci/node/`, git-ignored). Without it the
axe test skips and says why, except under CI=true, where that is a failure (as a missing Chromium is).

The app's Content-Security-Policy allows no inline script but Streamlit's own, so a `<script>` tag with
axe's text in it would be refused. axe is given to each page as an init script instead (the DevTools
protocol's "evaluate on new document", which the page's policy does not govern): the page itself, its
policy included, is exactly what a visitor gets; the policy is tested elsewhere (test_strangers.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import ARTIFACTS, DEADLINE_SECONDS, ROOT, wait_until
from tests.e2e.test_two_people import MAIN, MESSAGE, SIDEBAR, in_room, join, reply_text, send, turn_over

pytestmark = pytest.mark.e2e

AXE = ROOT / ".ci" / "node" / "node_modules" / "axe-core" / "axe.min.js"
HARMFUL = ("serious", "critical")  # axe-core's impacts that block or badly hinder a person
POPOVER_BODY = '[data-testid="stPopoverBody"]'


def axe_path() -> Path:
    if not AXE.is_file():
        reason = f"no axe-core at {AXE.relative_to(ROOT)}: npm install --no-save --prefix .ci/node axe-core@4"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return AXE


def stale(page) -> int:
    """How many elements Streamlit draws faded as stale (what a run has not redrawn yet)."""
    return page.locator('[data-stale="true"]').count()


def axe_findings(page) -> list[dict]:
    """axe-core's violations on the page as it is now: rule, impact and the elements' text and target.

    Faded elements would read as low contrast; they are given a while to go (a run in progress), but the
    chat page's live run never ends and may keep one, which a visitor sees too: then axe reads it as is."""
    with contextlib.suppress(AssertionError):
        wait_until(lambda: stale(page) == 0, 10, "faded elements to go")
    return page.evaluate(
        """async () => {
          const result = await axe.run(document, { resultTypes: ["violations"] });
          return result.violations.map(v => ({
            id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.map(n => ({ target: n.target.join(" "), html: n.html.slice(0, 160),
                                        summary: (n.failureSummary || "").slice(0, 200) })),
          }));
        }"""
    )


def harmful(findings: list[dict]) -> list[dict]:
    """What a person cannot work around: serious and critical violations, and headings out of order (a
    moderate rule in axe, but a screen reader's outline of the page)."""
    return [f for f in findings if f["impact"] in HARMFUL or f["id"] == "heading-order"]


def test_axe_core_finds_nothing_serious_on_any_page(chromium, app_server):
    script = axe_path()
    server = app_server(WORD_DELAY_MS="0")
    context = chromium.new_context(viewport={"width": 1100, "height": 900})
    context.add_init_script(path=str(script))
    page = context.new_page()
    found: dict[str, list[dict]] = {}
    try:
        page.goto(server.url)
        page.get_by_role("textbox", name="Nickname").wait_for(timeout=DEADLINE_SECONDS * 1000)
        found["join form"] = axe_findings(page)

        join(page, None, "Alice")
        send(page, "Hello, what time is it?")
        wait_until(lambda: "Hi Alice" in reply_text(page), DEADLINE_SECONDS, "the assistant's reply")
        wait_until(lambda: turn_over(page), DEADLINE_SECONDS, "the reply to end")
        found["chat"] = axe_findings(page)
        page.locator(MESSAGE).filter(has_text="Hello, what time").get_by_role("button").first.click()
        page.locator(POPOVER_BODY).get_by_role("button").first.wait_for(timeout=DEADLINE_SECONDS * 1000)
        found["chat, actions open"] = axe_findings(page)
        page.keyboard.press("Escape")

        for link, heading in (("Rooms", "Rooms"), ("This room", "Room lobby"), ("About", "About")):
            page.locator(SIDEBAR).get_by_role("link", name=link).click()
            page.get_by_role("heading", name=heading).first.wait_for(timeout=DEADLINE_SECONDS * 1000)
            found[link] = axe_findings(page)
        page.locator(SIDEBAR).get_by_role("link", name="Chat room").click()
        in_room(page)
    finally:
        page.screenshot(path=ARTIFACTS / "accessibility-last-page.png")
        (ARTIFACTS / "accessibility-axe.json").write_text(json.dumps(found, indent=1, ensure_ascii=False))
        context.close()

    counts = {name: sum(len(f["nodes"]) for f in harmful(findings)) for name, findings in found.items()}
    details = {
        name: [(f["id"], f["impact"], [n["html"] for n in f["nodes"]]) for f in harmful(findings)]
        for name, findings in found.items()
    }
    assert set(counts.values()) == {0}, f"axe-core, elements per page: {counts}\n{details}"


def press_until(page, key: str, focused: str, what: str, presses: int = 80) -> None:
    """Press `key` (Tab, Shift+Tab, an arrow) until the element with the keyboard focus, `el`, satisfies the script
    expression `focused`: as a person tabs through the page until they reach what they want."""
    check = (
        f"() => {{ const el = document.activeElement; return !!el && el !== document.body && ({focused}); }}"
    )
    for pressed in range(presses + 1):
        if page.evaluate(check):
            return
        if pressed < presses:
            page.keyboard.press(key)
    raise AssertionError(f"{what}: not reached with {presses} presses of {key}")


def actions_of(text: str) -> str:
    """The focused element is the actions button under the message holding `text`."""
    return (
        "el.closest('[data-testid=\"stPopover\"]') !== null"
        f" && (el.closest('{MESSAGE}')?.innerText ?? '').includes({json.dumps(text)})"
        " && el.innerText.includes('Actions for your message')"
    )


def pill(label: str) -> str:
    """The focused element is the pill whose label holds `label`, in the open row of actions."""
    return f"el.closest('{POPOVER_BODY}') !== null && el.innerText.includes({json.dumps(label)})"


def choose(page, text: str, label: str) -> None:
    """Open the actions of the message holding `text` and put the focus on its pill `label`, by keyboard:
    Shift+Tab back to the message's button, Enter opens the row (unless open), Tab into the row (one tab
    stop), then the arrow keys along its pills. A redraw of the message (its reactions changed) may close
    the row meanwhile: then the person starts again."""
    pills = page.locator(POPOVER_BODY).get_by_role("button")
    start = time.monotonic()
    while time.monotonic() < start + DEADLINE_SECONDS:
        press_until(page, "Shift+Tab", actions_of(text), "the message's actions button")
        with contextlib.suppress(AssertionError):
            if page.evaluate("document.activeElement.getAttribute('aria-expanded')") == "true":
                page.keyboard.press("Enter")  # a row left open by a redraw: closed, to open afresh
                wait_until(lambda: pills.count() == 0, 5, "the row of actions to close")
            page.keyboard.press("Enter")
            # Tabbing before its pills are drawn would leave the row, which closes it.
            wait_until(lambda: pills.count() > 0, 5, "the row of actions to open")
            press_until(
                page, "Tab", f"el.closest('{POPOVER_BODY}') !== null", "the row of actions", presses=15
            )
            press_until(page, "ArrowRight", pill(label), f"the pill {label}", presses=8)
            return
    raise AssertionError(f"the pill {label} under the message {text!r}: not reached by keyboard")


def test_with_the_keyboard_alone_a_person_joins_talks_reacts_replies_deletes_and_leaves(app_server, new_page):
    server = app_server(WORD_DELAY_MS="0")
    page = new_page()
    page.goto(server.url)
    page.get_by_role("textbox", name="Nickname").wait_for(timeout=DEADLINE_SECONDS * 1000)

    press_until(page, "Tab", "el.placeholder === 'e.g. Alice'", "the nickname box")
    page.keyboard.type("Kim")
    page.keyboard.press("Enter")  # submits the join form
    in_room(page)

    # The reply policy with the arrow keys: the assistant keeps out of what follows.
    press_until(page, "Tab", "el.type === 'radio' && el.checked", "the reply policy")
    page.keyboard.press("ArrowDown")
    wait_until(
        lambda: page.locator(SIDEBAR).get_by_role("radio", name="Only when mentioned").is_checked(),
        DEADLINE_SECONDS,
        "the policy chosen with an arrow key",
    )

    first = "Coffee at ten tomorrow?"
    press_until(page, "Tab", "el.placeholder === 'Send message'", "the chat box")
    page.keyboard.type(first)
    page.keyboard.press("Enter")
    mine = page.locator(MESSAGE).filter(has_text=first)
    wait_until(
        lambda: mine.count() == 1 and "Kim (you)" in mine.inner_text(), DEADLINE_SECONDS, "the message"
    )

    # React: the message's actions, 👍, Space; the button then says who reacted.
    choose(page, first, "👍")
    page.keyboard.press("Space")
    wait_until(lambda: "👍 Kim" in mine.inner_text(), DEADLINE_SECONDS, "Kim's 👍 on the message's button")
    if page.locator(POPOVER_BODY).count():
        page.keyboard.press("Escape")
        wait_until(
            lambda: page.locator(POPOVER_BODY).count() == 0, DEADLINE_SECONDS, "Escape to close the row"
        )

    # Reply: Reply from the same row, then the chat box, which now says what it replies to.
    choose(page, first, "Reply")
    page.keyboard.press("Enter")
    wait_until(lambda: "Replying to" in page.locator(MAIN).inner_text(), DEADLINE_SECONDS, "Replying to")
    if page.locator(POPOVER_BODY).count():
        page.keyboard.press("Escape")
    answer = "Make it half past."
    press_until(page, "Tab", "el.placeholder === 'Send message'", "the chat box")
    page.keyboard.type(answer)
    page.keyboard.press("Enter")
    reply = page.locator(MESSAGE).filter(has_text=answer)
    wait_until(
        lambda: reply.count() == 1 and first in reply.inner_text(), DEADLINE_SECONDS, "the reply, quoting"
    )

    # Delete the reply: its actions, Delete, then the confirmation's Delete button.
    choose(page, answer, "Delete")
    page.keyboard.press("Enter")
    wait_until(lambda: "for everyone?" in page.locator(MAIN).inner_text(), DEADLINE_SECONDS, "the question")
    if page.locator(POPOVER_BODY).count():
        page.keyboard.press("Escape")
    press_until(
        page,
        "Tab",
        "el.tagName === 'BUTTON' && el.innerText.trim() === 'Delete'",
        "the confirmation's Delete",
    )
    page.keyboard.press("Enter")
    wait_until(
        lambda: (
            page.locator(MESSAGE).filter(has_text=answer).count() == 0
            and "message deleted" in page.locator(MAIN).inner_text()
        ),
        DEADLINE_SECONDS,
        "the reply deleted",
    )

    # Leave: the sidebar's button; the join form comes back.
    press_until(page, "Tab", "el.innerText.includes('Leave the room')", "Leave the room")
    page.keyboard.press("Enter")
    page.get_by_role("textbox", name="Nickname").wait_for(timeout=DEADLINE_SECONDS * 1000)
    assert page.get_by_placeholder("Send message").count() == 0
    page.screenshot(path=ARTIFACTS / "accessibility-keyboard-left.png")
