"""The docs stay true to the code: every setting, its rules and its default in `.env.example` and the
README, the numbers and claims the README and docs/ make about the code, and a README a newcomer can
start from."""

import ast
import json
import re
import subprocess
import sys
import tomllib
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


def test_the_readme_starts_with_the_two_commands():
    first_lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()[:40]

    assert "pip install -r requirements.txt && streamlit run app.py" in first_lines
    assert "pip install -r requirements-dev.txt && python -m pytest" in first_lines


def test_ci_runs_the_readmes_test_command_word_for_word():
    command = "pip install -r requirements-dev.txt && python -m pytest"

    assert command in (ROOT / ".ci" / "run").read_text().splitlines()
    assert command in (ROOT / "README.md").read_text().splitlines()


@pytest.mark.parametrize(
    "document", ["README.md", *(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))]
)
def test_documents_speak_to_their_reader_not_of_the_issues_that_made_them(document):
    text = (ROOT / document).read_text(encoding="utf-8")

    assert not re.search(r"\bissue \d+|\bthis round\b", text, re.IGNORECASE)


@pytest.mark.parametrize(
    "document", ["README.md", *(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))]
)
def test_every_local_link_leads_somewhere(document):
    path = ROOT / document
    targets = re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", path.read_text(encoding="utf-8"))

    assert targets
    assert [t for t in targets if not (path.parent / t).exists()] == []


def test_how_it_works_gives_the_live_pages_real_wait_slice():
    from shared.web.live import WAIT_SLICE_SECONDS

    assert f"The wait is cut into {WAIT_SLICE_SECONDS:g}-second slices" in HOW_IT_WORKS()


def streamlit_importers() -> set[Path]:
    """The modules of `shared/` that import streamlit (at the top or inside a function)."""
    return {
        path.relative_to(ROOT)
        for path in (ROOT / "shared").rglob("*.py")
        if re.search(r"^\s*(import streamlit|from streamlit)", path.read_text(encoding="utf-8"), re.MULTILINE)
    }


WEB = Path("shared/web")


def test_how_it_works_names_exactly_the_modules_that_import_streamlit():
    [claim] = re.findall(r"Only the web side `shared/web/`.*?import Streamlit", HOW_IT_WORKS(), re.DOTALL)
    outside_the_web_side = {str(p) for p in streamlit_importers() if WEB not in p.parents}

    assert set(re.findall(r"`(shared/[\w/]+\.py)`", claim)) == outside_the_web_side
    assert "the page scripts import Streamlit" in claim


def test_the_engine_package_names_exactly_the_modules_that_import_streamlit():
    import shared

    assert "`web/`" in shared.__doc__
    assert set(re.findall(r"`(\w+\.py)`", shared.__doc__)) == {
        p.name for p in streamlit_importers() if WEB not in p.parents
    }


def test_how_it_works_states_the_retry_policy_of_every_openai_call():
    from shared.assistant.openai import LOCKED_RETRY_DELAYS, RETRIES, Call

    rows = dict(re.findall(r"^\| `([^`]+)` \| (no|yes, \d+ times) \|", (ROOT / HOW).read_text(), re.M))
    assert rows == {call.value: f"yes, {RETRIES[call]} times" if RETRIES[call] else "no" for call in Call}
    assert f"waited out, {len(LOCKED_RETRY_DELAYS)} times" in HOW_IT_WORKS()


# --- what the app imports, requirements.txt names ----------------------------------------------------


def test_requirements_name_every_package_the_app_imports():
    import importlib.metadata

    sources = [ROOT / "app.py", *(ROOT / "pages").glob("*.py"), *(ROOT / "shared").rglob("*.py")]
    imported = {
        (node.module if isinstance(node, ast.ImportFrom) else alias.name).split(".")[0]
        for path in sources
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Import) or (isinstance(node, ast.ImportFrom) and node.level == 0)
        for alias in node.names
    }
    third_party = imported - set(sys.stdlib_module_names) - {"shared", "__future__"}
    distributions = importlib.metadata.packages_distributions()
    needed = {distributions[name][0].lower() for name in third_party}
    named = {
        re.split(r"[<>=!~\[; ]", line, maxsplit=1)[0].lower()
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }

    assert {"streamlit", "pillow", "pyicu-wheels"} <= needed
    assert needed <= named, f"requirements.txt does not name {sorted(needed - named)}"


# --- the table of promises: each row's number is how many test cases carry its marker -----------------

# Collects the whole suite (nothing runs) in a process of its own and writes, per `promise_*` marker, how
# many test cases carry it (each parametrized case counts).
COUNT_PROMISES = """
import collections, json, sys
import pytest

class Count:
    counts = collections.Counter()

    def pytest_collection_modifyitems(self, items):
        for item in items:
            for name in {m.name for m in item.iter_markers()}:
                if name.startswith("promise_"):
                    self.counts[name] += 1

code = pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", "tests"], plugins=[Count()])
json.dump({"exit": int(code), "counts": Count.counts}, open(sys.argv[1], "w"))
"""


def promise_markers() -> dict[str, str]:
    """pyproject.toml's `promise_*` markers: name -> the README row it stands for."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    markers = [m.split(": ", 1) for m in config["tool"]["pytest"]["ini_options"]["markers"]]
    return {name: row for name, row in markers if name.startswith("promise_")}


def readme_promises() -> dict[str, int]:
    """docs/testing.md's table of promises: row -> the number of test cases it says prove it."""
    text = (ROOT / "docs" / "testing.md").read_text(encoding="utf-8")
    table = text.split("| promise | cases |\n|---|---|\n", 1)[1].split("\n\n", 1)[0]
    return {row: int(cases) for row, cases in re.findall(r"^\| (.+) \| (\d+) \|$", table, re.MULTILINE)}


def test_every_promise_in_the_readme_has_its_marker_and_every_marker_its_row():
    rows, markers = readme_promises(), promise_markers()

    assert len(rows) == len(markers) >= 20
    assert sorted(rows) == sorted(markers.values()), "a README row and its marker in pyproject.toml differ"


def test_the_readme_counts_exactly_the_test_cases_that_carry_each_promise(tmp_path):
    counted = tmp_path / "counts.json"
    run = subprocess.run(
        [sys.executable, "-c", COUNT_PROMISES, str(counted)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert counted.exists(), run.stdout[-2000:] + run.stderr[-2000:]
    collection = json.loads(counted.read_text())
    assert collection["exit"] == 0, "the suite did not collect cleanly"
    rows = readme_promises()

    said = {name: rows.get(row) for name, row in promise_markers().items()}
    assert said == {name: collection["counts"].get(name, 0) for name in said}


def test_tests_save_their_screenshots_in_test_results_never_in_docs():
    # docs/ holds the README's pictures, changed on purpose; a test run must not rewrite tracked files.
    sources = " ".join(path.read_text(encoding="utf-8") for path in (ROOT / "tests").rglob("*.py"))
    saved_to = re.findall(r"\.screenshot\(([^)]*)", sources)

    assert len(saved_to) >= 20
    assert [where for where in saved_to if "ARTIFACTS" not in where] == []


HOW = "docs/how-it-works.md"


def HOW_IT_WORKS() -> str:  # noqa: N802  (reads like the document it returns)
    return " ".join((ROOT / HOW).read_text(encoding="utf-8").split())
