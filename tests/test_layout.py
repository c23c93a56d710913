"""A reading test: a newcomer finds from the file names alone where a message is drawn, where the sidebar
is drawn and where the session's keys are defined; no module of the page side is too long to read in one
sitting; and every `st.session_state` key the app or its tests use is named in one place."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WEB = ROOT / "shared" / "web"
# The page side: the page scripts, and every module of the app that imports Streamlit when it loads.
PAGE_SIDE = [
    ROOT / "app.py",
    *sorted((ROOT / "pages").glob("*.py")),
    *sorted(
        p
        for p in (ROOT / "shared").rglob("*.py")
        if re.search(r"^(import streamlit|from streamlit)", p.read_text(encoding="utf-8"), re.MULTILINE)
    ),
]
MOST_LINES = 250


@pytest.mark.parametrize(
    ("file", "what"),
    [
        ("messages.py", r"^def redraw\("),  # where a message is drawn
        ("conversation.py", r"^class Conversation\b"),  # where the list of messages is drawn
        ("sidebar.py", r"^def sidebar\("),  # where the sidebar is drawn
        ("status_line.py", r"^class StatusLine\b"),  # the replying line and Stop
        ("join_form.py", r"^def join_form\("),
        ("routing.py", r"^def app_navigation\("),
        ("live.py", r"^class LivePage\b"),
        ("session.py", r"^class Session\b"),  # where the session's keys are defined
    ],
)
def test_each_part_of_the_page_has_a_module_named_for_it(file, what):
    path = WEB / file
    assert path.exists(), f"shared/web/{file} is missing"
    assert re.search(what, path.read_text(encoding="utf-8"), re.MULTILINE), f"{file} does not hold {what}"


@pytest.mark.parametrize("path", PAGE_SIDE, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_of_the_page_side_is_too_long_to_read_in_one_sitting(path):
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MOST_LINES, f"{path.relative_to(ROOT)} has {lines} lines"


def app_sources() -> dict[Path, str]:
    files = [ROOT / "app.py", *(ROOT / "pages").glob("*.py"), *(ROOT / "shared").rglob("*.py")]
    return {p.relative_to(ROOT): p.read_text(encoding="utf-8") for p in files}


def test_only_the_session_module_touches_streamlits_session_state():
    touching = {str(p) for p, text in app_sources().items() if re.search(r"session_state\s*[.\[]", text)}
    assert touching == {"shared/web/session.py"}


def test_every_session_key_used_anywhere_is_named_in_the_session_object():
    from shared.web.session import Session

    named = Session.keys()
    used: set[str] = set()
    for path, text in app_sources().items():
        if path.name != "session.py":  # the app reads and writes its keys as `session.<key>`
            used |= set(
                re.findall(
                    r"\bsession\.(?!take\b|keys\b|py\b|widget\b|set_widget\b|forget_widget\b)(\w+)", text
                )
            )
        used |= {k for k, _ in re.findall(r"""\bkey=f?["']([\w-]+?)(\{|["'])""", text)}
    for path in (ROOT / "tests").rglob("*.py"):  # the tests read some, as the app keeps them
        used |= set(re.findall(r"""session_state\[["'](\w+)["']\]""", path.read_text(encoding="utf-8")))
        used |= set(re.findall(r"""\(key=["']([\w-]+)["']\)""", path.read_text(encoding="utf-8")))
    assert used, "the grep found no keys at all"
    assert used - named == set(), "keys used but not named in shared/web/session.py"


def test_the_wait_between_touches_of_the_session_is_written_once():
    """Touching the session between slices of a wait is where Streamlit stops a replaced run: one loop."""
    writers = [str(p) for p, text in app_sources().items() if re.search(r"session\.live_beat\s*=", text)]
    assert writers == ["shared/web/session.py"]


def test_the_slots_are_streamlits_delta_generators():
    """The page side names the type of `st.empty()` in its type hints (docs/how-it-works.md: private Streamlit)."""
    import streamlit as st
    from streamlit.delta_generator import DeltaGenerator

    assert isinstance(st.empty(), DeltaGenerator) and isinstance(st.container(), DeltaGenerator)


def test_how_it_works_and_the_packages_docstring_name_every_module_of_the_web_side():
    import shared.web

    [row] = [
        line
        for line in (ROOT / "docs" / "how-it-works.md").read_text(encoding="utf-8").splitlines()
        if line.startswith("| `shared/web/` |")
    ]
    modules = {p.name for p in WEB.glob("*.py") if p.name != "__init__.py"}
    assert modules == set(re.findall(r"`(\w+\.py)`", row))
    assert modules == set(re.findall(r"`(\w+\.py)`", shared.web.__doc__))
