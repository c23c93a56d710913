"""Fixtures shared by the suites: the AppTest helpers (see tests/pages.py), a real Redis and nginx."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

from tests.nginx_server import NginxMissing, NginxServer
from tests.pages import fresh_app, gated  # noqa: F401  (pytest finds fixtures by name)
from tests.redis_server import RedisMissing, RedisServer
from tests.rooms import assistant, clock, make_room, room, store  # noqa: F401  (a real room on both stores)


def missing_part(reason: str) -> None:
    """A real part the test needs is not installed: skip and say why, except under CI=true (a failure)."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
def redis_server(request) -> Iterator[RedisServer]:
    """Debian's redis-server on a free loopback port in its own temporary folder, stopped afterwards.

    A test may pass it options (`RedisServer`'s keywords) with
    `@pytest.mark.parametrize("redis_server", [{"appendfsync": "everysec"}], indirect=True)`."""
    try:
        server = RedisServer(**getattr(request, "param", {}))
    except RedisMissing as missing:
        missing_part(str(missing))
    with server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url


@pytest.fixture
def nginx_in_front() -> Iterator[Callable[[int, int], NginxServer]]:
    """`nginx_in_front(port_a, port_b)`: Debian's nginx with deploy/nginx.conf before two local servers."""
    started: list[NginxServer] = []

    def start(port_a: int, port_b: int) -> NginxServer:
        try:
            server = NginxServer(backends=(port_a, port_b))
        except NginxMissing as missing:
            missing_part(str(missing))
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.__exit__(None, None, None)


class SharedRedis:
    """One redis-server for a whole test session; each test takes a database of its own, emptied."""

    def __init__(self, server: RedisServer):
        self.server = server

    def fresh_url(self) -> str:
        import redis

        url = f"redis://127.0.0.1:{self.server.port}/1"
        with redis.Redis.from_url(url) as client:
            client.flushdb()
        return url


@pytest.fixture(scope="session")
def shared_redis() -> Iterator[SharedRedis]:
    try:
        server = RedisServer()
    except RedisMissing as missing:
        missing_part(str(missing))
    with server:
        yield SharedRedis(server)
