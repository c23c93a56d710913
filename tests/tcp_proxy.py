"""A TCP proxy on a free loopback port in front of one local server (Redis, or an app process for a page's
network), with faults the test turns on.

- `cut_after(*tokens)`: the next chunk a client sends that holds every one of `tokens` (b"EXEC"; or
  b"EXEC", b'"status":"streaming"' for a transaction that grows a reply) goes to the server, the
  server's answer is read and thrown away, and the connection is closed: the command took effect, its
  reply was lost. What a client does then (send it again?) is what the test is about. The answers thrown
  away are kept in `lost`, so a test can show the cut hit the command it meant (an integer, not the
  `-NOSCRIPT` error a script's first call gets on a fresh Redis).
- `black_hole()` / `restore()`: nothing goes through either way, connections stay open (a hung network).
- `drop_all()`: every open connection is closed now; new ones are accepted.
- `delay(seconds)`: every chunk waits this long before it is passed on.

Only loopback addresses: the proxy listens on 127.0.0.1 and connects to 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

from bench.server import free_port


class _Connection:
    def __init__(self, client: socket.socket, server: socket.socket):
        self.client, self.server = client, server
        self.cutting = threading.Event()  # the next answer from the server is thrown away, then closed

    def close(self) -> None:
        for sock in (self.client, self.server):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()


class TcpProxy:
    def __init__(self, target_port: int, *, port: int | None = None):
        self.target_port = target_port
        self.port = port or free_port()
        self.cuts = 0  # how many connections were cut after a command
        self.lost: list[bytes] = []  # the server's answers thrown away by those cuts, in order
        self.accepted = 0  # connections accepted so far (a client that reconnects makes a new one)
        self._cut_tokens: tuple[bytes, ...] = ()
        self._open = threading.Event()
        self._open.set()
        self._delay = 0.0
        self._lock = threading.Lock()
        self._connections: list[_Connection] = []
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._stopped = threading.Event()
        threading.Thread(target=self._accept, name="tcp-proxy", daemon=True).start()

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    # --- faults ----------------------------------------------------------------------------------

    def cut_after(self, *tokens: bytes) -> None:
        assert tokens, "a cut needs something to recognise the command by"
        with self._lock:
            self._cut_tokens = tokens

    def black_hole(self) -> None:
        self._open.clear()

    def restore(self) -> None:
        self._delay = 0.0
        self._open.set()

    def delay(self, seconds: float) -> None:
        self._delay = seconds

    def drop_all(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            connection.close()

    # --- the proxy -------------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.target_port), timeout=3)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            connection = _Connection(client, server)
            with self._lock:
                self._connections.append(connection)
                self.accepted += 1
            for source, to_server in ((client, True), (server, False)):
                threading.Thread(
                    target=self._pump,
                    args=(connection, source, to_server),
                    name="tcp-proxy-pump",
                    daemon=True,
                ).start()

    def _pump(self, connection: _Connection, source: socket.socket, to_server: bool) -> None:
        target = connection.server if to_server else connection.client
        try:
            while True:
                chunk = source.recv(65536)
                if not chunk:
                    break
                while not self._open.is_set():  # a black hole holds everything, for ever if need be
                    if self._stopped.wait(0.05):
                        return
                if self._delay:
                    time.sleep(self._delay)
                if to_server:
                    with self._lock:
                        if self._cut_tokens and all(token in chunk for token in self._cut_tokens):
                            self._cut_tokens = ()
                            connection.cutting.set()
                    target.sendall(chunk)
                elif connection.cutting.is_set():  # the command's answer: lost on the way back
                    self.lost.append(chunk)
                    self.cuts += 1
                    break
                else:
                    target.sendall(chunk)
        except OSError:
            pass
        connection.close()

    def close(self) -> None:
        self._stopped.set()
        self._open.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        self.drop_all()

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
