"""Debian's nginx running the shipped `deploy/nginx.conf`, as an ordinary user, for tests.

Only the ports and the paths change: the listening port, the two app processes' ports, and the pid file,
logs and temporary folders (moved into a temporary folder). Everything else is the file people copy.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from bench.server import free_port

NGINX = "/usr/sbin/nginx"
CONFIG = Path(__file__).resolve().parents[1] / "deploy" / "nginx.conf"
START_TIMEOUT_SECONDS = 20.0
# The shipped file's two app processes, in order.
SHIPPED_BACKENDS = ("127.0.0.1:8501", "127.0.0.1:8502")


class NginxMissing(RuntimeError):
    """There is no nginx to start (apt-get install nginx)."""


def nginx_path() -> str | None:
    if Path(NGINX).exists():
        return NGINX
    return shutil.which("nginx")


def rewritten(config: str, *, port: int, backends: tuple[int, int], folder: Path) -> str:
    """The shipped config with only its ports and paths changed; each must be there to be changed."""
    replacements = [
        ("listen 80;", f"listen 127.0.0.1:{port};"),
        *((shipped, f"127.0.0.1:{ours}") for shipped, ours in zip(SHIPPED_BACKENDS, backends, strict=True)),
        ("/run/nginx-chat.pid", str(folder / "nginx.pid")),
        ("/var/log/nginx/", f"{folder}/logs/"),
        ("/var/lib/nginx/", f"{folder}/temp/"),
    ]
    for shipped, ours in replacements:
        if shipped not in config:
            raise AssertionError(f"deploy/nginx.conf no longer has {shipped!r}: update tests/nginx_server.py")
        config = config.replace(shipped, ours)
    return config


class NginxServer:
    """`with NginxServer(backends=(port_a, port_b)) as nginx:` then browse `nginx.url`."""

    def __init__(self, backends: tuple[int, int], config: Path = CONFIG):
        executable = nginx_path()
        if executable is None:
            raise NginxMissing("no nginx here: apt-get install nginx")
        self.executable = executable
        self.folder = Path(tempfile.mkdtemp(prefix="nginx-test-"))
        for sub in ("logs", "temp"):
            (self.folder / sub).mkdir()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.config_path = self.folder / "nginx.conf"
        self.config_path.write_text(
            rewritten(config.read_text(), port=self.port, backends=backends, folder=self.folder)
        )
        self.process: subprocess.Popen | None = None

    def start(self) -> NginxServer:
        # -e: the log nginx writes before it has read the config (Debian's default is under /var/log).
        command = [
            self.executable,
            "-p",
            str(self.folder),
            "-c",
            str(self.config_path),
            "-e",
            str(self.folder / "logs" / "startup-error.log"),
            "-g",
            "daemon off;",
        ]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited with {self.process.returncode}: {self.errors()[-800:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"nginx did not listen within {START_TIMEOUT_SECONDS:g} s: {self.errors()}"
                )
            time.sleep(0.05)

    def errors(self) -> str:
        return "".join(
            path.read_text(errors="replace") for path in sorted((self.folder / "logs").glob("*error.log"))
        )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # SIGTERM: nginx's fast shutdown
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def __enter__(self) -> NginxServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)
