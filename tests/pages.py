"""AppTest helpers: open the app as a browser session would, join, send, and read what the page shows.

Several `AppTest` instances in one process are several people in one room.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import shared.hub
import shared.web.live
from shared.assistant import Turn
from shared.assistant.offline import OfflineAssistant
from shared.config import Settings

APP = "../app.py"  # relative to this file


class GatedAssistant(OfflineAssistant):
    """The offline assistant, but each reply waits after its first word until the test opens the gate."""

    def __init__(self, settings: Settings):
        super().__init__(settings)
        self.gate = threading.Event()

    def reply(self, conversation: str, turn: Turn) -> Iterator[str]:
        for index, piece in enumerate(super().reply(conversation, turn)):
            if index == 1:
                self.gate.wait(10)
            yield piece


@pytest.fixture
def fresh_app(monkeypatch):
    """Every test starts with no hub and no rooms; a page's live run ends after 0.1 s so it can be read."""
    for variable in ("OPENAI_API_KEY", "OPENAI_ASSISTANT_ID"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("WORD_DELAY_MS", "0")
    monkeypatch.setattr(shared.web.live, "LIVE_RUN_SECONDS", 0.1)
    st.cache_resource.clear()
    yield
    st.cache_resource.clear()


@pytest.fixture
def gated(monkeypatch) -> list[GatedAssistant]:
    made: list[GatedAssistant] = []

    def make(settings: Settings) -> GatedAssistant:
        made.append(GatedAssistant(settings))
        return made[-1]

    monkeypatch.setattr(shared.hub, "make_assistant", make)
    yield made
    for assistant in made:
        assistant.gate.set()


def open_page(token: str | None = None, room: str | None = None) -> AppTest:
    """A new tab; with `token`, of the browser that has that identity (AppTest sends no cookie, so the
    identity the cookie would give is put where `membership.participant_token` keeps it)."""
    at = AppTest.from_file(APP, default_timeout=15)
    if token:
        at.session_state["token"] = token
    if room:
        at.query_params["room"] = room
    return at.run()


def join(nickname: str, at: AppTest | None = None, room: str | None = None) -> AppTest:
    at = at or open_page(room=room)
    next(t for t in at.text_input if t.label == "Nickname").input(nickname)
    next(b for b in at.button if b.label == "Join").click()
    return at.run()


def stream_off(at: AppTest) -> AppTest:
    return at.toggle(key="stream_replies").set_value(False).run()


def send(at: AppTest, text: str) -> AppTest:
    at.chat_input[0].set_value(text)
    return at.run()


def sidebar_people(at: AppTest) -> list[str]:
    listed = next((m.value for m in at.sidebar.markdown if m.value.startswith(":material/person:")), "")
    return listed.split("  \n") if listed else []


def conversation(at: AppTest) -> list[tuple[str, str]]:
    """(avatar name, text) per chat bubble, the text being the bubble's last Markdown."""
    return [(c.name, c.markdown[-1].value if c.markdown else "") for c in at.chat_message]


def unescape(markdown: str) -> str:
    return re.sub(r"\\(.)", r"\1", markdown)


def notices(at: AppTest) -> list[str]:
    return [unescape(c.value) for c in at.caption if c.value.startswith(":material/info:")]


def errors(at: AppTest) -> list[str]:
    """What each error says, as read (a refusal may be escaped: it can hold a nickname)."""
    return [unescape(e.value) for e in at.error]


def wait_until(at_predicate, deadline_seconds: float = 10) -> None:
    deadline = time.monotonic() + deadline_seconds
    while not at_predicate():
        assert time.monotonic() < deadline, "condition not met before the deadline"
        time.sleep(0.02)


def get_room(name: str = "lobby"):
    from shared.web.resources import get_hub

    return get_hub().room(name)


def button(at: AppTest, label: str):
    return next(b for b in [*at.button, *at.sidebar.button] if b.label == label)
