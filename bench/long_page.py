"""A page left open while a room grows: how fast a new message reaches it, and how big it is, in an
almost empty room and after thousands of messages.

One person's Chromium page stays open the whole time; another person, an emulated tab, fills the room one
message at a time, each answered by the offline assistant. Before and after the filling, the emulated
person sends probes one by one; the delay of each is from its send to the moment the open page shows it
(the page's own MutationObserver, bench/browser.py). The page's DOM nodes and JS heap (after a garbage
collection) are read at each of the two points.

    python -m bench.long_page                       # 2,000 messages, 20 probes at each point
    python -m bench.long_page --messages 300 --probes 5 --json out.json

Prints numbers; it asserts nothing about them (docs/long-page.md has a run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.browser import BrowserPage, chromium_path, launch
from bench.emulator import EmulatedSession
from bench.run import machine
from bench.scenario import percentiles
from bench.server import AppServer

log = logging.getLogger(__name__)

ROOM = "long"
ASSISTANT = "CatGPT"  # the offline assistant's name
TIMEOUT_SECONDS = 60.0
ENV = {
    "WORD_DELAY_MS": "0",  # the filling needs no pacing; the probes measure a person's message
    "RATE_LIMIT_MESSAGES": "1000",
    "RATE_LIMIT_SECONDS": "1",
    "HEARTBEAT_TIMEOUT_SECONDS": "600",
    "LEAVE_GRACE_SECONDS": "600",
}


async def measure(messages: int, probes: int, log_dir: Path) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    path = chromium_path()
    if path is None:
        raise SystemExit("no Chromium here: apt-get install chromium")
    server = AppServer(ENV, log_dir / "streamlit.log")
    result: dict[str, Any] = {"messages": messages, "probes": probes, **machine()}
    try:
        async with async_playwright() as playwright:
            browser = await launch(playwright, path)
            reader = BrowserPage(browser, f"{server.url}?room={ROOM}", "Ann", assistant=ASSISTANT)
            writer = EmulatedSession(server.url, "Bob", f"room={ROOM}", assistant=ASSISTANT, seed=1)
            try:
                await reader.connect()
                await reader.join("Ann", TIMEOUT_SECONDS)
                await writer.connect()
                await writer.join("Bob", TIMEOUT_SECONDS)
                posts = 0  # the room holds a welcome line, two joins, and every post with its reply
                result["empty"] = await _probe(reader, writer, probes, first=0)
                result["empty"]["room_messages"] = 3 + 2 * probes
                posts += probes
                started = time.monotonic()
                while 3 + 2 * posts < messages:
                    await _say(writer, f"History {posts} bm9{posts:05d}")
                    posts += 1
                    if posts % 100 == 0:
                        log.info("%d messages in the room", 3 + 2 * posts)
                result["fill_seconds"] = round(time.monotonic() - started, 1)
                result["long"] = await _probe(reader, writer, probes, first=probes)
                result["long"]["room_messages"] = 3 + 2 * (posts + probes)
            finally:
                await writer.close()
                await reader.close()
                await browser.close()
    finally:
        server.stop()
    return result


async def _say(writer: EmulatedSession, text: str) -> None:
    """Post and wait for the reply to it to be finished."""
    token = text.rsplit(" ", 1)[1]
    await writer.wait_for(lambda: writer.progress.input_enabled, TIMEOUT_SECONDS, "the box")
    await writer.post(text)
    await writer.wait_for(lambda: token in writer.progress.done, TIMEOUT_SECONDS, f"the reply to {token}")


async def _probe(reader: BrowserPage, writer: EmulatedSession, probes: int, *, first: int) -> dict[str, Any]:
    """Delays of `probes` messages to the open page, one at a time, then the page's size."""
    delays, arrivals = [], []
    for number in range(first, first + probes):
        token = f"bm1{number:05d}"
        await writer.wait_for(lambda: writer.progress.input_enabled, TIMEOUT_SECONDS, "the box")
        sent = time.time()  # the page stamps with Date.now(): the same clock
        await writer.post(f"Probe {token}")
        deadline = time.monotonic() + TIMEOUT_SECONDS
        while token not in (await reader.refresh()).seen:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{token} never reached the open page")
            await asyncio.sleep(0.05)
        delays.append(reader.progress.seen[token] - sent)
        if token in reader.progress.arrived:  # its frame reached the page: the rest is the browser's
            arrivals.append(reader.progress.arrived[token] - sent)
        await writer.wait_for(
            lambda t=token: t in writer.progress.done, TIMEOUT_SECONDS, f"the reply to {token}"
        )
    await asyncio.sleep(1.0)  # the last reply's row of actions comes a little later
    return {"delay": percentiles(delays), "arrival": percentiles(arrivals), **await reader.size()}


def show(result: dict[str, Any]) -> str:
    rows = [
        "| the open page | room messages | delay p50 / p95 / max (ms) | of which to the page's websocket, p50"
        " | bubbles | DOM nodes | JS heap (MB) |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, name in (("empty", "in an almost empty room"), ("long", "open through the whole room")):
        row = result[key]
        delay = row["delay"]
        rows.append(
            f"| {name} | {row['room_messages']} | {delay['p50_ms']} / {delay['p95_ms']} / {delay['max_ms']} "
            f"| {row['arrival']['p50_ms']} | {row['bubbles']} | {row['dom_nodes']} | {row['js_heap_mb']} |"
        )
    ratio = result["long"]["delay"]["p50_ms"] / max(1, result["empty"]["delay"]["p50_ms"])
    rows.append(f"\np50 delay, long over empty: {ratio:.2f}x; filling took {result['fill_seconds']} s")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000, help="how long the room grows")
    parser.add_argument("--probes", type=int, default=20, help="messages timed at each point")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    with tempfile.TemporaryDirectory() as logs:
        result = asyncio.run(measure(args.messages, args.probes, Path(logs)))
    print(show(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
