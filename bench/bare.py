"""The bare reference: the same room over a plain websocket, from a tiny server of the bench's own.

No framework: asyncio and the `websockets` package. The server keeps the room's messages in a list,
relays every change to every connected page as one JSON frame, and answers each message in turn by
streaming the bench's model (the same `POST /v1/responses` the app makes), word by word as it comes.
Its page is a few dozen lines of HTML and JS that append each message to a list. Its markup carries the
`data-testid` names Streamlit's chat bubbles have, so the bench's Chromium observer reads it unchanged,
and `BareSession` speaks its protocol with the same calls as an emulated Streamlit session, so the
scenario drives both alike (bench/README.md, "The bare page").

`python -m bench.bare --port P` runs the server (the model's address and key from OPENAI_BASE_URL and
OPENAI_API_KEY, the assistant's name from ASSISTANT_NAME).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import time
from urllib.parse import urlsplit

from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from bench.emulator import TOKEN, Progress, wait_for_change

log = logging.getLogger(__name__)

HEALTH = "/_stcore/health"  # the path the bench's server starter polls, as for Streamlit

# Each message is a bubble: a head (who, and "writing…" while a reply streams) and a text.
PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Bare room</title>
<style>body{font:15px sans-serif;max-width:46em;margin:1em auto}li{margin:.5em 0}
.head{color:#555;font-size:.85em}textarea{width:100%%}</style></head>
<body><form id="join"><input id="nick" aria-label="Nickname"><button>Join</button></form>
<ol id="list"></ol><textarea id="box" placeholder="Send message" hidden></textarea>
<script>
const ASSISTANT = %(assistant)s;
const list = document.getElementById("list"), box = document.getElementById("box");
const bubbles = {};
const socket = new WebSocket(`ws://${location.host}/ws`);
socket.binaryType = "arraybuffer";
const send = (what) => socket.send(new TextEncoder().encode(JSON.stringify(what)));
const part = (text) => {
  const div = document.createElement("div");
  div.dataset.testid = "stMarkdown";
  div.textContent = text;
  return div;
};
const head = (m) => m.who + (m.writing ? " · writing…" : "");
const add = (m) => {
  const li = document.createElement("li");
  li.dataset.testid = "stChatMessage";
  li.append(part(head(m)), part(m.text));
  li.firstChild.className = "head";
  bubbles[m.id] = { li, m };
  list.append(li);
};
socket.onmessage = (event) => {
  const change = JSON.parse(new TextDecoder().decode(event.data));
  if (change.all) change.all.forEach(add);
  if (change.add) add(change.add);
  if (change.grow) bubbles[change.grow].li.lastChild.append(change.text);
  if (change.end) {
    const { li, m } = bubbles[change.end];
    m.writing = false;
    li.firstChild.textContent = head(m);
  }
};
document.getElementById("join").onsubmit = (event) => {
  event.preventDefault();
  send({ join: document.getElementById("nick").value });
  event.target.hidden = true;
  box.hidden = false;
};
box.addEventListener("keydown", (event) => {
  if (event.key !== "Enter") return;
  event.preventDefault();
  send({ post: box.value });
  box.value = "";
});
</script></body></html>
"""


class BareRoom:
    """The room: its messages, the pages connected to it, and the assistant answering one at a time."""

    def __init__(self, model_url: str, api_key: str, assistant: str):
        self.model_url, self.api_key, self.assistant = model_url, api_key, assistant
        self.messages: list[dict] = []
        self.pages: set[ServerConnection] = set()
        self.queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self.page = (PAGE % {"assistant": json.dumps(assistant)}).encode()
        self._say("system", "Welcome to the room.")

    def _relay(self, change: dict) -> None:
        broadcast(self.pages, json.dumps(change).encode())

    def _say(self, who: str, text: str, *, writing: bool = False) -> dict:
        message = {"id": len(self.messages), "who": who, "text": text, "writing": writing}
        self.messages.append(message)
        self._relay({"add": message})
        return message

    async def visit(self, page: ServerConnection) -> None:
        """One connected page: it joins, posts and leaves; every change reaches every joined page."""
        name = None
        try:
            async for frame in page:
                said = json.loads(frame)
                if "join" in said and name is None:
                    name = said["join"]
                    await page.send(json.dumps({"all": self.messages}).encode())
                    self.pages.add(page)
                    self._say("system", f"{name} joined")
                elif "post" in said and name is not None:
                    self._say(name, said["post"])
                    self.queue.put_nowait((name, said["post"]))
                elif "leave" in said and name is not None:
                    self.pages.discard(page)
                    self._say("system", f"{name} left")
                    name = None
        except ConnectionClosed:
            pass
        finally:
            self.pages.discard(page)

    async def answer(self) -> None:
        """The assistant: each message in turn, its reply streamed to every page as the words come."""
        while True:
            name, text = await self.queue.get()
            reply = self._say(self.assistant, "", writing=True)
            try:
                async for words in self._model(f"[{name}] {text}"):
                    reply["text"] += words
                    self._relay({"grow": reply["id"], "text": words})
            except Exception:
                log.exception("the model failed")
            reply["writing"] = False
            self._relay({"end": reply["id"]})

    async def _model(self, said: str):
        """The words of a streamed `POST {OPENAI_BASE_URL}/responses`, read by hand (chunked SSE)."""
        url = urlsplit(self.model_url.rstrip("/") + "/responses")
        body = json.dumps({"model": "bench", "input": [{"role": "user", "content": said}], "stream": True})
        reader, writer = await asyncio.open_connection(url.hostname, url.port)
        try:
            writer.write(
                (
                    f"POST {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\nAuthorization: Bearer {self.api_key}\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
                ).encode()
                + body.encode()
            )
            status = await reader.readline()
            if b" 200 " not in status:
                raise RuntimeError(f"the model answered {status!r}")
            while (await reader.readline()) not in (b"\r\n", b""):
                pass
            pending = b""
            while size := int((await reader.readline()).strip() or b"0", 16):
                pending += await reader.readexactly(size)
                await reader.readexactly(2)
                *events, pending = pending.split(b"\n\n")
                for event in events:
                    data = json.loads(event.split(b"data: ", 1)[1])
                    if data["type"] == "response.output_text.delta":
                        yield data["delta"]
        finally:
            writer.close()


async def serve_room(port: int, room: BareRoom) -> None:
    def page_or_socket(connection: ServerConnection, request: Request) -> Response | None:
        if request.path == "/ws":
            return None
        body = b"ok" if request.path == HEALTH else room.page
        kind = "text/plain" if request.path == HEALTH else "text/html; charset=utf-8"
        return Response(
            200, "OK", Headers([("Content-Type", kind), ("Content-Length", str(len(body)))]), body
        )

    async with serve(room.visit, "127.0.0.1", port, process_request=page_or_socket, max_size=None):
        await room.answer()


# --- the bench's side: an emulated page of the bare room --------------------------------------------


class BareSession:
    """One emulated page of the bare room, with the calls and the `progress` of an `EmulatedSession`."""

    def __init__(self, base_url: str, name: str, *, assistant: str):
        self.name = name
        self.ws_url = base_url.replace("http://", "ws://", 1) + "ws"
        self.assistant = assistant
        self.progress = Progress()
        self.forward_msgs = 0
        self.bytes_in = 0
        self.error: str | None = None
        self._messages: dict[int, dict] = {}
        self._writing: set[int] = set()  # the assistant's replies being written, by id
        self._ws = None
        self._task: asyncio.Task | None = None
        self._changed = asyncio.Event()

    async def connect(self) -> None:
        self._ws = await connect(self.ws_url, max_size=None, open_timeout=30)
        self._task = asyncio.create_task(self._receive(), name=f"{self.name}-receive")

    async def join(self, nickname: str, timeout: float) -> None:
        await self._send({"join": nickname})
        await self.wait_for(lambda: self.progress.joined, timeout, "the room after joining")

    async def post(self, text: str) -> float:
        sent = time.monotonic()
        await self._send({"post": text})
        return sent

    async def leave(self) -> None:
        await self._send({"leave": True})

    async def refresh(self) -> Progress:
        return self.progress

    async def wait_for(self, condition, timeout: float, what: str) -> None:
        await wait_for_change(self, condition, timeout, what)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._ws is not None:
            await self._ws.close()

    async def _send(self, what: dict) -> None:
        try:
            await self._ws.send(json.dumps(what).encode())
        except ConnectionClosed as closed:
            self.error = f"connection closed while sending: {closed}"

    async def _receive(self) -> None:
        try:
            async for frame in self._ws:
                now = time.monotonic()
                self.forward_msgs += 1
                self.bytes_in += len(frame)
                counts = self.progress.counts
                counts["frames"], counts["bytes"] = self.forward_msgs, self.bytes_in
                self._change(json.loads(frame), now)
                self._changed.set()
        except ConnectionClosed as closed:
            self.error = f"connection closed: {closed}"
        except Exception as error:  # a parsing bug must not pass for a slow server
            log.exception("%s: receiving failed", self.name)
            self.error = f"receiving failed: {error!r}"
        self._changed.set()

    def _change(self, change: dict, now: float) -> None:
        progress = self.progress
        changed = change.get("all") or ([change["add"]] if "add" in change else [])
        if "all" in change:
            progress.joined = progress.input_enabled = True  # the box never closes
        for message in changed:
            self._messages[message["id"]] = message
        if "grow" in change:
            message = self._messages[change["grow"]]
            message["text"] += change["text"]
            changed.append(message)
        if "end" in change:
            message = self._messages[change["end"]]
            message["writing"] = False
            changed.append(message)
        progress.counts["deltas"] = progress.counts.get("deltas", 0) + len(changed)
        for message in changed:
            tokens = TOKEN.findall(message["text"])
            for token in tokens:
                progress.seen.setdefault(token, now)
            if message["who"] == self.assistant:
                record = progress.first_words if message["writing"] else progress.done
                for token in tokens:
                    record.setdefault(token, now)
                (self._writing.add if message["writing"] else self._writing.discard)(message["id"])
        progress.writing = bool(self._writing)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bare", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    room = BareRoom(
        os.environ["OPENAI_BASE_URL"],
        os.environ["OPENAI_API_KEY"],
        os.environ.get("ASSISTANT_NAME", "Assistant"),
    )
    asyncio.run(serve_room(args.port, room))


if __name__ == "__main__":
    main()
