"""An emulated browser tab: the websocket protocol a Streamlit page speaks, without a browser.

Owns one session's connection, the widgets it was shown, the timers a browser would run, and when each
text first arrived. It sends what Chromium sends (captured from a real page) and parses every ForwardMsg.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import re
import time
from dataclasses import dataclass, field

from streamlit.proto.Alert_pb2 import Alert
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.Markdown_pb2 import Markdown
from streamlit.proto.WidgetStates_pb2 import WidgetState
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

log = logging.getLogger(__name__)

# Messages the benchmark measures carry a token like `bm000012`; everything else (history) has none.
TOKEN = re.compile(r"\bbm\d{6}\b")
WRITING = "writing…"  # the caption of a reply still being written
TYPING = "is typing…*"  # what a page that does not stream shows instead of the words
BUSY = "is replying to"  # the caption a page shows while the assistant works on a turn
HEARTBEAT_SECONDS = 15.0  # how often a Streamlit page tells the server it is alive
# The subprotocol header carries Streamlit's tokens; a browser without auth sends this placeholder.
SUBPROTOCOLS = ["streamlit", "PLACEHOLDER_AUTH_TOKEN"]
CAPTION = Markdown.Type.Value("CAPTION")


class RefusedError(RuntimeError):
    """The app showed an error instead of the page (for example, it refused a setting)."""


@dataclass
class Progress:
    """What a client has shown so far, in its own clock (seconds)."""

    seen: dict[str, float] = field(default_factory=dict)  # token -> first time any text had it
    done: dict[str, float] = field(default_factory=dict)  # token -> first time a finished reply quoted it
    # token -> first time a reply being written showed it; the bench's replies start with their token
    first_words: dict[str, float] = field(default_factory=dict)
    # token -> first time a websocket frame carrying it reached the page, before it was drawn (Chromium)
    arrived: dict[str, float] = field(default_factory=dict)
    # frames, bytes and (Chromium) DOM mutations or (emulated) deltas received so far
    counts: dict[str, int] = field(default_factory=dict)
    input_enabled: bool = False  # the message box as last drawn
    joined: bool = False
    errors: list[str] = field(default_factory=list)  # error boxes shown, e.g. a refused message
    writing: bool = False  # a reply is shown being written ("writing…" in its header)
    busy: bool = False  # the busy caption ("… is replying to …") is shown
    full_runs: int = 0  # full script runs the server started for this page (emulated sessions only)
    fragment_runs: int = 0


class EmulatedSession:
    """One tab: connect, join with a nickname, post, and record when tokens and replies show up.

    Timers follow the browser: every `st_autorefresh` component ticks on its own interval from a random
    phase (tabs opened together would otherwise tick in lock-step), `run_every` fragments rerun on
    `auto_rerun`, and a heartbeat goes out every 15 s.
    """

    def __init__(self, base_url: str, name: str, query_string: str, *, assistant: str, seed: int):
        self.name = name
        self.ws_url = base_url.replace("http://", "ws://", 1) + "_stcore/stream"
        self.page_url = base_url
        self.query_string = query_string
        self.assistant_caption = f"**{assistant}**"
        self.progress = Progress()
        self.forward_msgs = 0
        self.bytes_in = 0
        self.error: str | None = None
        self._rng = random.Random(seed)
        self._page_hash = ""
        self._widgets: dict[str, WidgetState] = {}  # values the browser sends again with every rerun
        self._ids: dict[str, str] = {}  # role ("nickname", "join", "message") -> widget id
        self._bodies: dict[tuple[int, ...], tuple[bool, str]] = {}  # delta path -> (is caption, text)
        self._drawn_in: dict[tuple[int, ...], int] = {}  # delta path -> the full run that drew it
        # Paths of what makes a page look busy, kept as they change: scanning every body on every
        # message would cost the client more than the server at 100 sessions.
        self._writing_heads: set[tuple[int, ...]] = set()
        self._busy_lines: set[tuple[int, ...]] = set()
        self._ws: ClientConnection | None = None
        self._tasks: list[asyncio.Task] = []
        self._timers: dict[str, asyncio.Task] = {}  # component or fragment id -> its ticking task
        self._changed = asyncio.Event()

    # --- driving the session ---------------------------------------------------------------------

    async def connect(self) -> None:
        self._ws = await connect(self.ws_url, subprotocols=SUBPROTOCOLS, max_size=None, open_timeout=30)
        self._tasks.append(asyncio.create_task(self._receive(), name=f"{self.name}-receive"))
        self._tasks.append(asyncio.create_task(self._heartbeat(), name=f"{self.name}-heartbeat"))
        await self._rerun()

    async def join(self, nickname: str, timeout: float) -> None:
        """Fill in the nickname and press Join, as one form submit; return once the message box shows.

        A page that shows an error instead of the form (the app refused its settings) fails at once.
        """
        await self.wait_for(
            lambda: ("nickname" in self._ids and "join" in self._ids) or self.progress.errors,
            timeout,
            "the join form",
        )
        if "join" not in self._ids:
            raise RefusedError(f"{self.name}: the page shows an error: {self.progress.errors[-1][:300]}")
        nickname_state = WidgetState(id=self._ids["nickname"], string_value=nickname)
        self._widgets[nickname_state.id] = nickname_state  # a browser keeps sending the typed value
        await self._rerun(extra=[WidgetState(id=self._ids["join"], trigger_value=True)])
        await self.wait_for(lambda: self.progress.joined, timeout, "the chat page after joining")

    async def post(self, text: str) -> float:
        """Send `text` from the message box; returns the moment it was sent (time.monotonic())."""
        state = WidgetState(id=self._ids["message"])
        state.chat_input_value.data = text
        state.chat_input_value.file_uploader_state.SetInParent()  # as the browser sends it
        sent = time.monotonic()
        await self._rerun(extra=[state])
        return sent

    async def rerun(self) -> None:
        """A plain full rerun, as any widget outside a fragment would cause."""
        await self._rerun()

    async def leave(self) -> None:
        """Press "Leave the room"."""
        await self._rerun(extra=[WidgetState(id=self._ids["leave"], trigger_value=True)])

    async def refresh(self) -> Progress:
        return self.progress  # kept up to date as messages arrive

    async def wait_for(self, condition, timeout: float, what: str) -> None:
        """Return once `condition()` holds, checked as messages arrive; TimeoutError names `what`."""
        await wait_for_change(self, condition, timeout, what)

    async def close(self) -> None:
        for task in [*self._tasks, *self._timers.values()]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._timers.values(), return_exceptions=True)
        if self._ws is not None:
            await self._ws.close()

    # --- what goes out ---------------------------------------------------------------------------

    async def _rerun(
        self, *, fragment_id: str = "", extra: list[WidgetState] = (), auto: bool = False
    ) -> None:
        message = BackMsg()
        state = message.rerun_script
        state.query_string = self.query_string
        state.page_script_hash = self._page_hash
        state.fragment_id = fragment_id
        state.is_auto_rerun = auto
        context = state.context_info
        context.timezone, context.timezone_offset, context.locale = "UTC", 0, "en-US"
        context.url, context.is_embedded, context.color_scheme = self.page_url, False, "light"
        # The browser sends every widget's value with each rerun; triggers (a click, a message) only once.
        state.widget_states.widgets.extend([*self._widgets.values(), *extra])
        await self._send(message)

    async def _send(self, message: BackMsg) -> None:
        if self._ws is None or self.error:
            return
        try:
            await self._ws.send(message.SerializeToString())
        except ConnectionClosed as closed:
            self._fail(f"connection closed while sending: {closed}")

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            await self._send(BackMsg(app_heartbeat=True))

    async def _tick_component(self, widget_id: str, fragment_id: str, interval: float) -> None:
        """`st_autorefresh`: its iframe calls setComponentValue(count) every interval, from load on."""
        await asyncio.sleep(self._rng.uniform(0, interval))
        count, next_at = 0, time.monotonic()
        while True:
            count += 1
            self._widgets[widget_id] = WidgetState(id=widget_id, json_value=str(count))
            await self._rerun(fragment_id=fragment_id)
            # A browser's setInterval keeps its phase; it does not wait for the run it caused.
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    async def _auto_rerun(self, fragment_id: str, interval: float) -> None:
        """`@st.fragment(run_every=...)`: the browser asks for the fragment's rerun every interval."""
        await asyncio.sleep(self._rng.uniform(0, interval))
        while True:
            await self._rerun(fragment_id=fragment_id, auto=True)
            await asyncio.sleep(interval)

    def _start_timer(self, key: str, coroutine) -> None:
        if key in self._timers:
            coroutine.close()
            return
        self._timers[key] = asyncio.create_task(coroutine, name=f"{self.name}-{key[:12]}")

    # --- what comes in ---------------------------------------------------------------------------

    async def _receive(self) -> None:
        assert self._ws is not None
        try:
            async for frame in self._ws:
                if isinstance(frame, str):
                    continue  # Streamlit only sends binary frames
                now = time.monotonic()
                self.forward_msgs += 1
                self.bytes_in += len(frame)
                message = ForwardMsg()
                message.ParseFromString(frame)
                counts = self.progress.counts
                counts["frames"], counts["bytes"] = self.forward_msgs, self.bytes_in
                counts["deltas"] = counts.get("deltas", 0) + (message.WhichOneof("type") == "delta")
                self._handle(message, now)
                self._changed.set()
        except ConnectionClosed as closed:
            self._fail(f"connection closed: {closed}")
        except Exception as error:  # a parsing bug must not pass for a slow server
            log.exception("%s: receiving failed", self.name)
            self._fail(f"receiving failed: {error!r}")

    def _fail(self, reason: str) -> None:
        if self.error is None:
            self.error = reason
        self._changed.set()

    def _handle(self, message: ForwardMsg, now: float) -> None:
        kind = message.WhichOneof("type")
        if kind == "delta":
            self._delta(message, now)
        elif kind == "new_session":
            # Every run starts with one; a fragment's run names its fragments, a full run none.
            if message.metadata.run.fragment_ids:
                self.progress.fragment_runs += 1
            else:
                self.progress.full_runs += 1
        elif kind == "script_finished" and message.script_finished == ForwardMsg.FINISHED_SUCCESSFULLY:
            # A finished full run clears what it did not draw again, as the browser does.
            for path in [p for p, run in self._drawn_in.items() if run < self.progress.full_runs]:
                self._drop(path)
        elif kind == "page_info_changed":
            self.query_string = message.page_info_changed.query_string
        elif kind == "navigation":
            self._page_hash = message.navigation.page_script_hash or self._page_hash
        elif kind == "auto_rerun":
            rerun = message.auto_rerun
            self._start_timer(
                "auto:" + rerun.fragment_id, self._auto_rerun(rerun.fragment_id, rerun.interval)
            )
        elif kind == "stop_auto_rerun":
            for key in [k for k in self._timers if k.startswith("auto:")]:
                self._timers.pop(key).cancel()

    def _delta(self, message: ForwardMsg, now: float) -> None:
        delta = message.delta
        path = tuple(message.metadata.delta_path)
        if delta.WhichOneof("type") == "add_block":
            # A new block (a message bubble) replaces whatever was drawn at and below its path.
            self._drop_below(path)
            return
        if delta.WhichOneof("type") != "new_element":
            return
        element = delta.new_element
        kind = element.WhichOneof("type")
        if kind == "markdown":
            self._markdown(path, element.markdown, now)
            return
        # Any other element, an empty one included (a message leaving the page: its placeholder emptied),
        # replaces the block that was at its path with everything in it.
        self._drop_below(path)
        if kind == "text_input" and element.text_input.label == "Nickname":
            self._ids["nickname"] = element.text_input.id
        elif kind == "button" and element.button.is_form_submitter and element.button.label == "Join":
            self._ids["join"] = element.button.id
        elif kind == "button" and element.button.label == "Leave the room":
            self._ids["leave"] = element.button.id
        elif kind == "alert" and element.alert.format == Alert.Format.ERROR:
            self.progress.errors.append(element.alert.body)
        elif kind == "chat_input":
            self._ids["message"] = element.chat_input.id
            self.progress.input_enabled = not element.chat_input.disabled
            self.progress.joined = True
        elif kind == "checkbox" and element.checkbox.id not in self._widgets:
            self._widgets[element.checkbox.id] = WidgetState(
                id=element.checkbox.id, bool_value=element.checkbox.default
            )
        elif kind == "component_instance":
            interval = _autorefresh_interval(element.component_instance)
            if interval:
                widget_id = element.component_instance.id
                self._start_timer(widget_id, self._tick_component(widget_id, delta.fragment_id, interval))

    def _drop_below(self, path: tuple[int, ...]) -> None:
        """Whatever was drawn at and below `path` is gone."""
        self._drop(path)
        for below in [p for p in self._bodies if p[: len(path)] == path]:
            self._drop(below)

    def _drop(self, path: tuple[int, ...]) -> None:
        """Whatever was drawn at `path` is gone."""
        if self._bodies.pop(path, None) is not None:
            self._drawn_in.pop(path, None)
            self._writing_heads.discard(path)
            self._busy_lines.discard(path)
            self.progress.writing, self.progress.busy = bool(self._writing_heads), bool(self._busy_lines)

    def _markdown(self, path: tuple[int, ...], markdown: Markdown, now: float) -> None:
        caption = markdown.element_type == CAPTION
        body = markdown.body
        self._drop(path)
        self._bodies[path] = (caption, body)
        self._drawn_in[path] = self.progress.full_runs
        if caption and BUSY in body:
            self._busy_lines.add(path)
            self.progress.busy = True
        if caption and body.startswith(self.assistant_caption) and WRITING in body:
            self._writing_heads.add(path)
            self.progress.writing = True
        if not caption:
            for token in TOKEN.findall(body):
                self.progress.seen.setdefault(token, now)
        # A message bubble (shared/web/messages.py `draw`) holds a caption (who, when) just above its text
        # (after an anchor, when a reply quotes it); find the pair this element completes.
        index = path[-1]
        if caption:
            head, text = body, self._bodies.get((*path[:-1], index + 1), (True, ""))
            text = "" if text[0] else text[1]
        elif index > 0:
            head, text = self._bodies.get((*path[:-1], index - 1), (False, "")), body
            head = head[1] if head[0] else ""
        else:
            return
        if not head.startswith(self.assistant_caption):
            return
        if WRITING in head:
            if not text.endswith(TYPING):
                for token in TOKEN.findall(text):
                    self.progress.first_words.setdefault(token, now)
        else:
            for token in TOKEN.findall(text):
                self.progress.done.setdefault(token, now)


def _autorefresh_interval(component) -> float | None:
    """The tick interval (seconds) of an `st_autorefresh` component; None for any other component."""
    if not component.component_name.endswith("st_autorefresh"):
        return None
    interval = json.loads(component.json_args).get("interval")
    return interval / 1000 if interval else None


async def wait_for_change(session, condition, timeout: float, what: str) -> None:
    """Wait until `condition()` holds for a bench client (an emulated session or a bare page's), checked
    each time its `_changed` event fires; its `error` ends the wait, and TimeoutError names `what`."""
    deadline = time.monotonic() + timeout
    while not condition():
        if session.error:
            raise ConnectionError(f"{session.name}: {session.error}")
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"{session.name}: no {what} after {timeout:g} s")
        session._changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(session._changed.wait(), min(left, 0.5))
