"""End-to-end fixtures: `streamlit run app.py` on a free loopback port, and headless Debian Chromium.

Without a browser the tests skip and say why, except under CI=true, where that is a failure.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# One list of Chromium flags and one way to find the browser, shared with the benchmark.
from bench.browser import CHROMIUM_ARGS, chromium_path

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-results"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# How long a page may take to show what it should (a message, an answer, the box opening again) before a
# test fails. On an idle machine it is about a second; a 2-core machine shared with other work can starve
# the server, the browser and the test for many seconds. Waits poll, so a generous deadline costs nothing
# when things are fast, and a wait past SLOW_SECONDS is reported as a warning so slowness stays visible.
DEADLINE_SECONDS = 60
SLOW_SECONDS = 10


class SlowWait(UserWarning):
    """An end-to-end wait that succeeded, but only after SLOW_SECONDS."""


def wait_until(predicate: Callable[[], object], timeout: float, what: str) -> None:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() > start + timeout:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)
    if (took := time.monotonic() - start) > SLOW_SECONDS:
        warnings.warn(f"waited {took:.1f} s for {what}", SlowWait, stacklevel=2)


class AppServer:
    """One `streamlit run app.py` process with its own environment, in this project or a copy of it."""

    def __init__(self, env: dict[str, str], project: Path = ROOT):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log_path = ARTIFACTS / f"streamlit-{self.port}.log"
        ARTIFACTS.mkdir(exist_ok=True)
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "STREAMLIT_"))}
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamlit",
                "run",
                "app.py",
                "--server.port",
                str(self.port),
                "--server.address",
                "127.0.0.1",
                "--server.headless",
                "true",
            ],
            cwd=project,
            env={**clean, "WORD_DELAY_MS": "60", **env},
            stdout=self.log_path.open("w"),
            stderr=subprocess.STDOUT,
        )
        wait_until(self.healthy, DEADLINE_SECONDS, "the Streamlit server to start")

    def healthy(self) -> bool:
        assert self.process.poll() is None, f"streamlit exited; see {self.log_path}"
        try:
            with urllib.request.urlopen(self.url + "_stcore/health", timeout=1) as answer:
                return answer.status == 200
        except OSError:
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


@pytest.fixture(scope="session")
def chromium() -> Iterator[object]:
    path = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        path = None
    if path is None:
        reason = (
            "no Chromium or no playwright here: apt-get install chromium; pip install -r requirements-dev.txt"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def app_server() -> Iterator[Callable[..., AppServer]]:
    started: list[AppServer] = []

    def start(*, project: Path = ROOT, **env: str) -> AppServer:
        started.append(AppServer(env, project))
        return started[-1]

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def new_page(chromium) -> Iterator[Callable[[], object]]:
    contexts = []

    def open_page():
        context = chromium.new_context(viewport={"width": 1100, "height": 900})
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()
