"""What keeping a room's notes costs: model calls, tokens and server CPU per 100 messages.

The real app (`streamlit run app.py`) on the OpenAI path, talking to the project's OpenAI-protocol test
server; one emulated person posts `--messages` messages one by one, each answered (reply policy "every
message"), and the same run is made twice: with the assistant keeping the notes
(`ROOM_NOTES_BY_ASSISTANT=on`, the default) and without. Every fifth message says something the test
server's notes rule takes for a decision, an action item or an open question, so some notes requests
change the notes and the rest answer "no change". The difference between the two runs is the cost of the
notes: the requests with the notes' JSON schema and their tokens, as the server reported them, and the
app server's CPU seconds (psutil, user + system, from the first post until the room is quiet).

    python -m bench.notes                       # 100 messages, both runs (about a minute)
    python -m bench.notes --messages 10 --json out.json

Prints numbers; it asserts nothing about them (docs/notes.md has a run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.emulator import EmulatedSession
from bench.model import BenchModel
from bench.run import machine
from bench.server import AppServer

log = logging.getLogger(__name__)

API_KEY = "sk-bench"
ROOM = "notes"
ASSISTANT = "CatGPT"
TIMEOUT_SECONDS = 60.0
QUIET_SECONDS = 1.5  # no request to the model for this long after the last reply: the room is done
# One in five messages is something for the notes (the test server's rule: "let's ...", "Name will ...",
# a question); the rest is chat.
LINES = (
    "Let's meet on Friday {n}",
    "the weather is fine today {n}",
    "Ann will book room {n}",
    "I had coffee with the team {n}",
    "Who brings the projector {n}?",
    "sounds good to me {n}",
    "we talked about the budget {n}",
    "the train was late again {n}",
    "I read the draft {n}",
    "see you all later {n}",
)


class NotesModel(BenchModel):
    """The bench's model, which also notes what each finished response was for and what it cost."""

    def __init__(self, api_key: str) -> None:
        super().__init__(api_key)
        self.costs: list[tuple[str, int]] = []  # ("room_notes" | "turn" | other schema, total tokens)
        self._costs_lock = threading.Lock()

    def _complete(self, response: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        done = super()._complete(response, body)
        kind = ((body.get("text") or {}).get("format") or {}).get("name") or "turn"
        with self._costs_lock:
            self.costs.append((kind, done["usage"]["total_tokens"]))
        return done


async def one_run(messages: int, notes: bool, log_dir: Path) -> dict[str, Any]:
    with NotesModel(api_key=API_KEY) as model:
        env = {
            "OPENAI_API_KEY": API_KEY,
            "OPENAI_BASE_URL": model.base_url,
            "ASSISTANT_NAME": ASSISTANT,
            "CONVERSATION_MODE": "server",
            "ROOM_NOTES_BY_ASSISTANT": "on" if notes else "off",
            "WORD_DELAY_MS": "0",
            "RATE_LIMIT_MESSAGES": "1000",
            "RATE_LIMIT_SECONDS": "1",
        }
        server = AppServer(env, log_dir / f"streamlit-notes-{'on' if notes else 'off'}.log")
        writer = EmulatedSession(server.url, "Bob", f"room={ROOM}", assistant=ASSISTANT, seed=1)
        try:
            await writer.connect()
            await writer.join("Bob", TIMEOUT_SECONDS)
            before, started = server.usage(), time.monotonic()
            for number in range(messages):
                token = f"bm7{number:05d}"
                await writer.wait_for(lambda: writer.progress.input_enabled, TIMEOUT_SECONDS, "the box")
                await writer.post(LINES[number % len(LINES)].format(n=token))
                await writer.wait_for(
                    lambda t=token: t in writer.progress.done, TIMEOUT_SECONDS, f"the reply to {token}"
                )
            await _quiet(model)
            after, seconds = server.usage(), time.monotonic() - started
        finally:
            await writer.close()
            server.stop()
    notes_tokens = [tokens for kind, tokens in model.costs if kind == "room_notes"]
    turn_tokens = [tokens for kind, tokens in model.costs if kind == "turn"]
    return {
        "messages": messages,
        "notes": notes,
        "notes_calls": len(notes_tokens),
        "notes_tokens": sum(notes_tokens),
        "turn_calls": len(turn_tokens),
        "turn_tokens": sum(turn_tokens),
        "server_cpu_seconds": round(after.cpu_seconds - before.cpu_seconds, 2),
        "seconds": round(seconds, 1),
    }


async def _quiet(model: NotesModel) -> None:
    """Wait until the model has had no request for `QUIET_SECONDS` (the last notes request is done)."""
    deadline = time.monotonic() + TIMEOUT_SECONDS
    count, since = len(model.requests), time.monotonic()
    while time.monotonic() - since < QUIET_SECONDS:
        if time.monotonic() > deadline:
            raise TimeoutError("the room never went quiet")
        await asyncio.sleep(0.1)
        if len(model.requests) != count:
            count, since = len(model.requests), time.monotonic()


async def measure(messages: int, log_dir: Path) -> dict[str, Any]:
    runs = [await one_run(messages, notes, log_dir) for notes in (True, False)]
    return {**machine(), "runs": runs}


def per_hundred(value: float, messages: int) -> float:
    return round(value * 100 / messages, 2)


def show(result: dict[str, Any]) -> str:
    rows = [
        "| notes kept by the assistant | messages | notes calls | notes tokens | turn calls | turn tokens "
        "| server CPU (s) | wall (s) | per 100 messages: notes calls / notes tokens / CPU (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for run in result["runs"]:
        n = run["messages"]
        rows.append(
            f"| {'on' if run['notes'] else 'off'} | {n} | {run['notes_calls']} | {run['notes_tokens']:,} "
            f"| {run['turn_calls']} | {run['turn_tokens']:,} | {run['server_cpu_seconds']} | {run['seconds']} "
            f"| {per_hundred(run['notes_calls'], n)} / {per_hundred(run['notes_tokens'], n):,} "
            f"/ {per_hundred(run['server_cpu_seconds'], n)} |"
        )
    on, off = result["runs"]
    extra = on["server_cpu_seconds"] - off["server_cpu_seconds"]
    share = on["notes_tokens"] / max(1, on["notes_tokens"] + on["turn_tokens"])
    rows.append(
        f"\nKeeping the notes: {per_hundred(on['notes_calls'], on['messages'])} calls and "
        f"{per_hundred(on['notes_tokens'], on['messages']):,.0f} tokens per 100 messages ({share:.0%} of "
        f"the room's tokens), {per_hundred(extra, on['messages']):+.2f} s of server CPU per 100 messages."
    )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100, help="messages posted in each run")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    with tempfile.TemporaryDirectory() as logs:
        result = asyncio.run(measure(args.messages, Path(logs)))
    print(show(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
