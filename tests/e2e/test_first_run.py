"""A first run as the README tells it, in real Chromium against `streamlit run` on a fresh server.

A first visit to any page shows the app's own navigation; `.env` copied from `.env.example` with a key
added reaches OpenAI itself; a real environment variable beats `.env`, which beats secrets; a bad
setting says what it takes to fix it. No test here calls the network: joining is what opens a
conversation, and these pages are only looked at.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import ARTIFACTS, DEADLINE_SECONDS, ROOT, wait_until

pytestmark = pytest.mark.e2e

OWN_NAVIGATION = ["Chat room", "This room", "Rooms", "About"]
FAKE_KEY = "sk-first-run-not-a-real-key-0123456789"


def project_copy(tmp_path: Path) -> Path:
    """The project as someone who just cloned it has it: no `.env`, no secrets."""
    copy = tmp_path / "project"
    for name in ("app.py", ".env.example"):
        copy.mkdir(exist_ok=True)
        shutil.copy(ROOT / name, copy / name)
    for folder in ("pages", "shared"):
        shutil.copytree(ROOT / folder, copy / folder, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / ".streamlit").mkdir()
    shutil.copy(ROOT / ".streamlit" / "config.toml", copy / ".streamlit" / "config.toml")
    return copy


def navigation_links(page) -> list[str]:
    # A link's text is its icon's name, then its label.
    return [
        t.split("\n")[-1].strip() for t in page.locator('[data-testid="stSidebarNav"] a').all_inner_texts()
    ]


def first_visit(page, url: str, title: str, last: str) -> None:
    """Open `url` and wait until it shows `title` to `last` under the app's own navigation."""
    page.goto(url)
    page.get_by_role("heading", name=title).first.wait_for(timeout=DEADLINE_SECONDS * 1000)
    page.get_by_text(last).first.wait_for(timeout=DEADLINE_SECONDS * 1000)
    wait_until(
        lambda: navigation_links(page) == OWN_NAVIGATION,
        DEADLINE_SECONDS,
        f"the app's own navigation on {url} (showing {navigation_links(page)})",
    )


def open_about(page, url: str) -> None:
    """The About page, reached after the chat page: these tests are about settings, not first visits."""
    first_visit(page, url, "Shared chat room", "Pick a nickname")
    first_visit(page, url + "about", "About", "ASSISTANT_INSTRUCTIONS")


def about_settings(page) -> dict[str, str]:
    """The About page's table of settings in effect, setting -> value as shown."""
    rows = page.locator('[data-testid="stTable"] tbody tr')
    wait_until(lambda: rows.count() > 0, DEADLINE_SECONDS, "the settings table")
    shown = {}
    for row in rows.all():
        cells = [c.strip() for c in row.locator("th, td").all_inner_texts()]
        shown[cells[-2]] = cells[-1]
    return shown


@pytest.mark.parametrize(
    ("path", "title", "last"),
    [
        ("", "Shared chat room", "Pick a nickname"),
        ("room", "Room lobby", "Nobody is in this room yet"),  # looking opens no room
        ("rooms", "Rooms", "Open room"),
        ("about", "About", "ASSISTANT_INSTRUCTIONS"),
    ],
)
def test_a_first_visit_to_any_page_shows_the_apps_own_navigation(app_server, new_page, path, title, last):
    server = app_server()  # fresh: no session has run app.py yet
    page = new_page()

    first_visit(page, server.url + path, title, last)

    assert "app" not in [link.lower() for link in navigation_links(page)]
    page.screenshot(path=str(ARTIFACTS / f"first-visit-{path or 'chat'}.png"), full_page=True)


def test_the_readme_path_with_a_key_in_env_reaches_openai_itself(app_server, new_page, tmp_path):
    project = project_copy(tmp_path)
    example = (project / ".env.example").read_text(encoding="utf-8")
    assert "\nOPENAI_API_KEY=\n" in example and "\nOPENAI_BASE_URL=\n" in example
    (project / ".env").write_text(example.replace("\nOPENAI_API_KEY=\n", f"\nOPENAI_API_KEY={FAKE_KEY}\n"))

    server = app_server(project=project)
    page = new_page()
    open_about(page, server.url)
    assert (
        "CatGPT · OpenAI · gpt-6.1-terra" in page.locator('[data-testid="stMainBlockContainer"]').inner_text()
    )
    assert about_settings(page)["OPENAI_API_KEY"] == "set (hidden)"

    # The client the app makes, made the same way in the copy: making it sends no request.
    client_url = subprocess.run(
        [
            sys.executable,
            "-c",
            "from shared.config import load_settings; from shared.assistant import make_assistant; "
            "print(make_assistant(load_settings())._client.base_url)",
        ],
        cwd=project,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert client_url == "https://api.openai.com/v1/"
    assert FAKE_KEY not in page.content()


def test_environment_beats_env_file_which_beats_secrets(app_server, new_page, tmp_path):
    project = project_copy(tmp_path)
    (project / ".env").write_text("ASSISTANT_NAME=FromDotenv\nMAX_PARTICIPANTS=22\n")
    (project / ".streamlit" / "secrets.toml").write_text(
        'ASSISTANT_NAME = "FromSecrets"\nMAX_PARTICIPANTS = 33\nMAX_MESSAGE_CHARS = 333\n'
    )

    server = app_server(project=project, ASSISTANT_NAME="FromEnvironment")
    page = new_page()
    open_about(page, server.url)
    shown = about_settings(page)

    assert shown["ASSISTANT_NAME"] == "FromEnvironment"  # all three set it
    assert shown["MAX_PARTICIPANTS"] == "22"  # `.env` and secrets
    assert shown["MAX_MESSAGE_CHARS"] == "333"  # secrets alone


def test_a_bad_setting_says_it_takes_a_restart(app_server, new_page):
    server = app_server(RATE_LIMIT_SECONDS="soon", OPENAI_BASE_URL="http://")
    page = new_page()
    page.goto(server.url)
    main = page.locator('[data-testid="stMainBlockContainer"]')
    wait_until(lambda: "restart the app" in main.inner_text(), DEADLINE_SECONDS, "the settings error page")
    text = main.inner_text()

    assert "RATE_LIMIT_SECONDS must be" in text and "OPENAI_BASE_URL must be" in text
    assert "restart the app" in text and "Reboot app" in text
    assert "reload the page" not in text
    page.screenshot(path=str(ARTIFACTS / "bad-setting.png"), full_page=True)
