"""What a browser showing the app may load and talk to: the app's own address only (Content-Security-Policy).

`PagePolicy` is Starlette middleware (see `app.py`) that puts the header on every HTTP response. Whatever
slips through the app's own care (a picture in someone's Markdown, a page icon from a font service) is then
refused by the browser itself instead of telling a third party who reads the room.

What Streamlit's front end needs, read from its installed files: its scripts, styles, fonts and pictures
come from the app (`static/`, `/media/`); it injects `<style>` elements (emotion) and the app draws a few of
its own (`ANCHOR_STYLE`, `HIDE_RUNNING_INDICATOR`), so inline styles are allowed; its `index.html` has one
inline script, allowed by its hash, and so is the app's one (`SCROLL_TO_MESSAGE`); it talks to the server over `/_stcore/stream` (a websocket to the same
host, which `'self'` covers in today's browsers) and `/_stcore/...` HTTP; pictures drawn from bytes
(`st.image`, an SVG page icon, the emoji favicon) are `data:` or `blob:` addresses.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import re
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


# The app's own inline script, drawn by `shared/web/search.py` when someone chooses a search result: it
# scrolls to the message named by the element just before it (`<div data-scroll-to="m-ID">`) once the live
# page has drawn it, and back to it whenever the view leaves it: Streamlit's chat layout pulls the view to
# the bottom as the page grows (a new message, a reply being written). It lets go as soon as the person
# scrolls, types or clicks themselves, at their next rerun (the element goes), or after ten minutes. Its
# text never changes, so its hash allows it and nothing else.
SCROLL_TO_MESSAGE = (
    "(() => {"
    " const mark = document.currentScript.previousElementSibling;"
    " const id = mark?.dataset.scrollTo || '';"
    " if (!/^m-[0-9]+$/.test(id)) return;"
    " const until = Date.now() + 600000;"
    " let own = false;"
    " for (const kind of ['wheel', 'touchmove', 'keydown', 'pointerdown'])"
    " window.addEventListener(kind, () => { own = true; }, {once: true, capture: true});"
    " const done = () => own || !mark.isConnected || Date.now() > until;"
    " const keep = () => {"
    " const anchor = document.getElementById(id);"
    " if (!anchor) return;"
    " const top = anchor.getBoundingClientRect().top;"
    " if (top < 0 || top > window.innerHeight / 2) anchor.scrollIntoView({block: 'start'});"
    " };"
    " const onScroll = () => { if (done()) document.removeEventListener('scroll', onScroll, true); else keep(); };"
    " document.addEventListener('scroll', onScroll, true);"
    " const look = () => { if (!done()) { keep(); setTimeout(look, 150); } };"
    " look();"
    " })();"
)


def script_hash(script: str) -> str:
    """The CSP source expression that allows this inline script (its text exactly, hashed)."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"


def inline_script_hashes(index_html: str) -> list[str]:
    """CSP source expressions for each inline `<script>` of a page."""
    return [script_hash(s) for s in re.findall(r"<script>(.*?)</script>", index_html, flags=re.DOTALL)]


def streamlit_inline_scripts() -> list[str]:
    """The hashes of the inline scripts of the `index.html` the installed Streamlit serves."""
    # Found, not imported: this module runs in the server, not in a page (see `streamlit.file_util`).
    spec = importlib.util.find_spec("streamlit")
    assert spec is not None and spec.origin is not None, "Streamlit is installed"
    index = Path(spec.origin).parent / "static" / "index.html"
    return inline_script_hashes(index.read_text(encoding="utf-8"))


def content_security_policy(script_hashes: list[str]) -> str:
    directives = {
        "default-src": ["'self'"],
        "script-src": ["'self'", *script_hashes],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:", "blob:"],
        "font-src": ["'self'", "data:"],
        "media-src": ["'self'", "data:", "blob:"],
        "connect-src": ["'self'"],  # the websocket too: same host, ws: or wss: (CSP Level 3)
        "worker-src": ["'self'", "blob:"],
        "frame-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        # Nobody else's page may show the app in a frame (and trick a click out of someone), but
        # Streamlit Community Cloud's own pages, which show a deployed app inside one of theirs.
        "frame-ancestors": ["'self'", "https://*.streamlit.app", "https://share.streamlit.io"],
    }
    return "; ".join(f"{name} {' '.join(sources)}" for name, sources in directives.items())


class PagePolicy:
    """ASGI middleware: every HTTP response carries the app's Content-Security-Policy."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]):
        self.app = app
        self.header = (
            b"content-security-policy",
            content_security_policy([*streamlit_inline_scripts(), script_hash(SCROLL_TO_MESSAGE)]).encode(),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_policy(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0].lower() != self.header[0]]
                message["headers"] = [*headers, self.header]
            await send(message)

        await self.app(scope, receive, send_with_policy)
