"""The test Redis itself: it starts, keeps its data across a restart, and a kill is a crash."""

import redis


def test_redis_server_answers_on_its_own_loopback_port(redis_server):
    client = redis_server.client()
    assert client.ping()
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"
    assert client.config_get("save") == {"save": ""}
    assert client.config_get("appendonly") == {"appendonly": "yes"}
    assert client.config_get("dir")["dir"] == str(redis_server.folder)


def test_a_restart_keeps_the_data_and_the_address(redis_server):
    redis_server.client().set("chat:test", "kept")
    port = redis_server.port
    redis_server.restart()
    assert redis_server.port == port
    assert redis_server.client().get("chat:test") == "kept"


def test_a_killed_redis_refuses_connections_until_started_again(redis_server):
    client = redis_server.client()
    client.set("chat:test", "written before the crash")
    redis_server.kill()
    assert not redis_server.running
    try:
        redis_server.client().ping()
    except redis.ConnectionError:
        pass
    else:
        raise AssertionError("a killed Redis still answered")
    redis_server.start()
    assert client.get("chat:test") == "written before the crash"  # appendfsync always: on disk
