"""The docs stay true to the code: every setting, its rules and its default in `.env.example` and the
README, and the numbers and claims the README makes about the code."""

import re
from pathlib import Path

import pytest

from shared.config import PARSERS, Settings

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("document", [".env.example", "README.md"])
def test_every_setting_is_documented(document):
    text = (ROOT / document).read_text(encoding="utf-8")
    named = set(re.findall(r"\b[A-Z][A-Z_]{3,}\b", text))
    assert set(PARSERS) <= named, f"{document} misses {sorted(set(PARSERS) - named)}"


def test_env_example_names_only_real_settings():
    text = (ROOT / ".env.example").read_text(encoding="utf-8")
    assert set(re.findall(r"^([A-Z_]+)=", text, re.MULTILINE)) == set(PARSERS)


# --- the settings' rules and defaults -------------------------------------------------------------


def readme_settings_rows() -> dict[str, tuple[str, str]]:
    """The README's settings table: variable -> (default as written, what it does)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([A-Z_]+)` \| ([^|]+) \| (.+) \|$", text, re.MULTILINE)
    return {name: (default.strip(), what) for name, default, what in rows if name in PARSERS}


def env_example_entries() -> dict[str, tuple[str, str]]:
    """`.env.example`: variable -> (value, the comment above it, shared by variables set together)."""
    lines = (ROOT / ".env.example").read_text(encoding="utf-8").splitlines()
    entries = {}
    for number, line in enumerate(lines):
        if not (match := re.match(r"^([A-Z_]+)=(.*)$", line)):
            continue
        comment, above = [], number - 1
        while above >= 0 and re.match(r"^[A-Z_]+=", lines[above]):
            above -= 1  # RATE_LIMIT_MESSAGES and RATE_LIMIT_SECONDS share one comment
        while above >= 0 and lines[above].startswith("#"):
            comment.insert(0, lines[above])
            above -= 1
        entries[match[1]] = (match[2], " ".join(comment))
    return entries


def documented_default(variable: str, written: str) -> object:
    if written in ("", "empty"):
        return {None, ""}
    if written == "built in":
        return {""}  # the instructions made from the assistant's name
    return {PARSERS[variable](written.strip("`"))}


@pytest.mark.parametrize("variable", list(PARSERS))
def test_readme_and_env_example_state_every_rule_a_value_must_meet(variable):
    _, what = readme_settings_rows()[variable]
    _, comment = env_example_entries()[variable]

    for rule in PARSERS[variable].rules:
        assert rule in what, f"README's row for {variable} does not say {rule!r}"
        assert rule in comment, f".env.example's comment for {variable} does not say {rule!r}"


@pytest.mark.parametrize("variable", list(PARSERS))
def test_documented_defaults_are_the_real_ones(variable):
    default = getattr(Settings(), variable.lower())
    readme_default, _ = readme_settings_rows()[variable]
    example_value, _ = env_example_entries()[variable]

    assert default in documented_default(variable, readme_default), f"README's default for {variable}"
    assert default in documented_default(variable, example_value), f".env.example's value for {variable}"


# --- numbers and claims in the README --------------------------------------------------------------


def test_readme_gives_the_live_pages_real_wait_slice():
    from shared.live import WAIT_SLICE_SECONDS

    assert f"The wait is cut into {WAIT_SLICE_SECONDS:g}-second slices" in README()


def test_readme_names_exactly_the_modules_that_import_streamlit():
    importers = {
        str(path.relative_to(ROOT))
        for path in (ROOT / "shared").rglob("*.py")
        if re.search(r"^\s*(import streamlit|from streamlit)", path.read_text(encoding="utf-8"), re.MULTILINE)
    }
    [claim] = re.findall(r"Only `shared/.*?import Streamlit", README())

    assert set(re.findall(r"`(shared/[\w/]+\.py)`", claim)) == importers
    assert "the page scripts import Streamlit" in claim


def test_readme_states_the_retry_policy_of_every_openai_call():
    from shared.assistant.openai import LOCKED_RETRY_DELAYS, RETRIES, Call

    rows = dict(
        re.findall(r"^\| `([^`]+)` \| (no|yes, \d+ times) \|", (ROOT / "README.md").read_text(), re.M)
    )
    assert rows == {call.value: f"yes, {RETRIES[call]} times" if RETRIES[call] else "no" for call in Call}
    assert f"waited out, {len(LOCKED_RETRY_DELAYS)} times" in README()


def README() -> str:  # noqa: N802  (reads like the document it returns)
    return " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
