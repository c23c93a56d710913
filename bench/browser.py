"""Real Chromium pages as benchmark clients: the same calls as an emulated session, through the page's UI.

A MutationObserver in each page stamps (Date.now(), so in seconds of the wall clock) when a token first
shows and when a reply's first words appear; the Enter key's own handler stamps the send. Every stamp is
handed to the scenario on the bench's `time.monotonic()` clock, as an emulated session's are, so Chromium
pages and emulated sessions can share a room. Whether a reply
is being written and whether the busy caption shows are read from the page when asked. Full script runs
are counted from the page's own websocket: a `new_session` ForwardMsg without fragment ids.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from typing import Any

from bench.emulator import Progress

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    # Pages side by side must all keep their timers running, or background tabs tick slower.
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
]

# Runs in every page before Streamlit's own scripts. Mutations are batched per task, so a stamp is at
# most one task later than the DOM change the person would see.
OBSERVER = r"""
(() => {
  const bench = (window.__bench = {
    seen: {}, done: {}, firstWords: {}, arrived: {}, sentAt: null,
    counts: { frames: 0, bytes: 0, mutations: 0, fullRuns: 0, fragmentRuns: 0 },
  });
  const TOKEN = /\bbm\d{6}\b/g;
  const ASSISTANT = %(assistant)s;
  const stamp = (record, text) => {
    for (const token of text.match(TOKEN) || []) if (!(token in record)) record[token] = Date.now() / 1000;
  };
  const bubbles = () => {
    const all = document.querySelectorAll('[data-testid="stChatMessage"]');
    for (const bubble of Array.prototype.slice.call(all, -3)) {
      // Caption, then text. Stale elements are left over from an earlier run, not news: skip them.
      const parts = Array.prototype.filter.call(
        bubble.querySelectorAll('[data-testid="stMarkdown"]'), (p) => !p.closest('[data-stale="true"]'));
      if (parts.length < 2) continue;
      const head = parts[0].textContent || "", text = parts[1].textContent || "";
      if (!head.startsWith(ASSISTANT)) continue;
      // The bench's replies start with the token of the message they answer.
      if (head.includes("writing…")) {
        if (!text.includes("is typing…")) stamp(bench.firstWords, text);
      } else stamp(bench.done, text);
    }
  };
  new MutationObserver((mutations) => {
    bench.counts.mutations += mutations.length;
    for (const m of mutations) {
      if (m.type === "characterData") stamp(bench.seen, m.target.textContent || "");
      for (const node of m.addedNodes) stamp(bench.seen, node.textContent || "");
    }
    bubbles();
  }).observe(document, { subtree: true, childList: true, characterData: true });
  // When a token first reached the page over Streamlit's websocket, before React drew it: splits a
  // delay into the server's part and the browser's. Our listener is added first, so it runs first.
  const latin1 = new TextDecoder("latin1");
  // The length-delimited fields of a protobuf message in bytes[start, end): field number -> [start, end).
  const fields = (bytes, start, end) => {
    const found = {};
    let i = start;
    const varint = () => {
      let value = 0, shift = 0, byte;
      do { byte = bytes[i++]; value += (byte & 127) * 2 ** shift; shift += 7; } while (byte & 128);
      return value;
    };
    while (i < end) {
      const key = varint(), wire = key & 7;
      if (wire === 0) varint();
      else if (wire === 1) i += 8;
      else if (wire === 5) i += 4;
      else if (wire === 2) { const length = varint(); found[key >>> 3] = [i, i + length]; i += length; }
      else break;
    }
    return found;
  };
  // A script run starts with a ForwardMsg whose field 4 is `new_session`; a fragment's run names its
  // fragments in metadata (2) -> run (6) -> fragment_ids (2). Counted here rather than by Playwright,
  // which would copy every frame of every page out of the browser, on the core the pages share.
  const countRun = (bytes) => {
    const message = fields(bytes, 0, bytes.length);
    if (!(4 in message)) return;
    const metadata = message[2] ? fields(bytes, ...message[2]) : {};
    const run = metadata[6] ? fields(bytes, ...metadata[6]) : {};
    bench.counts[2 in run ? "fragmentRuns" : "fullRuns"] += 1;
  };
  const Native = window.WebSocket;
  window.WebSocket = function (...args) {
    const socket = new Native(...args);
    socket.addEventListener("message", (event) => {
      if (!(event.data instanceof ArrayBuffer)) return;
      bench.counts.frames += 1;
      bench.counts.bytes += event.data.byteLength;
      stamp(bench.arrived, latin1.decode(event.data));
      countRun(new Uint8Array(event.data));
    });
    return socket;
  };
  window.WebSocket.prototype = Native.prototype;
  Object.assign(window.WebSocket, { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 });
  // Capture phase: runs before Streamlit's own handler sends the message.
  document.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && e.target.tagName === "TEXTAREA") bench.sentAt = Date.now() / 1000;
  }, true);
})();
"""

PROGRESS = """() => {
  const box = document.querySelector('textarea[placeholder="Send message"]');
  const b = window.__bench || {};
  const fresh = (selector) => Array.prototype.filter.call(
    document.querySelectorAll(selector), (e) => !e.closest('[data-stale="true"]'));
  const writing = fresh('[data-testid="stChatMessage"]').some((bubble) => {
    const head = bubble.querySelector('[data-testid="stMarkdown"]');
    return !!head && head.textContent.startsWith(%(assistant)s) && head.textContent.includes("writing…");
  });
  const busy = fresh('[data-testid="stMarkdownContainer"]').some(
    (e) => (e.textContent || "").includes("is replying to"));
  return { seen: b.seen || {}, done: b.done || {}, firstWords: b.firstWords || {}, arrived: b.arrived || {},
           counts: b.counts || {},
           enabled: !!box && !box.disabled, sentAt: b.sentAt ?? null, writing, busy };
}"""


def _monotonic_shift() -> float:
    """What to add to a wall-clock moment (the page's Date.now()) to put it on time.monotonic()."""
    return time.monotonic() - time.time()


def chromium_path() -> str | None:
    return os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


class BrowserPage:
    """One Chromium tab in its own browser context (its own cookies, so its own person)."""

    def __init__(self, browser, base_url: str, name: str, *, assistant: str):
        self.name = name
        self.base_url = base_url
        self.assistant = assistant
        self.progress = Progress()
        self.error: str | None = None
        self._browser = browser
        self._context = None
        self._page = None
        self._devtools = None
        self._progress_js = PROGRESS % {"assistant": json.dumps(assistant)}

    async def connect(self) -> None:
        self._context = await self._browser.new_context(viewport={"width": 1000, "height": 800})
        await self._context.add_init_script(OBSERVER % {"assistant": json.dumps(self.assistant)})
        self._page = await self._context.new_page()
        self._devtools = await self._context.new_cdp_session(self._page)
        await self._devtools.send("Performance.enable")  # Chromium's own counters of the renderer
        await self._page.goto(self.base_url)

    async def join(self, nickname: str, timeout: float) -> None:
        page = self._page
        await page.get_by_role("textbox", name="Nickname").fill(nickname, timeout=timeout * 1000)
        await page.get_by_role("button", name="Join").click(timeout=timeout * 1000)
        await page.get_by_placeholder("Send message").wait_for(timeout=timeout * 1000)
        await self.refresh()

    async def post(self, text: str) -> float:
        box = self._page.get_by_placeholder("Send message")
        await box.fill(text)
        await box.press("Enter")
        state = await self._page.evaluate(self._progress_js)
        return state["sentAt"] + _monotonic_shift()

    async def refresh(self) -> Progress:
        """Read the page's stamps into `progress`."""
        try:
            state = await self._page.evaluate(self._progress_js)
        except Exception as error:  # a crashed or closed page: report it, do not hang the run
            self.error = f"page failed: {error}"
            return self.progress
        progress, shift = self.progress, _monotonic_shift()

        def stamps(key: str) -> dict[str, float]:
            return {token: at + shift for token, at in state[key].items()}

        progress.seen, progress.done = stamps("seen"), stamps("done")
        progress.first_words, progress.input_enabled = stamps("firstWords"), state["enabled"]
        progress.arrived, progress.counts = stamps("arrived"), state["counts"]
        progress.full_runs = state["counts"].get("fullRuns", 0)
        progress.fragment_runs = state["counts"].get("fragmentRuns", 0)
        progress.writing, progress.busy = state["writing"], state["busy"]
        progress.joined = True
        return progress

    async def main_thread(self) -> tuple[float, float]:
        """Seconds the renderer's main thread spent in tasks so far (running or waiting for a core), and
        the renderer's clock in seconds, from Chromium's performance counters."""
        reply = await self._devtools.send("Performance.getMetrics")
        metrics = {m["name"]: m["value"] for m in reply["metrics"]}
        return metrics["TaskDuration"], metrics["Timestamp"]

    async def size(self) -> dict[str, Any]:
        """How big the page is now: its chat bubbles, DOM nodes, and JS heap after a garbage collection."""
        await self._devtools.send("HeapProfiler.collectGarbage")
        heap = await self._devtools.send("Runtime.getHeapUsage")
        counts = await self._page.evaluate(
            """() => ({ bubbles: document.querySelectorAll('[data-testid="stChatMessage"]').length,
                        nodes: document.getElementsByTagName("*").length })"""
        )
        return {
            "bubbles": counts["bubbles"],
            "dom_nodes": counts["nodes"],
            "js_heap_mb": round(heap["usedSize"] / 2**20, 1),
        }

    async def start_trace(self, categories: list[str]) -> None:
        """A Chromium performance trace (of the whole browser: every page's renderer is in it)."""
        await self._browser.start_tracing(page=self._page, categories=categories)

    async def stop_trace(self) -> bytes:
        return await self._browser.stop_tracing()

    async def close(self) -> None:
        if self._context is not None:
            await self._context.close()


async def launch(playwright, path: str):
    """Headless Debian Chromium; never a downloaded browser."""
    return await playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
