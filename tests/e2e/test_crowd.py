"""A crowd of real pages pressing Enter together: no message is lost or doubled, on any page.

AppTest cannot see these races (a widget value on its way while the page redraws); only real pages can.
The same crowd runs on one process (rooms in memory) and on two processes sharing the room through Redis.
"""

from __future__ import annotations

import re
import time

import pytest

from tests.e2e.conftest import ARTIFACTS, DEADLINE_SECONDS, wait_until
from tests.e2e.test_two_people import MESSAGE, join

pytestmark = pytest.mark.e2e

ROUNDS = 22  # 5 people a round: over 100 messages, so a loss of 3 % cannot slip through
BUSY = "is replying to"


def user_bubbles(page) -> list[str]:
    """The people's messages the page shows (an assistant's reply quotes them, so it is left out).

    Elements Streamlit marks stale (left from the page's previous run, faded, about to be redrawn) do
    not count."""
    texts = page.locator(MESSAGE).evaluate_all(
        "els => els.filter(e => !e.closest('[data-stale=\"true\"]')).map(e => e.innerText)"
    )
    return [t for t in texts if "CatGPT ·" not in t]


def tokens_on(page) -> list[str]:
    return [token for text in user_bubbles(page) for token in re.findall(r"\bm\d{3}[a-z]+\b", text)]


def fill(page, text: str) -> None:
    page.get_by_placeholder("Send message").fill(text)


def press_enter(page) -> None:
    page.get_by_placeholder("Send message").press("Enter")


def busy_shown(page) -> bool:
    return BUSY in page.locator('[data-testid="stMainBlockContainer"]').inner_text()


@pytest.mark.parametrize("store", ["memory", "redis"])
@pytest.mark.promise_chromium_crowd
def test_five_people_pressing_enter_together_lose_and_double_nothing(store, request, app_server, new_page):
    limits = {"RATE_LIMIT_MESSAGES": "1000", "RATE_LIMIT_SECONDS": "1", "LEAVE_GRACE_SECONDS": "1"}
    if store == "memory":
        urls = [app_server(**limits).url]
    else:  # two app processes sharing the room through a real Redis; the people alternate between them
        urls = [server.url for server in request.getfixturevalue("redis_apps")(2, **limits)]
    names = ["ann", "ben", "cat", "dan", "eve"]
    pages = {name: new_page() for name in names}
    for index, (name, page) in enumerate(pages.items()):
        join(page, urls[index % len(urls)], name.title())
    sent: list[str] = []
    for round_number in range(ROUNDS):
        # What happens to the room while the crowd writes: a join, a leave, a policy change and back.
        if round_number == 6:
            pages["fay"] = new_page()
            join(pages["fay"], urls[-1], "Fay")
        if round_number == 9:
            pages.pop("eve").get_by_role("button", name="Leave the room").click()
        if round_number in (12, 15):
            label = "Only when mentioned" if round_number == 12 else "Every message"
            pages["ann"].locator('[data-testid="stSidebar"]').get_by_text(label).click()
        round_tokens = {name: f"m{round_number:03d}{name}" for name in pages}
        kind = round_number % 4
        for index, (name, page) in enumerate(pages.items()):
            asks = " @CatGPT" if kind == 1 and index == 0 else ""  # asks even when only mentions are answered
            fill(page, f"{round_tokens[name]} says hello{asks}")
        # The timing of the press: all at once; just as a reply starts; just as one ends; spread out.
        crowd = list(pages.values())
        if kind == 1:  # the first one asks, the others press as the reply to it starts
            press_enter(crowd.pop(0))
            asked = round_tokens["ann"]
            # On a slow machine the whole reply can come and go between two looks at Ben's page: then
            # his page shows Ann's message (a loss would still fail the round below).
            wait_until(
                lambda asked=asked: busy_shown(pages["ben"]) or asked in tokens_on(pages["ben"]),
                DEADLINE_SECONDS,
                "a reply to start",
            )
        elif kind == 2:
            wait_until(lambda: not busy_shown(pages["ben"]), DEADLINE_SECONDS, "the reply to end")
        for index, page in enumerate(crowd):
            if kind == 3:
                page.wait_for_timeout(300 * (index > 0))  # spread over about a second and a half
            press_enter(page)
        sent += round_tokens.values()

        def every_page_shows_this_round(round_tokens=round_tokens) -> bool:
            return all(set(round_tokens.values()) <= set(tokens_on(p)) for p in pages.values())

        try:
            wait_until(every_page_shows_this_round, DEADLINE_SECONDS, f"round {round_number} on every page")
        except AssertionError:
            for name, page in pages.items():
                page.screenshot(path=str(ARTIFACTS / f"crowd-{store}-{name}.png"))
            missing = {
                name: sorted(set(round_tokens.values()) - set(tokens_on(p))) for name, p in pages.items()
            }
            boxes = {name: p.get_by_placeholder("Send message").input_value() for name, p in pages.items()}
            raise AssertionError(f"round {round_number}: missing {missing}; boxes {boxes}") from None
        for name, page in pages.items():
            shown = tokens_on(page)
            doubled = {t for t in shown if shown.count(t) > 1}
            if doubled:
                page.screenshot(path=str(ARTIFACTS / f"crowd-{store}-doubled-{name}.png"), full_page=True)
                rows = page.locator(MESSAGE).evaluate_all(
                    "els => els.map(e => [e.innerText.replace(/\\s+/g, ' ').slice(0, 50),"
                    " e.closest('[data-stale]')?.getAttribute('data-stale'),"
                    " e.closest('[data-testid=\"stVerticalBlock\"]')?.parentElement?.className])"
                )
                (ARTIFACTS / f"crowd-{store}-doubled-{name}.txt").write_text("\n".join(map(str, rows)))
            assert not doubled, f"{name}'s page shows {sorted(doubled)} twice"
            assert page.get_by_placeholder("Send message").input_value() == "", f"{name}'s box kept its text"
    assert len(sent) >= 100
    pages["ann"].screenshot(path=str(ARTIFACTS / f"crowd-{store}-ann.png"))
    print(f"\n{len(sent)} messages from a crowd of {len(pages)}: every one shown once on every page")
    started = time.monotonic()
    wait_until(lambda: not busy_shown(pages["ben"]), 120, "the last reply to end")
    print(f"the last turn ended {time.monotonic() - started:.1f} s after the last round was shown")
