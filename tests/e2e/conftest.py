"""End-to-end fixtures: `streamlit run app.py` on a free loopback port (one, or several sharing a real
Redis), and headless Debian Chromium.

Without a browser the tests skip and say why, except under CI=true, where that is a failure.
"""

from __future__ import annotations

import os
import secrets
import signal
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
from bench.server import free_port  # noqa: F401  (tests import it from here)
from tests.openai_server import OpenAIServer

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-results"


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
    """One `streamlit run app.py` process with its own environment, in this project or a copy of it.

    `kill()` is a crash (SIGKILL), `stop()` a graceful stop (SIGTERM), `start()` starts it again on the
    same port with the same environment (its log goes on in the same file).
    """

    def __init__(self, env: dict[str, str], project: Path = ROOT, *, port: int | None = None):
        self.env = env
        self.project = project
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log_path = ARTIFACTS / f"streamlit-{self.port}.log"
        ARTIFACTS.mkdir(exist_ok=True)
        self.log_path.write_text("")
        self.process: subprocess.Popen
        self.start()

    def start(self) -> None:
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "STREAMLIT_", "REDIS_"))}
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
            cwd=self.project,
            # The assistant's notes request after each batch is off unless a test turns it on: the tests
            # of the OpenAI path count the requests of what each is about (test_room_notes.py turns it on).
            env={**clean, "WORD_DELAY_MS": "60", "ROOM_NOTES_BY_ASSISTANT": "off", **self.env},
            stdout=self.log_path.open("a"),
            stderr=subprocess.STDOUT,
        )
        wait_until(self.healthy, DEADLINE_SECONDS, "the Streamlit server to start")

    @property
    def pid(self) -> int:
        return self.process.pid

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
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def kill(self) -> None:
        """A crash: SIGKILL, no shutdown code runs."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def pause(self) -> None:
        """A hung process (SIGSTOP): its pages and its worker stand still until `resume`."""
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def restart(self) -> None:
        """A graceful restart on the same port, as a deploy does."""
        self.stop()
        self.start()


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
def redis_apps(redis_server, app_server) -> Callable[..., list[AppServer]]:
    """`redis_apps(2, **env)`: that many app processes sharing one Redis (the `redis_server` fixture's)
    and one `server.cookieSecret`, as a deployment behind a load balancer runs them."""

    def start(count: int = 2, **env: str) -> list[AppServer]:
        shared = {
            "REDIS_URL": redis_server.url,
            "STREAMLIT_SERVER_COOKIE_SECRET": secrets.token_hex(32),
            **env,
        }
        return [app_server(**shared) for _ in range(count)]

    return start


@pytest.fixture
def openai_server() -> Iterator[OpenAIServer]:
    """tests/openai_server.py on a free loopback port, for apps started with OPENAI_BASE_URL pointing to it."""
    with OpenAIServer() as server:
        yield server


def lease_holder(redis_server, servers: list[AppServer], room: str = "lobby") -> AppServer | None:
    """The app process whose reply worker holds the room's lease now (`"<fence> <hostname>:<pid>"`)."""
    value = redis_server.client().get(f"chat:room:{room}:lease")
    if not value:
        return None
    holder = value.split(" ", 1)[1]
    pid = int(holder.rsplit(":", 1)[1])
    return next((server for server in servers if server.pid == pid), None)


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
