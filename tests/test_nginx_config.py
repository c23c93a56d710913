"""The shipped deploy/nginx.conf, run by Debian's nginx in front of two small servers that say who they
are: it proxies, keeps each browser on one server (the affinity cookie), spreads new browsers over both,
and passes the websocket upgrade on `/_stcore/stream`. The same file runs before two real app processes
in tests/e2e/test_redis.py."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from http import HTTPStatus

import pytest
from websockets.sync.client import connect
from websockets.sync.server import serve

from tests.nginx_server import CONFIG


class NamedServer:
    """Answers any HTTP request with its name, and echoes websocket messages prefixed with it."""

    def __init__(self, name: str):
        self.name = name

        def echo(connection) -> None:
            for message in connection:
                connection.send(f"{name}: {message}")

        def plain_http(connection, request):
            if request.headers.get("Upgrade", "").lower() != "websocket":
                return connection.respond(HTTPStatus.OK, f"{name}\n")
            return None

        self._server = serve(echo, "127.0.0.1", 0, process_request=plain_http)
        self.port = self._server.socket.getsockname()[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()


@pytest.fixture
def two_servers() -> Iterator[tuple[NamedServer, NamedServer]]:
    servers = NamedServer("A"), NamedServer("B")
    yield servers
    for server in servers:
        server.close()


def get(port: int, cookie: str | None = None) -> tuple[str, str | None]:
    """GET / through nginx: (the server that answered, the affinity cookie nginx set)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", "/", headers={"Cookie": f"chat_affinity={cookie}"} if cookie else {})
    answer = connection.getresponse()
    body = answer.read().decode().strip()
    connection.close()
    assert answer.status == 200, body
    set_cookie = answer.getheader("Set-Cookie") or ""
    value = set_cookie.split(";")[0].removeprefix("chat_affinity=") or None
    return body, value


def test_a_browser_stays_on_one_server_and_new_browsers_use_both(nginx_in_front, two_servers):
    nginx = nginx_in_front(two_servers[0].port, two_servers[1].port)

    first, cookie = get(nginx.port)
    assert cookie, "nginx gives a new browser its affinity cookie"
    assert {get(nginx.port, cookie) for _ in range(10)} == {(first, cookie)}

    # Twenty new browsers land on both servers (all on one: a 1 in 500,000 chance with a fair hash).
    assert {get(nginx.port)[0] for _ in range(20)} == {"A", "B"}


def test_the_websocket_upgrade_passes_and_follows_the_cookie(nginx_in_front, two_servers):
    nginx = nginx_in_front(two_servers[0].port, two_servers[1].port)
    server, cookie = get(nginx.port)

    with connect(
        f"ws://127.0.0.1:{nginx.port}/_stcore/stream",
        additional_headers={"Cookie": f"chat_affinity={cookie}"},
        open_timeout=10,
    ) as websocket:
        websocket.send("hello")
        assert websocket.recv(timeout=10) == f"{server}: hello"
    assert "[emerg]" not in nginx.errors()


def test_the_shipped_file_keeps_idle_pages_connected():
    text = CONFIG.read_text()
    stream = text[text.index("location /_stcore/stream") :]
    assert "proxy_read_timeout 1d;" in stream and "proxy_buffering off;" in stream
