"""An OpenAI-protocol server for tests: conversations, their items and (streamed) responses on 127.0.0.1.

Each test scripts what the next responses do (reply, call a tool, fail, hang) and reads what was sent.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import select
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

API_KEY = "sk-test-4f1c9e2b7a6d5c3e8f0a1b2c3d4e5f60"
_NICKNAMED = re.compile(r"^\[(?P<nickname>[^\]]+)\] (?P<text>.*)$", re.DOTALL)

# --- what a scripted response does ---------------------------------------------------------------


@dataclass(frozen=True)
class Say:
    """Reply with this text, streamed word by word."""

    text: str


@dataclass(frozen=True)
class CallFunction:
    """Ask the app to call a function (after `text_before`, if any); the next response uses its output."""

    name: str
    arguments: str = "{}"
    text_before: str = ""


@dataclass(frozen=True)
class Search:
    """Search the web (a `web_search_call`, `seconds` long), then reply with `text` citing `sources`
    ((url, title) pairs) as `url_citation` annotations."""

    text: str
    sources: tuple[tuple[str, str], ...]
    query: str = "what was asked"
    seconds: float = 0.0


@dataclass(frozen=True)
class Draw:
    """Draw a picture (an `image_generation_call`, `seconds` long, whose `result` is `picture_b64`, one
    partial image first), then reply with `text`."""

    picture_b64: str
    text: str = "Here it is."
    seconds: float = 0.0


@dataclass(frozen=True)
class Refuse:
    """Answer with an HTTP error before anything is streamed."""

    status: int
    code: str | None
    message: str = "Refused by the test script."
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class BreakOff:
    """Stream `after` pieces of the default reply, then fail: `failed`, `incomplete`, `flat_error`,
    `nested_error` (the two shapes of an `error` event), `end` (end the stream without
    `response.completed`) or `drop` (close the connection)."""

    how: str
    after: int = 2


@dataclass(frozen=True)
class Hang:
    """Say nothing for `seconds` (stopping the server ends it sooner), then close the connection."""

    seconds: float


@dataclass(frozen=True)
class AfterGate:
    """Hold the request until the test sets `gate` (or the server stops), then answer as usual."""

    gate: threading.Event = field(compare=False)


@dataclass(frozen=True)
class Lost:
    """Do what was asked, then close the connection without answering: the answer is lost on the way."""


LOCKED = Refuse(400, "conversation_locked", "Another process is currently operating on this conversation.")


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: Any


def error_body(message: str, code: str | None, kind: str = "invalid_request_error", param: str | None = None):
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


class OpenAIServer:
    """Use as `with OpenAIServer() as server:`; point the SDK at `server.base_url`."""

    def __init__(self, api_key: str = API_KEY):
        self.api_key = api_key
        self.requests: list[Request] = []
        self.conversations: dict[str, dict[str, Any]] = {}  # id -> {"metadata": .., "items": [..]}
        self.finished: list[dict[str, Any]] = []  # every response object that completed, usage included
        self.delta_delay = 0.0  # seconds between streamed text pieces (the first comes at once)
        # Answer 400 to a response whose input holds pictures or files, as local servers without vision do.
        self.refuse_files = False
        self._responses_script: deque[Any] = deque()
        # "create", "delete" or "items" (adding items) -> what the next such requests do: Refuse, Hang, Lost
        self._conversations_script: dict[str, deque[Any]] = {
            "create": deque(),
            "delete": deque(),
            "items": deque(),
        }
        self._in_flight: set[str] = set()  # conversations with a response running
        self.deleted_items: list[tuple[str, dict[str, Any]]] = []  # (conversation, item) of each item deleted
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._ids = itertools.count(1)
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.app = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.01,), name="openai-server", daemon=True
        )

    # --- for tests ---------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def script(self, *behaviours: Any) -> None:
        """What the next POST /v1/responses do, in order; after them, the default reply."""
        with self._lock:
            self._responses_script.extend(behaviours)

    def script_conversations(self, *behaviours: Refuse | Hang | Lost, call: str = "create") -> None:
        """What the next conversation calls of one kind do, in order: `call` is "create" (POST
        /v1/conversations), "delete" (DELETE /v1/conversations/{id}) or "items" (POST .../items)."""
        with self._lock:
            self._conversations_script[call].extend(behaviours)

    def sent(self, method: str, path: str) -> list[Request]:
        """The requests made with `method` to `path` (or below it, for a path ending in `/`)."""
        with self._lock:
            return [
                r
                for r in self.requests
                if r.method == method and (r.path == path or path.endswith("/") and r.path.startswith(path))
            ]

    def response_requests(self) -> list[dict[str, Any]]:
        """The JSON bodies of every POST /v1/responses, oldest first."""
        return [r.body for r in self.sent("POST", "/v1/responses")]

    def input_parts(self, kind: str) -> list[dict[str, Any]]:
        """Every content part of type `kind` (`input_image`, `input_file`, `input_text`) in the input of
        every POST /v1/responses, oldest first (refused requests included)."""
        return [
            part
            for body in self.response_requests()
            for part in _parts(body.get("input"))
            if part.get("type") == kind
        ]

    def items(self, conversation: str) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.conversations[conversation]["items"])

    def __enter__(self) -> OpenAIServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    # --- the protocol --------------------------------------------------------------------------------

    def handle(self, exchange: _Handler, method: str, path: str, query: dict[str, str], body: Any) -> None:
        if exchange.headers.get("Authorization") != f"Bearer {self.api_key}":
            # Echo the key, as careless servers do, so tests prove the app never shows it.
            sent = (exchange.headers.get("Authorization") or "").removeprefix("Bearer ")
            message = f"Incorrect API key provided: {sent}."
            return exchange.send_json(401, error_body(message, "invalid_api_key"))
        parts = path.strip("/").split("/")
        if parts[:2] == ["v1", "responses"] and len(parts) == 2 and method == "POST":
            return self._respond(exchange, body or {})
        if parts[:2] == ["v1", "conversations"]:
            return self._conversation_route(exchange, method, parts[2:], query, body or {})
        exchange.send_json(404, error_body(f"Unknown path {method} {path}.", None))

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids)}"

    def _conversation_route(self, exchange, method: str, rest: list[str], query, body) -> None:
        call = {("POST", 0): "create", ("DELETE", 1): "delete"}.get((method, len(rest)))
        if method == "POST" and rest[1:] == ["items"]:
            call = "items"
        with self._lock:
            script = self._conversations_script.get(call or "")
            behaviour = script.popleft() if script else None
        if isinstance(behaviour, Refuse):
            return exchange.refuse(behaviour)
        if isinstance(behaviour, Hang):
            self._stopping.wait(behaviour.seconds)
            return exchange.drop()
        if isinstance(behaviour, Lost):
            exchange = _Unanswered(exchange)
        if call == "create":
            with self._lock:
                conversation = self._new_id("conv")
                items = [self._stored(item) for item in body.get("items") or []]
                self.conversations[conversation] = {"metadata": body.get("metadata") or {}, "items": items}
            return exchange.send_json(200, self._conversation(conversation))
        conversation = rest[0] if rest else ""
        with self._lock:
            known = conversation in self.conversations
        if not known:
            message = f"Conversation with id '{conversation}' not found."
            return exchange.send_json(404, error_body(message, None, param="conversation"))
        if len(rest) == 1 and method == "GET":
            return exchange.send_json(200, self._conversation(conversation))
        if len(rest) == 1 and method == "DELETE":
            with self._lock:
                del self.conversations[conversation]
            return exchange.send_json(
                200, {"id": conversation, "object": "conversation.deleted", "deleted": True}
            )
        if rest[1:] == ["items"] and method == "POST":
            with self._lock:
                added = [self._stored(item) for item in body.get("items") or []]
                self.conversations[conversation]["items"].extend(added)
            return exchange.send_json(200, _page(added, has_more=False))
        if rest[1:] == ["items"] and method == "GET":
            return exchange.send_json(200, self._items_page(conversation, query))
        if len(rest) == 3 and rest[1] == "items" and method == "DELETE":
            return self._delete_item(exchange, conversation, rest[2])
        exchange.send_json(
            404, error_body(f"Unknown path {method} /v1/conversations/{'/'.join(rest)}.", None)
        )

    def _delete_item(self, exchange: _Handler, conversation: str, item_id: str) -> None:
        """DELETE /v1/conversations/{id}/items/{item_id}: the item leaves the conversation (recorded in
        `deleted_items`); the answer is the conversation, as OpenAI's is."""
        with self._lock:
            items = self.conversations[conversation]["items"]
            found = next((item for item in items if item["id"] == item_id), None)
            if found is not None:
                items.remove(found)
                self.deleted_items.append((conversation, found))
        if found is None:
            message = f"Item with id '{item_id}' not found."
            return exchange.send_json(404, error_body(message, None, param="item_id"))
        exchange.send_json(200, self._conversation(conversation))

    def _conversation(self, conversation: str) -> dict[str, Any]:
        with self._lock:
            metadata = self.conversations[conversation]["metadata"]
        return {
            "id": conversation,
            "object": "conversation",
            "created_at": int(time.time()),
            "metadata": metadata,
        }

    def _items_page(self, conversation: str, query: dict[str, str]) -> dict[str, Any]:
        items = self.items(conversation)
        if query.get("order", "desc") == "desc":
            items.reverse()
        if "after" in query:
            ids = [item["id"] for item in items]
            items = items[ids.index(query["after"]) + 1 :] if query["after"] in ids else []
        limit = int(query.get("limit", 20))
        return _page(items[:limit], has_more=len(items) > limit)

    def _stored(self, item: dict[str, Any]) -> dict[str, Any]:
        prefix = {"function_call": "fc", "function_call_output": "fco"}.get(item.get("type", ""), "msg")
        return {"id": self._new_id(prefix), **item}

    def _respond(self, exchange: _Handler, body: dict[str, Any]) -> None:
        with self._lock:
            behaviour = self._responses_script.popleft() if self._responses_script else None
        if isinstance(behaviour, AfterGate):
            while not behaviour.gate.wait(0.01) and not self._stopping.is_set():
                pass
            behaviour = None
        if isinstance(behaviour, Hang):
            self._stopping.wait(behaviour.seconds)
            return exchange.drop()
        if isinstance(behaviour, Refuse):
            return exchange.refuse(behaviour)
        if self.refuse_files and any(
            part.get("type") in ("input_image", "input_file") for part in _parts(body.get("input"))
        ):
            message = "This model does not support image or file input."
            return exchange.send_json(400, error_body(message, "unsupported_input", param="input"))
        items = _as_items(body.get("input"))
        conversation = body.get("conversation")
        conversation = conversation.get("id") if isinstance(conversation, dict) else conversation
        with self._lock:
            if conversation and conversation not in self.conversations:
                message = f"Conversation with id '{conversation}' not found."
                return exchange.send_json(404, error_body(message, None, param="conversation"))
            if conversation in self._in_flight:
                return exchange.refuse(LOCKED)
            earlier = self.conversations[conversation]["items"] if conversation else []
            problem = _unanswered_calls(earlier, items)
            if problem:
                return exchange.send_json(400, error_body(problem, None, param="input"))
            if conversation:
                self._in_flight.add(conversation)
                earlier.extend(self._stored(item) for item in items)
        try:
            self._run(exchange, body, conversation, items, behaviour)
        finally:
            with self._lock:
                self._in_flight.discard(conversation)

    def _run(self, exchange, body, conversation: str | None, items: list[dict[str, Any]], behaviour) -> None:
        response = {
            "id": self._new_id("resp"),
            "object": "response",
            "created_at": int(time.time()),
            "status": "in_progress",
            "model": body.get("model", ""),
            "instructions": body.get("instructions"),
            "conversation": {"id": conversation} if conversation else None,
            "output": [],
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": body.get("tools") or [],
            "error": None,
            "incomplete_details": None,
            "usage": None,
        }
        if (
            not isinstance(behaviour, Say)
            and (body.get("text") or {}).get("format", {}).get("type") == "json_schema"
        ):
            # A structured answer was asked for: the room's notes, or a reply decision.
            schema = body["text"]["format"].get("name")
            behaviour = Say(default_notes(items) if schema == "room_notes" else default_decision(items))
        planned = self._plan(items, behaviour)
        if not body.get("stream"):
            response["output"] = [self._keep(conversation, item) for item in planned]
            return exchange.send_json(200, self._complete(response, body))
        stream = _EventStream(exchange, self.delta_delay, self._stopping)
        stream.send("response.created", response=response)
        stream.send("response.in_progress", response=response)
        for index, item in enumerate(planned):
            if item["type"] == "function_call":
                stream.function_call(index, item)
            elif item["type"] == "web_search_call":
                stream.web_search(index, item, behaviour.seconds)
            elif item["type"] == "image_generation_call":
                stream.image_generation(index, item, behaviour.seconds)
            elif not stream.message(index, item, behaviour if isinstance(behaviour, BreakOff) else None):
                return stream.break_off(behaviour.how, response)
            response["output"].append(self._keep(conversation, item))
        stream.send("response.completed", response=self._complete(response, body))
        stream.end()

    def _plan(self, items: list[dict[str, Any]], behaviour: Any) -> list[dict[str, Any]]:
        """The output items this response will have."""
        if isinstance(behaviour, CallFunction):
            call = {
                "type": "function_call",
                "id": self._new_id("fc"),
                "call_id": self._new_id("call"),
                "name": behaviour.name,
                "arguments": behaviour.arguments,
                "status": "completed",
            }
            return (
                [_message(self._new_id("msg"), behaviour.text_before)] if behaviour.text_before else []
            ) + [call]
        if isinstance(behaviour, Search):
            search = {
                "type": "web_search_call",
                "id": self._new_id("ws"),
                "status": "completed",
                "action": {
                    "type": "search",
                    "query": behaviour.query,
                    "sources": [{"type": "url", "url": url} for url, _ in behaviour.sources],
                },
            }
            citations = [
                {
                    "type": "url_citation",
                    "url": url,
                    "title": title,
                    "start_index": 0,
                    "end_index": len(behaviour.text),
                }
                for url, title in behaviour.sources
            ]
            return [search, _message(self._new_id("msg"), behaviour.text, citations)]
        if isinstance(behaviour, Draw):
            drawing = {
                "type": "image_generation_call",
                "id": self._new_id("ig"),
                "status": "completed",
                "result": behaviour.picture_b64,
                "output_format": "png",
                "revised_prompt": "a picture",
            }
            return [drawing, _message(self._new_id("msg"), behaviour.text)]
        text = behaviour.text if isinstance(behaviour, Say) else default_reply(items)
        return [_message(self._new_id("msg"), text)]

    def _keep(self, conversation: str | None, item: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            state = self.conversations.get(conversation or "")  # gone if deleted meanwhile
            if state is not None:
                state["items"].append(item)
        return item

    def _complete(self, response: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        # Deterministic token counts, so tests can compare the app's totals with what was sent.
        input_tokens = len(json.dumps(body.get("input"))) // 4 + len(body.get("instructions") or "") // 4
        output_tokens = sum(len(json.dumps(item)) // 4 for item in response["output"])
        response = {
            **response,
            "status": "completed",
            "usage": {
                "input_tokens": input_tokens,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": output_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": input_tokens + output_tokens,
            },
        }
        with self._lock:
            self.finished.append(response)
        return response


def default_reply(items: list[dict[str, Any]]) -> str:
    """A tool's output read back, else a greeting for the last `[nickname] text` item."""
    if items and items[-1].get("type") == "function_call_output":
        return f"The tool said: {items[-1]['output']}"
    for item in reversed(items):
        if item.get("role") == "user":
            said = _text_of(item.get("content"))
            match = _NICKNAMED.match(said)
            if match:
                return f"Hello {match['nickname']}! You said: {_unquoted(match['text'])}"
            return f"Hello! You said: {said}"
    return "Hello!"


def _unquoted(text: str) -> str:
    """What a person wrote, from the app's `"..."` after their nickname (file notes may follow it)."""
    try:
        said, _ = json.JSONDecoder().raw_decode(text)
    except ValueError:
        return text
    return said if isinstance(said, str) else text


def default_decision(items: list[dict[str, Any]]) -> str:
    """A reply decision: yes when the chat's new lines hold a question (a sentence ending in "?")."""
    chat = "".join(_text_of(item.get("content")) for item in items if item.get("role") == "user")
    new = chat.rsplit("New:\n", 1)[-1]
    said = [_NICKNAMED.match(line) for line in new.splitlines()]
    texts = [_unquoted(match["text"]) if match else "" for match in said]
    asked = any(re.search(r"\?(\s|$)", text) for text in texts)
    return json.dumps({"answer": asked, "reason": "a question" if asked else "no question"})


def default_notes(items: list[dict[str, Any]]) -> str:
    """The room's notes, as the app's schema asks, read from the new lines by fixed rules: "let's ..." or
    "we agree ..." is a decision, "Name will ..." an action item for Name, a sentence ending in "?" an
    open question; an open question listed in the current notes is answered by a line that starts with
    "answer:"; nothing of these is `"change": false`."""
    chat = "".join(_text_of(item.get("content")) for item in items if item.get("role") == "user")
    current = re.match(r"Current notes: (.*)$", chat, re.MULTILINE)
    questions = json.loads(current[1])["open_questions"] if current else []
    new = chat.rsplit("New:\n", 1)[-1]
    said = [_NICKNAMED.match(line) for line in new.splitlines()]
    texts = [_unquoted(match["text"]).strip() for match in said if match]
    notes: dict[str, Any] = {
        "decisions": [],
        "action_items": [],
        "open_questions": [],
        "answered_questions": [],
    }
    for text in texts:
        if re.match(r"(let's|we agree)\b", text, re.IGNORECASE):
            notes["decisions"].append(text)
        elif action := re.match(r"([A-Z]\w*) will (.+)$", text):
            notes["action_items"].append({"who": action[1], "what": action[2]})
        elif text.endswith("?"):
            notes["open_questions"].append(text)
        elif text.lower().startswith("answer:") and questions:
            notes["answered_questions"].append(questions[0]["id"])
    return json.dumps({"change": any(notes.values()), **notes})


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content or [])


def _parts(raw: Any) -> list[dict[str, Any]]:
    """The content parts of a request's input items (a plain-text content counts as no part)."""
    return [
        part
        for item in _as_items(raw)
        if isinstance(item.get("content"), list)
        for part in item["content"]
        if isinstance(part, dict)
    ]


def _as_items(raw: Any) -> list[dict[str, Any]]:
    if isinstance(raw, str):
        return [{"type": "message", "role": "user", "content": raw}]
    return [{"type": "message", **item} if "type" not in item else item for item in raw or []]


def _unanswered_calls(earlier: list[dict[str, Any]], new: list[dict[str, Any]]) -> str | None:
    """OpenAI's refusal when a function call would be left without an output, or an output has no call."""
    calls = [i["call_id"] for i in earlier + new if i.get("type") == "function_call"]
    outputs = {i["call_id"] for i in earlier + new if i.get("type") == "function_call_output"}
    orphans = sorted(outputs - set(calls))
    if orphans:
        return f"No tool call found for function call output with call_id {orphans[0]}."
    missing = [call_id for call_id in calls if call_id not in outputs]
    if missing:
        return f"No tool output found for function call {missing[0]}."
    return None


def _message(item_id: str, text: str, annotations: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "type": "message",
        "id": item_id,
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": annotations or []}],
    }


def _page(items: list[dict[str, Any]], *, has_more: bool) -> dict[str, Any]:
    return {
        "object": "list",
        "data": items,
        "first_id": items[0]["id"] if items else None,
        "last_id": items[-1]["id"] if items else None,
        "has_more": has_more,
    }


class _EventStream:
    """One streamed response: `event:`/`data:` frames in chunked encoding, numbered in order."""

    def __init__(self, exchange: _Handler, delta_delay: float, stopping: threading.Event):
        self._exchange = exchange
        self._delay = delta_delay
        self._stopping = stopping
        self._numbers = itertools.count(0)
        exchange.send_response(200)
        exchange.send_header("Content-Type", "text/event-stream")
        exchange.send_header("Transfer-Encoding", "chunked")
        exchange.end_headers()

    def _wait(self, seconds: float) -> None:
        """Wait between pieces; a client that hung up meanwhile ends the response, as a model's server
        stops generating for a closed connection (and the conversation is free again)."""
        until = time.monotonic() + seconds
        sock = self._exchange.connection
        while time.monotonic() < until and not self._stopping.is_set():
            readable, _, _ = select.select([sock], [], [], min(0.05, max(0.0, until - time.monotonic())))
            if readable and not sock.recv(1, socket.MSG_PEEK):
                raise ConnectionResetError("the client hung up")

    def send(self, kind: str, **payload: Any) -> None:
        data = json.dumps({"type": kind, **payload, "sequence_number": next(self._numbers)})
        self._exchange.chunk(f"event: {kind}\ndata: {data}\n\n".encode())

    def message(self, index: int, item: dict[str, Any], breaking: BreakOff | None) -> bool:
        """Stream a message item; False if `breaking` stopped it partway."""
        text, annotations = item["content"][0]["text"], item["content"][0]["annotations"]
        ids = {"item_id": item["id"], "output_index": index}
        self.send(
            "response.output_item.added",
            output_index=index,
            item={**item, "status": "in_progress", "content": []},
        )
        part = {"type": "output_text", "text": "", "annotations": []}
        self.send("response.content_part.added", **ids, content_index=0, part=part)
        for number, piece in enumerate(re.findall(r"\s*\S+", text)):
            if breaking is not None and number == breaking.after:
                return False
            if self._delay and number:  # the first words at once, as a model's first token
                self._wait(self._delay)
            self.send("response.output_text.delta", **ids, content_index=0, delta=piece, logprobs=[])
        for number, annotation in enumerate(annotations):
            self.send(
                "response.output_text.annotation.added",
                **ids,
                content_index=0,
                annotation_index=number,
                annotation=annotation,
            )
        self.send("response.output_text.done", **ids, content_index=0, text=text, logprobs=[])
        done = {**part, "text": text, "annotations": annotations}
        self.send("response.content_part.done", **ids, content_index=0, part=done)
        self.send("response.output_item.done", output_index=index, item=item)
        return True

    def function_call(self, index: int, item: dict[str, Any]) -> None:
        ids = {"item_id": item["id"], "output_index": index}
        self.send(
            "response.output_item.added",
            output_index=index,
            item={**item, "arguments": "", "status": "in_progress"},
        )
        self.send("response.function_call_arguments.delta", **ids, delta=item["arguments"])
        self.send(
            "response.function_call_arguments.done", **ids, name=item["name"], arguments=item["arguments"]
        )
        self.send("response.output_item.done", output_index=index, item=item)

    def web_search(self, index: int, item: dict[str, Any], seconds: float) -> None:
        """A hosted web search: it runs `seconds` on the server's side; the app answers nothing."""
        ids = {"item_id": item["id"], "output_index": index}
        started = {
            "type": "web_search_call",
            "id": item["id"],
            "status": "in_progress",
            "action": {"type": "search"},
        }
        self.send("response.output_item.added", output_index=index, item=started)
        self.send("response.web_search_call.in_progress", **ids)
        self.send("response.web_search_call.searching", **ids)
        self._wait(seconds)
        self.send("response.web_search_call.completed", **ids)
        self.send("response.output_item.done", output_index=index, item=item)

    def image_generation(self, index: int, item: dict[str, Any], seconds: float) -> None:
        """A hosted drawing: one partial image, `seconds` of drawing, then the picture in the item."""
        ids = {"item_id": item["id"], "output_index": index}
        started = {"type": "image_generation_call", "id": item["id"], "status": "in_progress", "result": None}
        self.send("response.output_item.added", output_index=index, item=started)
        self.send("response.image_generation_call.in_progress", **ids)
        self.send("response.image_generation_call.generating", **ids)
        self.send(
            "response.image_generation_call.partial_image",
            **ids,
            partial_image_b64=item["result"],
            partial_image_index=0,
            output_format="png",
        )
        self._wait(seconds)
        self.send("response.image_generation_call.completed", **ids)
        self.send("response.output_item.done", output_index=index, item=item)

    def break_off(self, how: str, response: dict[str, Any]) -> None:
        problem = {"code": "server_error", "message": "The model fell over."}
        if how == "drop":
            return self._exchange.drop()
        if how == "end":
            return self.end()
        if how == "failed":
            self.send("response.failed", response={**response, "status": "failed", "error": problem})
        elif how == "incomplete":
            details = {"reason": "max_output_tokens"}
            self.send(
                "response.incomplete",
                response={**response, "status": "incomplete", "incomplete_details": details},
            )
        elif how == "flat_error":
            self.send("error", **problem, param=None)
        elif how == "nested_error":
            self.send("error", error={"type": "server_error", **problem, "param": None})
        else:
            raise ValueError(f"unknown way to break off: {how}")
        self.end()

    def end(self) -> None:
        self._exchange.chunk(b"")


class _Unanswered:
    """An exchange whose answer is lost: the request is done, then the connection closes without a word."""

    def __init__(self, exchange: _Handler):
        self._exchange = exchange

    def send_json(self, *args: Any, **kwargs: Any) -> None:
        self._exchange.drop()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Any

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the record in `OpenAIServer.requests` is the log

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        app: OpenAIServer = self.server.app
        url = urlsplit(self.path)
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.loads(raw) if raw else None
        with app._lock:
            headers = {name.lower(): value for name, value in self.headers.items()}
            app.requests.append(Request(method, url.path, headers, body))
        query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        try:
            app.handle(self, method, url.path, query, body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away (e.g. it timed out): nothing to answer

    def send_json(self, status: int, payload: Any, headers: tuple[tuple[str, str], ...] = ()) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def refuse(self, refusal: Refuse) -> None:
        kind = "server_error" if refusal.status >= 500 else "invalid_request_error"
        self.send_json(refusal.status, error_body(refusal.message, refusal.code, kind), refusal.headers)

    def chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def drop(self) -> None:
        """Close the connection without finishing the response, like a network failure."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)
