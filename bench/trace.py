"""Where a real browser spends its time: a Chromium performance trace, summed up.

`python -m bench.run --chromium 5 --emulated '' --trace` records a trace of every page while the
measured messages go round (one trace for the whole browser: each page is a renderer of its own), and
`summarize` reads it the way the DevTools performance panel does:
- each renderer's main thread (`CrRendererMain`): how busy it was, and its self time by kind of work
  (scripting, style, layout, paint, garbage collection, parsing), from the timeline's complete events;
- the JavaScript functions it ran most, from the V8 sampling profiler's chunks (the names are minified
  in Streamlit's bundle, but each comes with its file, which says which part of the frontend it is).

The page-side counts (frames and bytes received, DOM mutations) come from the bench's observer
(bench/browser.py) and are added by the scenario.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

CATEGORIES = [
    "devtools.timeline",
    "disabled-by-default-devtools.timeline",
    "v8.execute",
    "v8",
    "blink",
    "blink.user_timing",
    "toplevel",
    "disabled-by-default-v8.cpu_profiler",
]

KINDS = {  # timeline event name -> kind of work, as the DevTools summary groups them
    "FunctionCall": "scripting",
    "EvaluateScript": "scripting",
    "v8.callFunction": "scripting",
    "v8.run": "scripting",
    "V8.Execute": "scripting",
    "TimerFire": "scripting",
    "FireAnimationFrame": "scripting",
    "EventDispatch": "scripting",
    "RunMicrotasks": "scripting",
    "v8.compile": "scripting",
    "v8.compileModule": "scripting",
    "v8.evaluateModule": "scripting",
    "V8.CompileCode": "scripting",
    "v8.produceCache": "scripting",
    "MinorGC": "garbage collection",
    "MajorGC": "garbage collection",
    "V8.GC_SCAVENGER": "garbage collection",
    "V8.GC_MARK_COMPACTOR": "garbage collection",
    "V8.GCScavenger": "garbage collection",
    "V8.GCIncrementalMarking": "garbage collection",
    "V8.GCFinalizeMC": "garbage collection",
    "BlinkGC.AtomicPhase": "garbage collection",
    "UpdateLayoutTree": "style",
    "RecalculateStyles": "style",
    "ParseAuthorStyleSheet": "style",
    "Layout": "layout",
    "UpdateLayer": "layout",
    "UpdateLayerTree": "layout",
    "HitTest": "layout",
    "IntersectionObserverController::computeIntersections": "layout",
    "PrePaint": "paint",
    "Paint": "paint",
    "PaintImage": "paint",
    "Layerize": "paint",
    "CompositeLayers": "paint",
    "Commit": "paint",
    "UpdateLayoutTreeAndLayout": "layout",
    "ParseHTML": "parsing",
}


def load(path: Path) -> list[dict[str, Any]]:
    data = json.loads(Path(path).read_text())
    return data["traceEvents"] if isinstance(data, dict) else data


def _renderer_main_threads(events: list[dict[str, Any]]) -> set[tuple[int, int]]:
    return {
        (e["pid"], e["tid"])
        for e in events
        if e.get("ph") == "M" and e.get("name") == "thread_name" and e["args"].get("name") == "CrRendererMain"
    }


def _self_times(events: list[dict[str, Any]]) -> tuple[Counter, float]:
    """Self time (ms) by event name of one thread's complete events, and the time its top-level tasks took."""
    spans = sorted(
        (e for e in events if e.get("ph") == "X" and "dur" in e), key=lambda e: (e["ts"], -e["dur"])
    )
    totals: Counter = Counter()
    stack: list[list[Any]] = []  # [end, name, child time]
    busy = 0.0

    def close(until: float) -> None:
        while stack and stack[-1][0] <= until:
            end, name, children, duration = stack.pop()
            totals[name] += max(duration - children, 0) / 1000
            if stack:
                stack[-1][2] += duration

    for event in spans:
        close(event["ts"])
        if not stack:
            busy += event["dur"] / 1000
        stack.append([event["ts"] + event["dur"], event["name"], 0, event["dur"]])
    close(float("inf"))
    return totals, busy


def _profile(events: list[dict[str, Any]], pid: int, top: int) -> list[dict[str, Any]]:
    """The JavaScript functions the V8 sampler found running most often in this renderer (self time)."""
    nodes: dict[tuple[str, int], dict[str, Any]] = {}
    samples: Counter = Counter()
    for event in events:
        if event.get("pid") != pid or event.get("name") != "ProfileChunk":
            continue
        profile_id = str(event.get("id"))
        data = event["args"]["data"]
        profile = data.get("cpuProfile", {})
        for node in profile.get("nodes", []):
            nodes[(profile_id, node["id"])] = node["callFrame"]
        deltas = data.get("timeDeltas", [])
        for sample, delta in zip(profile.get("samples", []), deltas, strict=False):
            samples[(profile_id, sample)] += delta / 1000
    by_function: Counter = Counter()
    for key, ms in samples.items():
        frame = nodes.get(key)
        if frame is None:
            continue
        url = frame.get("url", "").rsplit("/", 1)[-1]
        name = frame.get("functionName") or "(anonymous)"
        by_function[f"{name} {url}".strip() if url else name] += ms
    return [{"function": f, "ms": round(ms, 1)} for f, ms in by_function.most_common(top)]


def summarize(events: list[dict[str, Any]], *, top: int = 12) -> dict[str, Any]:
    """Per renderer main thread: how busy, self time by kind and by event name, and the hottest functions."""
    timed = [e for e in events if "ts" in e and e.get("ph") in ("X", "B", "E", "I", "i")]
    if not timed:
        return {"renderers": []}
    start = min(e["ts"] for e in timed)
    end = max(e["ts"] + e.get("dur", 0) for e in timed)
    seconds = (end - start) / 1e6
    threads = defaultdict(list)
    mains = _renderer_main_threads(events)
    for event in events:
        key = (event.get("pid"), event.get("tid"))
        if key in mains:
            threads[key].append(event)
    renderers = []
    for (pid, _), thread_events in sorted(threads.items()):
        by_name, busy = _self_times(thread_events)
        if busy < 1:
            continue  # a renderer that did nothing (a spare process)
        kinds: Counter = Counter()
        for name, ms in by_name.items():
            kinds[KINDS.get(name, "other")] += ms
        renderers.append(
            {
                "pid": pid,
                "busy_ms": round(busy, 1),
                "busy_share": round(busy / 1000 / seconds, 3) if seconds else None,
                "by_kind_ms": {k: round(v, 1) for k, v in kinds.most_common()},
                "by_event_ms": {k: round(v, 1) for k, v in by_name.most_common(top)},
                "functions": _profile(events, pid, top),
            }
        )
    return {"seconds": round(seconds, 2), "renderers": renderers}


def brief(summary: dict[str, Any]) -> str:
    """A few lines a person reads: each renderer's busy share and its biggest kinds of work."""
    lines = [f"trace of {summary.get('seconds', 0):g} s"]
    for r in summary["renderers"]:
        kinds = ", ".join(f"{k} {v:g} ms" for k, v in list(r["by_kind_ms"].items())[:5])
        lines.append(f"renderer {r['pid']}: main thread busy {r['busy_share']:.0%} ({kinds})")
        for f in r["functions"][:5]:
            lines.append(f"    {f['ms']:>8.1f} ms  {f['function']}")
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    print(brief(summarize(load(Path(sys.argv[1])))))
