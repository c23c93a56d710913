"""The app under test: a fresh `streamlit run app.py` per measurement, and what it costs (CPU, memory).

The server can be pinned to one core, so "per core" numbers mean one core and the clients never share it.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import logging
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 10.0


APP_PATHS = ("app.py", "pages", "shared", ".streamlit", "requirements.txt")
# The code that measures (not the report, which only formats): the same hash means measured alike.
MEASURING = ("bare", "browser", "emulator", "model", "run", "scenario", "server")


def bench_version() -> str:
    """A hash of the measuring code in bench/ as it is on disk, whatever the commit.

    Only bench/ files: a change to the tests' helpers (the model server) must not make two runs of the
    same bench look different."""
    digest = hashlib.sha1()
    for path in [ROOT / "bench" / f"{name}.py" for name in MEASURING]:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


def app_version() -> str | None:
    """The last commit that changed the app, plus a hash of any uncommitted change to it: what a run
    measured. A commit that only touched the bench, tests or docs leaves it as it was."""

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True).stdout

    commit = git("log", "-1", "--format=%h", "--", *APP_PATHS).strip()
    if not commit:
        return None
    changes = git("diff", "HEAD", "--", *APP_PATHS)
    return commit + (f"+{hashlib.sha1(changes.encode()).hexdigest()[:8]}" if changes else "")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# Read once: the bench pins itself to the client cores later, and must still know them all.
try:
    ALL_CORES: tuple[int, ...] = tuple(sorted(os.sched_getaffinity(0)))
except AttributeError:  # not Linux: no pinning
    ALL_CORES = ()


def split_cores() -> tuple[set[int] | None, set[int] | None]:
    """One core for the server, the rest for the clients; (None, None) when there is only one."""
    if len(ALL_CORES) < 2:
        return None, None
    return {ALL_CORES[0]}, set(ALL_CORES[1:])


@contextlib.contextmanager
def clients_pinned(pin: bool = True) -> Iterator[None]:
    """Keep this process, and every process it starts meanwhile (Chromium), off the server's core."""
    _, client_cores = split_cores()
    with clients_on(client_cores if pin else None):
        yield


@contextlib.contextmanager
def clients_on(cores: Iterable[int] | None) -> Iterator[None]:
    """Run this process, and every process and thread it starts meanwhile, on `cores` (None: as it is)."""
    if not cores:
        yield
        return
    me = psutil.Process()
    before = me.cpu_affinity()
    me.cpu_affinity(sorted(cores))
    try:
        yield
    finally:
        me.cpu_affinity(before)


_running: set[AppServer] = set()


@atexit.register
def _stop_all() -> None:
    """No server outlives the bench, even one interrupted mid-run."""
    for server in list(_running):
        server.stop()


@dataclass(frozen=True)
class Usage:
    """The server's cumulative CPU time and its memory at one moment."""

    at: float  # time.monotonic()
    cpu_seconds: float  # user + system, all threads
    rss_bytes: int
    threads: int


class AppServer:
    """One `streamlit run app.py` on a free loopback port, with its own environment and log file."""

    def __init__(
        self,
        env: dict[str, str],
        log_path: Path,
        *,
        cores: set[int] | None = None,
        options: tuple[str, ...] = (),
    ):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        # Only what we set reaches the app: no stray OPENAI_* or STREAMLIT_* from the caller's shell.
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "STREAMLIT_"))}
        command = self._command(options)
        self._log_file = log_path.open("w")
        self.process = subprocess.Popen(
            command, cwd=ROOT, env={**clean, **env}, stdout=self._log_file, stderr=subprocess.STDOUT
        )
        _running.add(self)
        self._ps = psutil.Process(self.process.pid)
        if cores:
            self._ps.cpu_affinity(sorted(cores))
        self._wait_healthy()
        log.info("%s on port %s (pid %s, cores %s)", command[2], self.port, self.process.pid, cores or "any")

    def _command(self, options: tuple[str, ...]) -> list[str]:
        command = [
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
            # A production server watches no files; the watcher's polling would count as idle CPU.
            "--server.fileWatcherType",
            "none",
            "--browser.gatherUsageStats",
            "false",
        ]
        for option in options:  # "section.name=value" -> --section.name value
            name, _, value = option.partition("=")
            command += [f"--{name}", value]
        return command

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"streamlit exited with {self.process.returncode}; see {self.log_path}")
            try:
                with urllib.request.urlopen(self.url + "_stcore/health", timeout=1) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(
            f"streamlit did not answer within {START_TIMEOUT_SECONDS:g} s; see {self.log_path}"
        )

    def usage(self) -> Usage:
        with self._ps.oneshot():
            times = self._ps.cpu_times()
            return Usage(
                time.monotonic(),
                times.user + times.system,
                self._ps.memory_info().rss,
                self._ps.num_threads(),
            )

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """Stop the server; kill it if it does not stop in time (an overloaded one may not)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                log.warning(
                    "streamlit on port %s did not stop in %g s; killing it", self.port, STOP_TIMEOUT_SECONDS
                )
                self.process.kill()
                self.process.wait(STOP_TIMEOUT_SECONDS)
        self._log_file.close()
        _running.discard(self)


class BareServer(AppServer):
    """The bare reference (bench/bare.py): the same room from a tiny websocket server of the bench's
    own, started, pinned and measured like the app. Streamlit options do not apply to it."""

    def _command(self, options: tuple[str, ...]) -> list[str]:
        return [sys.executable, "-m", "bench.bare", "--port", str(self.port)]


class AppServers:
    """Several app processes sharing their rooms through one Redis, measured as one server: their CPU and
    memory summed. `url` is the first one's; sessions are spread over `urls`."""

    def __init__(self, servers: list[AppServer]):
        self.servers = servers
        self.urls = [s.url for s in servers]
        self.url = self.urls[0]
        self.pids = [s.process.pid for s in servers]

    def usage(self) -> Usage:
        each = [s.usage() for s in self.servers]
        return Usage(
            max(u.at for u in each),
            sum(u.cpu_seconds for u in each),
            sum(u.rss_bytes for u in each),
            sum(u.threads for u in each),
        )

    def log_text(self) -> str:
        return "".join(s.log_text() for s in self.servers)

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


class RedisWatch:
    """The bench's own Redis (tests/redis_server.py: Debian's redis-server on a free port, in a temporary
    folder), and what it did: commands by name from `INFO commandstats`, and its CPU."""

    def __init__(self) -> None:
        from tests.redis_server import RedisServer

        self.server = RedisServer().start()
        self.url = self.server.url
        self._client = self.server.client()
        self._ps = psutil.Process(self.server.process.pid)

    def commands(self) -> dict[str, int]:
        """Calls so far per command, leaving out the bench's own INFO."""
        stats = self._client.info("commandstats")
        return {
            name.removeprefix("cmdstat_"): int(values["calls"])
            for name, values in stats.items()
            if name != "cmdstat_info"
        }

    def cpu_seconds(self) -> float:
        times = self._ps.cpu_times()
        return times.user + times.system

    def stop(self) -> None:
        self._client.close()
        self.server.close()


def command_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """Commands run between two `RedisWatch.commands()` readings, busiest first."""
    delta = {name: after.get(name, 0) - before.get(name, 0) for name in after}
    return dict(sorted(((n, c) for n, c in delta.items() if c > 0), key=lambda item: -item[1]))


def cpu_between(first: Usage, last: Usage) -> float:
    """CPU milliseconds the server spent per second of wall time between two readings."""
    return 1000 * (last.cpu_seconds - first.cpu_seconds) / max(last.at - first.at, 1e-9)
