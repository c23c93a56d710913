"""The identity cookie: set by the server, signed, HttpOnly and SameSite=Lax; forged or missing values
make a new person; the participant id never is the cookie's value."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from shared import identity


@pytest.fixture
def client() -> TestClient:
    app = Starlette(
        routes=[Route("/", lambda request: PlainTextResponse("page"))],
        middleware=[Middleware(identity.BrowserCookie)],
    )
    return TestClient(app, base_url="http://testserver")


def set_cookie_header(response) -> str:
    [header] = [v for k, v in response.headers.multi_items() if k == "set-cookie"]
    return header


@pytest.mark.promise_identity
def test_a_browser_without_the_cookie_gets_a_signed_httponly_lax_one(client):
    header = set_cookie_header(client.get("/"))
    assert header.startswith(f"{identity.COOKIE}=")
    assert "HttpOnly" in header and "SameSite=Lax" in header and "Path=/" in header
    assert "Secure" not in header, "plain HTTP: a Secure cookie would never come back"
    value = header.split(";")[0].split("=", 1)[1]
    assert identity.browser_value(value, identity.cookie_secret())


@pytest.mark.promise_identity
def test_a_browser_with_a_valid_cookie_keeps_it(client):
    client.get("/")
    assert "set-cookie" not in client.get("/").headers


@pytest.mark.promise_identity
def test_a_forged_or_unsigned_cookie_is_replaced(client):
    secret = identity.cookie_secret()
    good = identity.new_cookie_value(secret)
    for forged in ("anything", good[:-2] + "xx", identity.new_cookie_value("another secret")):
        client.cookies.clear()
        client.cookies.set(identity.COOKIE, forged)
        header = set_cookie_header(client.get("/"))
        assert forged not in header
        assert identity.browser_value(forged, secret) is None


@pytest.mark.promise_identity
def test_behind_tls_the_cookie_is_secure(client):
    header = set_cookie_header(client.get("/", headers={"x-forwarded-proto": "https"}))
    assert "Secure" in header


@pytest.mark.promise_identity
def test_the_participant_id_is_derived_and_differs_per_browser_and_secret():
    one, two = identity.new_cookie_value("s"), identity.new_cookie_value("s")
    first, second = identity.browser_value(one, "s"), identity.browser_value(two, "s")
    assert first != second
    pid = identity.participant_id(first, "s")
    assert pid == identity.participant_id(first, "s") and len(pid) == 32
    assert first not in pid and pid != identity.participant_id(second, "s")
    assert pid != identity.participant_id(first, "another secret")
