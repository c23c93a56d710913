"""What one message and its reply send a page that only watches: every ForwardMsg delta, by kind.

`python -m bench.deltas` starts the app (as bench.run does, not pinned), joins two emulated sessions,
lets one send a message and counts what the other receives while the message arrives, while the reply
grows and once it is finished (its row of actions included). Each delta is a message to the page, and
the server wakes its event loop for each one, for every page: the fewer, the cheaper a message.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter
from pathlib import Path

from bench.emulator import EmulatedSession
from bench.model import BenchModel
from bench.scenario import API_KEY, ASSISTANT, QUERY, Plan, app_environment
from bench.server import ROOT, AppServer

VERBOSE = False
QUIET_SECONDS = 1.5  # what a page receives this long after the reply finished still counts (its row)


def kind_of(message) -> str:
    delta = message.delta
    which = delta.WhichOneof("type")
    if which == "new_element":
        element = delta.new_element
        kind = element.WhichOneof("type")
        if kind == "markdown":
            return "caption" if element.markdown.element_type == 2 else "markdown"
        return kind
    if which == "add_block":
        return "block:" + (delta.add_block.WhichOneof("type") or "?")
    return which or "?"


async def measure(server_url: str, model: BenchModel) -> dict[str, Counter]:
    sender = EmulatedSession(server_url, "sender", QUERY, assistant=ASSISTANT, seed=1)
    watcher = EmulatedSession(server_url, "watcher", QUERY, assistant=ASSISTANT, seed=2)
    for session in (sender, watcher):
        await session.connect()
        await session.join(session.name, 30)
    await asyncio.sleep(3)  # both pages in their live runs
    log: list[tuple[float, str]] = []
    handle = watcher._handle

    def counting(message, now):
        if message.WhichOneof("type") == "delta":
            log.append((now, kind_of(message)))
            if VERBOSE:
                body = (
                    message.delta.new_element.markdown.body
                    if kind_of(message) in ("caption", "markdown")
                    else ""
                )
                print(f"{now:.3f} {list(message.metadata.delta_path)} {kind_of(message)} {body[:60]!r}")
        handle(message, now)

    watcher._handle = counting
    model.delta_delay, model.reply_words = 0.05, 40
    token = "bm000001"
    await sender.post(f"Hello {token}")
    await watcher.wait_for(lambda: token in watcher.progress.first_words, 30, "the reply's first words")
    await watcher.wait_for(lambda: token in watcher.progress.done, 30, "the finished reply")
    await asyncio.sleep(QUIET_SECONDS)
    seen, first, done = (
        watcher.progress.seen[token],
        watcher.progress.first_words[token],
        watcher.progress.done[token],
    )
    phases = {"new message": Counter(), "reply growing": Counter(), "reply finished": Counter()}
    for at, kind in log:
        phase = "new message" if at < first - 0.001 else "reply growing" if at < done else "reply finished"
        phases[phase][kind] += 1
    print(
        f"message shown after the post: +{seen - log[0][0]:.2f} s; reply began +{first - seen:.2f} s; "
        f"finished +{done - seen:.2f} s"
    )
    await sender.close()
    await watcher.close()
    return phases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--verbose", action="store_true", help="print every delta as it comes")
    global VERBOSE
    VERBOSE = parser.parse_args().verbose
    with BenchModel(api_key=API_KEY) as model:
        env = app_environment(Plan("live", "emulator", 2), model.base_url)
        server = AppServer(env, ROOT / "test-results" / "bench-logs" / "streamlit-deltas.log")
        started = time.monotonic()
        try:
            phases = asyncio.run(measure(server.url, model))
        finally:
            server.stop()
    for phase, counts in phases.items():
        print(
            f"{phase}: {sum(counts.values())} deltas: "
            + ", ".join(f"{k} {n}" for k, n in counts.most_common())
        )
    print(f"({time.monotonic() - started:.0f} s; app in {Path(ROOT).name})")


if __name__ == "__main__":
    main()
