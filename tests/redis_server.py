"""A real Redis for tests and the bench: Debian's `redis-server` on a free loopback port in a temporary folder.

No config file from /etc: everything is on the command line. The data goes to an append-only file in the
folder (`--appendonly yes`, no RDB snapshots), so `restart()` on the same port keeps every key, as a
production Redis with AOF would; `kill()` is a crash (SIGKILL). `appendfsync` is `always` unless a test
asks for `everysec`, the other setting the README recommends.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from bench.server import free_port

REDIS_SERVER = "/usr/bin/redis-server"
START_TIMEOUT_SECONDS = 20.0
STOP_TIMEOUT_SECONDS = 10.0


class RedisMissing(RuntimeError):
    """There is no redis-server to start (apt-get install redis-server)."""


def redis_server_path() -> str | None:
    """Debian's redis-server, or one on PATH; None if there is none."""
    if Path(REDIS_SERVER).exists():
        return REDIS_SERVER
    return shutil.which("redis-server")


def _ping(port: int, timeout: float = 0.5) -> bool:
    """PING in the Redis protocol, without a client library: True once the server answers PONG."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """Use as `with RedisServer() as redis:`; point the app at `redis.url`.

    The port and the folder stay the same across `stop()`/`start()`/`restart()`, so a restarted server
    has the same address and (from its append-only file) the same data.
    """

    def __init__(self, *, folder: Path | None = None, port: int | None = None, appendfsync: str = "always"):
        executable = redis_server_path()
        if executable is None:
            raise RedisMissing("no redis-server here: apt-get install redis-server")
        self.executable = executable
        self._own_folder = folder is None
        self.folder = Path(folder or tempfile.mkdtemp(prefix="redis-test-"))
        self.port = port or free_port()
        self.appendfsync = appendfsync
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log_path = self.folder / "redis.log"
        self.process: subprocess.Popen | None = None

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> RedisServer:
        if self.running:
            return self
        command = [
            self.executable,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.folder),
            "--save",
            "",
            "--appendonly",
            "yes",
            # `always`: every write is on disk before the client is told it is stored. `everysec`: fsynced
            # once a second, but written to the file (the kernel's cache) before the reply, so a kill() of
            # redis-server loses none of it either (unless a slow disk made Redis put the write off, up to
            # 2 s); a machine that goes down loses up to the last second.
            "--appendfsync",
            self.appendfsync,
            "--daemonize",
            "no",
            "--logfile",
            str(self.log_path),
            "--protected-mode",
            "yes",
        ]
        self.process = subprocess.Popen(
            command, cwd=self.folder, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not _ping(self.port):
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}: {self.log()[-800:]}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"redis-server did not answer PING in {START_TIMEOUT_SECONDS:g} s")
            time.sleep(0.02)
        return self

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """A clean shutdown (SIGTERM: Redis finishes its append-only file first)."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """A crash: SIGKILL, nothing flushed beyond what `appendfsync always` already wrote."""
        self._end(signal.SIGKILL)

    def pause(self) -> None:
        """A hung server (SIGSTOP): connections stay open and nothing answers until `resume`."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def copy_files(self, to: Path) -> None:
        """Copy the append-only files as they are now (written, if not all fsynced) to the folder `to`."""
        shutil.copytree(self.folder / "appendonlydir", to)

    def crash_back_to(self, saved: Path) -> None:
        """Kill Redis and start it from `saved` (see `copy_files`): it comes back without the writes made
        since, as after a machine that went down before they were fsynced (or a lagging replica)."""
        self.kill()
        files = self.folder / "appendonlydir"
        shutil.rmtree(files)
        shutil.copytree(saved, files)
        self.start()

    def restart(self) -> None:
        """Stop and start again on the same port and folder: the same address, the same data."""
        self.stop()
        self.start()

    def _end(self, how: signal.Signals) -> None:
        if not self.running:
            return
        assert self.process is not None
        self.process.send_signal(how)
        try:
            self.process.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(STOP_TIMEOUT_SECONDS)
        # The port is free once the process is gone; nothing else can have taken it on loopback this fast.

    def close(self) -> None:
        """Stop it and remove the folder (if this object made it)."""
        self.kill()
        if self._own_folder:
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- reading it --------------------------------------------------------------------------------

    def client(self):
        """A redis-py client on this server (decoded strings)."""
        import redis

        return redis.Redis.from_url(self.url, decode_responses=True)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""
