"""Who this browser is: a signed, HttpOnly cookie set by the server, never a token in the address.

`BrowserCookie` is Starlette middleware (see `app.py`): a request without a valid cookie gets one in its
response, holding a random value signed with `server.cookieSecret`. Every tab of that browser then sends
it with the websocket handshake, where `st.context.cookies` reads it; another browser has none of its
own until it is given a new one, so it is a new person. Page scripts never see the raw value: the
participant id is an HMAC of it, so room data (and a transcript) holds nothing that opens a browser's
identity.

When the cookie does not arrive (the server runs without `app.py`'s middleware, or under AppTest), the
identity falls back to one kept in the browser session only: a reload then asks for a nickname again,
and nothing about who you are is ever in the address.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any

from itsdangerous import BadSignature, Signer

log = logging.getLogger(__name__)

COOKIE = "chatroom_browser"
COOKIE_MAX_AGE_SECONDS = 30 * 24 * 3600  # a month; every visit without it makes a new person
_SALT = "shared-chat-room.browser"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def cookie_secret() -> str:
    """`server.cookieSecret`: random per process unless set; set it alike on every process of one address."""
    import streamlit as st

    return st.get_option("server.cookieSecret")


def _signer(secret: str) -> Signer:
    return Signer(secret, salt=_SALT)


def new_cookie_value(secret: str) -> str:
    return _signer(secret).sign(secrets.token_urlsafe(24)).decode()


def browser_value(cookie: str | None, secret: str) -> str | None:
    """The random value inside a cookie this app signed, or None for a missing or forged one."""
    if not cookie:
        return None
    try:
        return _signer(secret).unsign(cookie).decode()
    except (BadSignature, UnicodeDecodeError):
        return None


def participant_id(value: str, secret: str) -> str:
    """The id a browser has in every room: derived from its cookie's value, never the value itself."""
    return hmac.new(secret.encode(), f"participant:{value}".encode(), hashlib.sha256).hexdigest()[:32]


def _request_cookie(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"cookie":
            jar = SimpleCookie()
            try:
                jar.load(value.decode("latin-1"))
            except Exception:  # a malformed Cookie header: treat it as no cookie
                return None
            if COOKIE in jar:
                return jar[COOKIE].value
    return None


def _secure(scope: Scope) -> bool:
    """Behind TLS, directly or through a proxy that says so, the cookie is sent over HTTPS only."""
    if scope.get("scheme") == "https":
        return True
    return any(
        n == b"x-forwarded-proto" and v.split(b",")[0].strip() == b"https" for n, v in scope["headers"]
    )


class BrowserCookie:
    """ASGI middleware: give every HTTP response to a browser without a valid cookie a fresh one."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        secret = cookie_secret()
        if browser_value(_request_cookie(scope), secret) is not None:
            await self.app(scope, receive, send)
            return
        attributes = f"Path=/; Max-Age={COOKIE_MAX_AGE_SECONDS}; HttpOnly; SameSite=Lax"
        if _secure(scope):
            attributes += "; Secure"
        header = f"{COOKIE}={new_cookie_value(secret)}; {attributes}".encode("latin-1")

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"set-cookie", header)]
            await send(message)

        await self.app(scope, receive, send_with_cookie)
