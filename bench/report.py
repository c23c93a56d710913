"""The benchmark's outputs: bench.json (everything measured), bench.md (tables and goals), bench.png.

Pure formatting: it reads the summary `bench.run` builds and never measures anything itself. Given an
earlier summary (`--before`), the Markdown and the chart show it next to this one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# Other processes' share of the server's core that makes a run worth repeating (bench.run) and flagging.
DISTURBED_PERCENT = 25.0
COLORS = {"live": "#1f77b4", "poll": "#ff7f0e"}  # other modes are drawn grey
REDIS_COLOR = "#2ca02c"  # runs through Redis, several processes on the server's one core
REDIS_OWN_CORES_COLOR = "#9467bd"  # ... each process on a core of its own
BARE_COLOR = "#7f7f7f"  # the bare page (bench/bare.py)
MARKERS = {"chromium": "o", "emulator": "s", "mixed": "^"}
EVERY_OTHER_PAGE = "shown on every other page, p95"  # the one name of the delay the goals are about
READABLE_TICKS = tuple(m * 10**e for e in range(-3, 4) for m in (1, 2, 5))  # log axes read as plain numbers


# --- numbers as text ---------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.0f} ms"


def _stats(stats: dict[str, Any] | None, keys: tuple[str, ...] = ("p50_ms", "p95_ms", "max_ms")) -> str:
    if not stats or not stats.get("n"):
        return "–"
    return " / ".join(_ms(stats[k]) for k in keys)


def _percent_pair(share: dict[str, Any] | None) -> str:
    return f"{share['mean']} / {share['max']}" if share else "–"


def _num(value: float | None, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _p95(run: dict[str, Any], key: str) -> float | None:
    return (run.get(key) or {}).get("p95_ms")


def _modes(*summaries: dict[str, Any] | None) -> list[str]:
    """The refresh modes the runs measured, in the order they first appear."""
    found = [r["plan"]["mode"] for s in summaries if s for r in s["runs"]]
    return list(dict.fromkeys(found))


def _series(run: dict[str, Any]) -> str:
    """A line on the chart: the refresh mode, the store when it is Redis, and whether it is the bare page."""
    mode = run["plan"]["mode"]
    if is_bare(run):
        return f"{mode}, bare page"
    return f"{mode}, {store(run)}" if run["plan"].get("redis") else mode


def is_bare(run: dict[str, Any]) -> bool:
    return run["plan"].get("server") == "bare"


def clients(run: dict[str, Any]) -> str:
    """Who was in the room, in words."""
    plan = run["plan"]
    n = plan["sessions"]
    if plan["clients"] == "mixed":
        browsers = plan.get("browsers", 1)
        page = "one Chromium page" if browsers == 1 else f"{browsers} Chromium pages"
        return f"{page} among {n} sessions"
    return f"{n} Chromium pages" if plan["clients"] == "chromium" else f"{n} emulated sessions"


def seat_p95(run: dict[str, Any]) -> float | None:
    """Shown on every other page, p95, counting only the Chromium pages: the seat's figure."""
    return _p95(run, "delivery_to_browsers")


def renderer_ms(run: dict[str, Any]) -> float | None:
    """The renderer main thread's time per message (TaskDuration), mean over the Chromium pages."""
    return ((run.get("per_message") or {}).get("renderer_main_thread_ms") or {}).get("mean")


def server_cpu_ms(run: dict[str, Any]) -> float | None:
    """The server's CPU per message per session while the messages went round, in ms."""
    return (run.get("per_message") or {}).get("server_cpu_ms_per_session")


def _state(run: dict[str, Any]) -> str:
    state = []
    if run.get("refused"):
        state.append("refused by the app: " + run["refused"][:100])
    if run.get("error"):
        state.append("error: " + run["error"][:100])
    if run.get("overloaded"):
        state.append(f"overloaded ({run.get('joined', 0)} joined)")
    others = disturbance(run)
    if others >= DISTURBED_PERCENT:
        state.append(f"disturbed: other processes took {others:.0f} % of the server's core")
    if run.get("dropped"):
        state.append(f"{run['dropped']} of {run['posts']} messages dropped by the app (shown on no page)")
    missing = {k: v for k, v in (run.get("missing") or {}).items() if v}
    if missing:
        state.append("missing " + ", ".join(f"{k} {v}" for k, v in missing.items()))
    return "; ".join(state) or "ok"


def disturbance(run: dict[str, Any]) -> float:
    """The most of the server's core (in %) other processes took during the idle window or the messages."""
    values = (
        (run.get("idle") or {}).get("others_on_server_core_percent"),
        run.get("others_on_server_core_while_posting_percent"),
    )
    return max((v for v in values if v is not None), default=0.0)


def _refresh_requests(api: dict[str, Any]) -> int | None:
    """Requests the model got that no turn explains: while joining and idle, or besides a turn's response."""
    if not api:
        return None
    return (
        api.get("requests_while_joining_and_idle", 0)
        + api.get("requests_between_turns", 0)  # bench.json files from before messages overlapped
        + api.get("requests_besides_responses", 0)
    )


def _per_turn(api: dict[str, Any]) -> str:
    turns = api.get("responses_per_turn")
    if isinstance(turns, list):  # bench.json files from before messages overlapped: one count per turn
        return "–" if not turns else "/".join(sorted({str(t) for t in turns}))
    return _num(turns, 2)


def streaming_share(run: dict[str, Any]) -> float | None:
    """Server CPU while a reply streamed, as a share of its core."""
    return (run.get("streaming") or {}).get("share_of_core")


def full_runs_per_turn(run: dict[str, Any]) -> float | None:
    """Full script runs per turn of a page whose person did nothing."""
    return (run.get("full_runs") or {}).get("per_session_per_turn")


def store(run: dict[str, Any]) -> str:
    """Where the room lived: "memory" (one process) or "Redis, P processes" (on one core, or a core each)."""
    plan = run["plan"]
    if not plan.get("redis"):
        return "memory"
    processes = plan.get("processes", 1)
    if plan.get("own_cores"):
        return f"Redis, {processes} processes, a core each"
    return f"Redis, {processes} processes" + (
        ", one core" if run.get("server_cores") and processes > 1 else ""
    )


def rows(summary: dict[str, Any]) -> list[dict[str, str]]:
    out = []
    for run in summary["runs"]:
        plan, idle, api = run["plan"], run.get("idle") or {}, run.get("api") or {}
        redis = run.get("redis") or {}
        share = idle.get("server_cpu_share_of_core")
        streaming = streaming_share(run)
        runs = run.get("full_runs") or {}
        out.append(
            {
                "mode": plan["mode"],
                "server": "bare page" if is_bare(run) else "app",
                "clients": clients(run),
                "store": store(run),
                "N": str(plan["sessions"]),
                "idle CPU per session (ms/s)": _num(idle.get("server_cpu_ms_per_session_s"), 2),
                "idle server CPU (% of a core)": _num(None if share is None else 100 * share, 0),
                "RSS per session (MB)": _num(idle.get("server_rss_mb_per_session"), 2),
                "streaming CPU (% of a core)": _num(None if streaming is None else 100 * streaming, 0),
                "full runs per turn, passive page": (
                    "–" if not runs else f"{_num(runs.get('per_session_per_turn'), 2)} ({runs.get('total')})"
                ),
                "sent during a reply": (
                    "–"
                    if "sent_during_reply" not in run
                    else f"{run['sent_during_reply']}/{run.get('posts')}"
                ),
                "message shown, p50 / p95 / max": _stats(run.get("delivery")),
                EVERY_OTHER_PAGE: _ms(_p95(run, "delivery_to_everyone")),
                "... on the Chromium pages": _ms(seat_p95(run)),
                "renderer main thread per message (ms)": _num(renderer_ms(run), 0),
                "server CPU per message per session (ms)": _num(server_cpu_ms(run), 2),
                "messages": str(run.get("posts", "–")),
                "first words, sender p50 / p95": _stats(run.get("first_word_sender"), ("p50_ms", "p95_ms")),
                "first words, others p50 / p95": _stats(run.get("first_word_others"), ("p50_ms", "p95_ms")),
                "API calls per turn": _per_turn(api),
                "API calls on refresh or idle": _num(_refresh_requests(api), 0),
                "Redis commands per message": _num(redis.get("commands_per_message"), 0),
                "Redis commands per idle session per s": _num(redis.get("idle_commands_per_session_s"), 2),
                "state": _state(run),
            }
        )
    return out


def table(summary: dict[str, Any]) -> str:
    lines = rows(summary)
    if not lines:
        return "(no runs)"
    head = list(lines[0])
    text = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    text += ["| " + " | ".join(line[h] for h in head) + " |" for line in lines]
    return "\n".join(text)


# --- the goals ---------------------------------------------------------------------------------------


def _find(
    summary: dict[str, Any],
    mode: str,
    kind: str,
    n: int | None = None,
    *,
    redis: bool = False,
    own_cores: bool = False,
) -> list[dict[str, Any]]:
    """The app's runs (not the bare page's) of one kind of client and size."""
    return [
        r
        for r in summary["runs"]
        if r["plan"]["mode"] == mode
        and r["plan"]["clients"] == kind
        and (n is None or r["plan"]["sessions"] == n)
        and bool(r["plan"].get("redis")) == redis
        and bool(r["plan"].get("own_cores")) == own_cores
        and not is_bare(r)
    ]


# --- the app beside the bare page ----------------------------------------------------------------------


def pairs(summary: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
    """Each of the app's runs in memory with the bare page's run of the same row (None if not measured)."""

    def row(r: dict[str, Any]) -> tuple:
        plan = r["plan"]
        return (
            plan["mode"],
            plan["clients"],
            plan["sessions"],
            plan.get("browsers", 1),
            bool(plan.get("redis")),
        )

    bare = {row(r): r for r in summary["runs"] if is_bare(r)}
    return [(r, bare.get(row(r))) for r in summary["runs"] if not is_bare(r) and not r["plan"].get("redis")]


def _ratio_text(ours: dict[str, Any], bare: dict[str, Any] | None, read) -> str:
    a, b = read(ours), read(bare) if bare else None
    return "–" if a is None or not b else f"{a / b:.1f}x"


def seat_table(summary: dict[str, Any]) -> str:
    """Every row: the app's figure, the bare page's, and the ratio."""
    columns = [
        (EVERY_OTHER_PAGE, lambda r: _p95(r, "delivery_to_everyone"), _ms),
        ("... on the Chromium pages", seat_p95, _ms),
        ("renderer main thread per message (ms, mean over the pages)", renderer_ms, lambda v: _num(v, 0)),
        ("server CPU per message per session (ms)", server_cpu_ms, lambda v: _num(v, 2)),
    ]
    head = ["row", *(f"{name}: ours / bare / ratio" for name, _, _ in columns), "messages"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for ours, bare in pairs(summary):
        cells = [clients(ours) + ("" if ours["plan"]["mode"] == "live" else f" ({ours['plan']['mode']})")]
        for _, read, show in columns:
            if read(ours) is None and (not bare or read(bare) is None):
                cells.append("–")
                continue
            b = show(read(bare)) if bare else "not measured"
            cells.append(f"{show(read(ours))} / {b} / {_ratio_text(ours, bare, read)}")
        cells.append(f"{ours.get('posts', '–')} / {bare.get('posts', '–') if bare else '–'}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _verdict(checks: list[tuple[bool, str]]) -> tuple[str, str]:
    """('met' | 'not met' | 'not measured', the evidence)."""
    if not checks:
        return "not measured", "no run"
    met = all(ok for ok, _ in checks)
    return ("met" if met else "not met"), "; ".join(text for _, text in checks)


def goals(summary: dict[str, Any]) -> list[dict[str, str]]:
    """The goals of issue 34, judged on the app's runs (never the bare page's) for each refresh mode."""
    out = []

    def add(goal: str, judge, *, printed: bool = False) -> None:
        for mode in _modes(summary):
            verdict, evidence = _verdict(judge(mode))
            if printed and verdict != "not measured":
                verdict = "printed"
            out.append({"goal": goal, "mode": mode, "verdict": verdict, "evidence": evidence})

    def measured(r: dict[str, Any]) -> bool:
        return not r.get("refused") and not r.get("error")

    def delivery(limit_ms: float, kind: str, n: int, read=lambda r: _p95(r, "delivery_to_everyone")):
        def judge(mode):
            checks = []
            for r in _find(summary, mode, kind, n):
                if not measured(r):
                    continue
                p95 = read(r)
                lost = (r.get("missing") or {}).get("delivery", 0) + (r.get("dropped") or 0) * (n - 1)
                joined = r.get("joined") or 0
                evidence = f"p95 {_ms(p95)} over {r.get('posts')} messages" + (
                    f", {lost} never shown" if lost else ""
                )
                if joined < n:
                    evidence += f" (only {joined} joined: overloaded)"
                checks.append((p95 is not None and p95 <= limit_ms and not lost and joined == n, evidence))
            return checks

        return judge

    def streaming(mode):
        return [
            (
                r.get("joined") == 100 and share is not None and share <= 0.3,
                f"{r.get('joined')} joined: {_num(None if share is None else 100 * share, 0)} % of a core",
            )
            for r in _find(summary, mode, "emulator", 100)
            if measured(r)
            for share in [streaming_share(r)]
        ]

    def idle_cpu(mode):
        return [
            (
                not r.get("overloaded") and r["idle"]["server_cpu_ms_per_session_s"] <= 0.3,
                f"{clients(r)}: {r['idle']['server_cpu_ms_per_session_s']:.2f} ms/s",
            )
            for kind in ("mixed", "emulator")
            for r in _find(summary, mode, kind, 100)
            if r.get("idle")
        ]

    def stress(mode):
        return [
            (
                True,
                f"{_ms(_p95(r, 'delivery_to_everyone'))}, {_ratio_text(r, bare, lambda x: _p95(x, 'delivery_to_everyone'))} the bare page's",
            )
            for r, bare in pairs(summary)
            if r["plan"]["mode"] == mode and r["plan"]["clients"] == "chromium" and measured(r)
        ]

    add(
        f"One Chromium page among 100 sessions (a person's seat): {EVERY_OTHER_PAGE}, counted on that page, <= 0.3 s",
        delivery(300, "mixed", 100, seat_p95),
    )
    add(f"100 emulated sessions: {EVERY_OTHER_PAGE} <= 0.3 s", delivery(300, "emulator", 100))
    add("A reply streaming to 100 sessions takes <= 30 % of the server's core", streaming)
    add("Idle: <= 0.3 ms of server CPU per session per second, at 100 sessions", idle_cpu)
    add(
        f"Chromium pages side by side (a stress reference, no goal on its time): {EVERY_OTHER_PAGE}, and its ratio to the bare page",
        stress,
        printed=True,
    )
    return out


def goals_table(summary: dict[str, Any]) -> str:
    lines = ["| goal | mode | verdict | evidence |", "|---|---|---|---|"]
    for g in goals(summary):
        lines.append(f"| {g['goal']} | {g['mode']} | **{g['verdict']}** | {g['evidence']} |")
    return "\n".join(lines)


# --- files -------------------------------------------------------------------------------------------


# --- before and after ----------------------------------------------------------------------------------

COMPARED = (  # (column, how to read it from a run, how to print it)
    (EVERY_OTHER_PAGE, lambda r: _p95(r, "delivery_to_everyone"), _ms),
    (
        "idle CPU per session (ms/s)",
        lambda r: (r.get("idle") or {}).get("server_cpu_ms_per_session_s"),
        lambda v: _num(v, 2),
    ),
    (
        "streaming CPU (% of a core)",
        lambda r: None if streaming_share(r) is None else 100 * streaming_share(r),
        lambda v: _num(v, 0),
    ),
    ("full runs per turn, passive page", full_runs_per_turn, lambda v: _num(v, 2)),
    (
        "RSS per session (MB)",
        lambda r: (r.get("idle") or {}).get("server_rss_mb_per_session"),
        lambda v: _num(v, 2),
    ),
)


def _key(run: dict[str, Any]) -> tuple[str, str, int, str]:
    server = ", bare page" if is_bare(run) else ""
    return run["plan"]["mode"], run["plan"]["clients"], run["plan"]["sessions"], store(run) + server


def comparison(summary: dict[str, Any], before: dict[str, Any]) -> str:
    """One row per (mode, clients, N) measured in either: "before → after" for the main numbers."""
    now = {_key(r): r for r in summary["runs"]}
    then = {_key(r): r for r in before["runs"]}
    keys = sorted(set(now) | set(then), key=lambda k: (k[0], k[1] != "chromium", k[2], k[3]))
    head = ["mode", "clients", "N", "store", *(c for c, _, _ in COMPARED), "state before → after"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for key in keys:
        old, new = then.get(key), now.get(key)
        cells = [key[0], key[1], str(key[2]), key[3]]
        for _, read, show in COMPARED:
            cells.append(f"{show(read(old)) if old else '–'} → {show(read(new)) if new else '–'}")
        cells.append(f"{_state(old) if old else '–'} → {_state(new) if new else '–'}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _same_bench(summary: dict[str, Any], before: dict[str, Any]) -> str:
    """Whether the two were measured by the same bench code: only then do their numbers compare."""
    now, then = summary["machine"].get("bench_version"), before["machine"].get("bench_version")
    if now and now == then:
        return f"Both measured by the same bench (`{now}`)."
    return (
        f"**Measured by different bench code** (before `{then or '?'}`, after `{now or '?'}`): "
        "compare with care."
    )


def _versions(summary: dict[str, Any], quote: str = "`") -> str:
    """The app's commit the runs measured ("+hash": with uncommitted changes); several if it changed."""
    versions = list(dict.fromkeys(r.get("app_version") or "?" for r in summary["runs"])) or ["?"]
    text = ", ".join(f"{quote}{v}{quote}" for v in versions)
    return ("app commit " if len(versions) == 1 else "app commits (the app changed during the run) ") + text


def _history(summary: dict[str, Any]) -> str:
    sizes = sorted({r["history_messages"] for r in summary["runs"] if r.get("history_messages")})
    return "/".join(map(str, sizes)) or "?"


def markdown(summary: dict[str, Any], before: dict[str, Any] | None = None, image: str | None = None) -> str:
    machine = summary["machine"]
    image = image or "bench.png"
    options = sorted({o for r in summary["runs"] for o in r["plan"].get("server_options", ())})
    pinned = any(r.get("server_cores") for r in summary["runs"])
    lines = [
        "# Benchmark: many sessions in one room",
        "",
        f"Measured {machine['date']} with `python -m bench.run{' --smoke' if summary['smoke'] else ''}` "
        f"({summary['seconds'] / 60:.0f} min) on {_versions(summary)}: "
        f"Streamlit {machine['streamlit']}, Python {machine['python']}, "
        f"{machine['cores']} cores ({machine.get('cpu', '?')})"
        + (", the server pinned to one core and the clients on the other(s)" if pinned else "")
        + (
            " (in the rows with one Chromium page, only the browser: see below)"
            if pinned and any(r["plan"]["clients"] == "mixed" for r in summary["runs"])
            else ""
        )
        + (
            ' (rows marked "a core each": each app process pinned to a core of its own, the clients '
            "running where they may, on the app's cores too)"
            if any(r["plan"].get("own_cores") for r in summary["runs"])
            else ""
        )
        + (f", server options {', '.join(f'`{o}`' for o in options)}" if options else "")
        + f". Each row is a fresh server with a room of {_history(summary)} messages. What each number means "
        "and how it is "
        "measured: [bench/README.md](../bench/README.md).",
        "",
    ]
    if any(is_bare(r) for r in summary["runs"]) or any(
        r["plan"]["clients"] == "mixed" for r in summary["runs"]
    ):
        lines += ["## Each row beside the bare page", "", *seat_notes(summary), "", seat_table(summary), ""]
    lines += ["## Every run", "", table(summary), ""]
    if before:
        lines += [
            "## Before and after",
            "",
            f"Before: {before['machine']['date']} on {_versions(before)}; after: this run. "
            + _same_bench(summary, before),
            "",
            comparison(summary, before),
            "",
        ]
    lines += [
        "## Goals",
        "",
        goals_table(summary),
        "",
        f"![Message delay p95, idle server CPU per session and streaming CPU against the number of "
        f"sessions]({image})",
        "",
    ]
    lines += browser_time(summary)
    notes = [(r, n) for r in summary["runs"] for n in r.get("notes", [])]
    if notes:
        lines += ["## Notes from the runs", ""]
        lines += [f"- {_series(r)}, {clients(r)}: {n}" for r, n in notes]
        lines.append("")
    return "\n".join(lines)


def seat_notes(summary: dict[str, Any]) -> list[str]:
    """How to read the rows beside the bare page, and where the mixed row's clients ran."""
    text = [
        "Each row was measured on the app and then on the bare page ([bench/bare.py](../bench/bare.py): a "
        "page of a few dozen lines of HTML and JS, fed the same messages over a plain websocket by a tiny "
        "server of the bench's own), with the same room, messages, replies and harness; ratio = ours / bare."
    ]
    mixed = [r for r in summary["runs"] if r["plan"]["clients"] == "mixed"]
    shares = [r.get("bench_on_server_core_while_posting_percent") for r in mixed]
    shares = [f"{v:.0f} %" for v in shares if v is not None]
    if shares:
        text[0] += (
            " In the rows with one Chromium page, the browser had the clients' core to itself and the "
            "bench's own process (with the emulated sessions) shared the server's core: it took "
            + " and ".join(shares)
            + " of that core while the messages went round (ours, then bare)."
        )
    return text


def browser_time(summary: dict[str, Any]) -> list[str]:
    """Chromium runs: how a message's delay splits between reaching the page and being drawn there, what a
    watching page receives and redraws, and (with --trace) where each renderer's main thread spent its time."""
    runs = [r for r in summary["runs"] if r.get("passive_page_traffic") or r.get("trace")]
    if not runs:
        return []
    lines = [
        "## Where a real browser spends the time",
        "",
        "| run | message shown, p50 / p95 | reached the page, p50 / p95 | drawn after reaching it, p50 / p95 "
        "| a watching page, per s: frames / kB / DOM mutations or deltas "
        "| each core busy, % | renderer main thread in a task, % of the time, mean / max |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        traffic, busy = r.get("passive_page_traffic") or {}, r.get("busy_while_posting") or {}
        lines.append(
            f"| {_series(r)}, {clients(r)} "
            f"| {_stats(r.get('delivery'), ('p50_ms', 'p95_ms'))} "
            f"| {_stats(r.get('delivery_reached_page'), ('p50_ms', 'p95_ms'))} "
            f"| {_stats(r.get('delivery_drawn_after_reaching'), ('p50_ms', 'p95_ms'))} "
            f"| {traffic.get('frames_per_s', '–')} / {traffic.get('kb_per_s', '–')} "
            f"/ {traffic.get('mutations_per_s', traffic.get('deltas_per_s', '–'))} "
            f"| {' / '.join(map(str, busy.get('cores_percent') or [])) or '–'} "
            f"| {_percent_pair(busy.get('renderer_main_thread_percent'))} |"
        )
    lines.append("")
    for r in runs:
        renderers = (r.get("trace") or {}).get("renderers") or []
        if not renderers:
            continue
        seconds = r["trace"]["seconds"]
        lines += [
            f"Trace of the {seconds:g} s while the messages went round ({len(renderers)} renderers, one per "
            "page): each main thread's self time by kind of work, in ms.",
            "",
        ]
        kinds = sorted(
            {k for x in renderers for k in x["by_kind_ms"]},
            key=lambda k: -renderers[0]["by_kind_ms"].get(k, 0),
        )
        lines.append("| renderer | busy | " + " | ".join(kinds) + " |")
        lines.append("|---|---|" + "---|" * len(kinds))
        for x in renderers:
            cells = " | ".join(_num(x["by_kind_ms"].get(k), 0) for k in kinds)
            lines.append(f"| {x['pid']} | {x['busy_share']:.0%} | {cells} |")
        hottest = renderers[0]["functions"][:8]
        if hottest:
            lines += ["", f"Hottest JavaScript in renderer {renderers[0]['pid']} (sampled self time):", ""]
            lines += [f"- {f['ms']:g} ms `{f['function']}`" for f in hottest]
        lines.append("")
    return lines


def _never_shown(run: dict[str, Any]) -> bool:
    """A message was sent but was not shown on every other page before the run gave up on it."""
    return bool(run.get("posts")) and not (run.get("delivery_to_everyone") or {}).get("n")


def _panels() -> list[tuple[Any, str, str, list[tuple[float, float]], bool]]:
    """(value of a run, title, y unit, goal as (N, y) points, log scale) for each panel of the chart."""
    return [
        (
            lambda r: (_p95(r, "delivery_to_everyone") or 0) / 1000,
            EVERY_OTHER_PAGE[0].upper() + EVERY_OTHER_PAGE[1:],
            "seconds",
            [(100, 0.3)],
            True,
        ),
        (
            lambda r: (r.get("idle") or {}).get("server_cpu_ms_per_session_s"),
            "Idle server CPU per session",
            "ms per second",
            [(100, 0.3)],
            True,
        ),
        (
            lambda r: None if streaming_share(r) is None else 100 * streaming_share(r),
            "Server CPU while a reply streams",
            "% of the server's core",
            [(100, 30.0)],
            False,
        ),
        (
            full_runs_per_turn,
            "Full script runs per turn, page whose person did nothing",
            "runs per page per turn",
            [(3, 0.0), (100, 0.0)],
            False,
        ),
    ]


def chart(summary: dict[str, Any], path: Path, before: dict[str, Any] | None = None) -> None:
    """Four panels against N, one line per mode (and per before/after) through the runs that kept up.

    Overloaded runs are hollow and off the line; a message that never reached everyone is an x at the
    limit it did not make; `before` is dashed and faded; the goals are grey diamonds.
    """
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, 2, figsize=(13, 9.5))
    series = [(before, "before", "--", 0.5), (summary, "after" if before else "", "-", 1.0)]
    sizes = sorted({r["plan"]["sessions"] for s_, *_ in series if s_ for r in s_["runs"]})
    for axis, (value, title, unit, goal, log) in zip(axes.flat, _panels(), strict=True):
        for source, name, style, alpha in series:
            if not source:
                continue
            for mode in dict.fromkeys(_series(r) for r in source["runs"]):
                redis_color = REDIS_OWN_CORES_COLOR if "a core each" in mode else REDIS_COLOR
                color = COLORS.get(
                    mode, redis_color if "Redis" in mode else BARE_COLOR if "bare" in mode else "grey"
                )
                runs = sorted(
                    (r for r in source["runs"] if _series(r) == mode and not r.get("refused")),
                    key=lambda r: r["plan"]["sessions"],
                )
                kept_up = [r for r in runs if value(r) is not None and not r.get("overloaded")]
                kept_up = [r for r in kept_up if value(r) > 0 or not log]
                # A line joins the sizes of one kind of client; the mode is named once.
                kinds = list(dict.fromkeys(r["plan"]["clients"] for r in kept_up))
                for number, kind in enumerate(kinds):
                    line = [r for r in kept_up if r["plan"]["clients"] == kind]
                    axis.plot(
                        [r["plan"]["sessions"] for r in line],
                        [value(r) for r in line],
                        color=color,
                        linestyle=style,
                        alpha=alpha,
                        label=" ".join(x for x in (mode, name) if x) if number == 0 else None,
                    )
                for r in runs:
                    n, y = r["plan"]["sessions"], value(r)
                    if axis is axes.flat[0] and _never_shown(r):
                        y = r["plan"]["turn_timeout"]  # drawn at the limit it did not make
                        axis.scatter(n, y, marker="x", s=46, color=color, alpha=alpha, zorder=3)
                        axis.annotate(
                            f"not shown in {y:g} s",
                            (n, y),
                            textcoords="offset points",
                            xytext=(-36, -14),
                            fontsize=8,
                        )
                        continue
                    if y is None or (log and y <= 0):
                        continue
                    overloaded = r.get("overloaded")
                    axis.scatter(
                        n,
                        y,
                        marker=MARKERS.get(r["plan"]["clients"], "o"),
                        s=46,
                        zorder=3,
                        alpha=alpha,
                        facecolor="white" if overloaded else color,
                        edgecolor=color,
                    )
                    if overloaded:
                        joined = r.get("joined", 0)
                        text = "overloaded" if joined == n else f"{joined}/{n} joined"
                        axis.annotate(text, (n, y), textcoords="offset points", xytext=(-24, 7), fontsize=7.5)
        axis.scatter(
            [n for n, _ in goal], [y for _, y in goal], marker="D", s=30, color="grey", zorder=2, label="goal"
        )
        axis.set_xscale("log")
        axis.set_xlim(min(sizes, default=1) / 1.3, max(sizes, default=1) * 1.3)
        axis.set_xticks(sizes, [str(s_) for s_ in sizes])
        if log:
            axis.set_yscale("log")
            low, high = axis.get_ylim()
            axis.set_ylim(low, high * 1.6)  # room for the labels above the top points
            ticks = [t for t in READABLE_TICKS if low <= t <= high * 1.6]
            axis.set_yticks(ticks, [f"{t:g}" for t in ticks])
        else:
            axis.set_ylim(bottom=-0.05 * max(axis.get_ylim()[1], 1))
        axis.minorticks_off()
        axis.set_xlabel("sessions in the room (N)")
        axis.set_ylabel(unit)
        axis.set_title(title, fontsize=11)
        axis.grid(True, which="major", alpha=0.3)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    legend = [
        (MARKERS["chromium"], "grey", "Chromium pages"),
        (MARKERS["emulator"], "grey", "emulated sessions"),
        (MARKERS["mixed"], "grey", "one Chromium page among emulated sessions"),
        ("o", "white", "hollow: overloaded, not on the line"),
        ("x", "grey", "x: message never reached everyone"),
    ]
    for marker, face, text in legend:
        handles.append(plt.Line2D([], [], marker=marker, markerfacecolor=face, color="grey", linestyle=""))
        labels.append(text)
    figure.legend(handles, labels, loc="lower center", ncol=5, frameon=False, fontsize=9)
    machine = summary["machine"]
    title = (
        f"Shared chat room on Streamlit {machine['streamlit']}: server on one core, "
        f"{_history(summary)}-message room, messages sent while replies stream\n"
        f"{machine['date'][:10]}, {_versions(summary, quote='')}"
    )
    if before:
        title += f"; dashed: before ({before['machine']['date'][:10]}, {_versions(before, quote='')})"
    figure.suptitle(title, fontsize=11)
    figure.tight_layout(rect=(0, 0.06, 1, 0.95))
    figure.savefig(path, dpi=100)
    plt.close(figure)


def load(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


# What the bench writes into NAME.md goes between these two lines; what a person wrote above or below
# them (findings, a dated history) is kept as it is on every later run.
BEGIN_GENERATED = "<!-- generated by python -m bench.report: begin (text outside these markers is kept) -->"
END_GENERATED = "<!-- generated by python -m bench.report: end -->"


class HandWrittenPage(Exception):
    """NAME.md exists without the generated part's markers: writing it would replace a person's text."""


def merge_generated(existing: str | None, generated: str) -> str:
    """`existing` with the text between the markers replaced by `generated` (a new page if none)."""
    block = f"{BEGIN_GENERATED}\n{generated.rstrip()}\n{END_GENERATED}\n"
    if existing is None:
        return block
    if BEGIN_GENERATED not in existing or END_GENERATED not in existing:
        raise HandWrittenPage(
            "it has no generated part (the bench's marker comments), so writing it would replace "
            "hand-written text: add the two markers around the tables, or choose another --out or --name"
        )
    above, rest = existing.split(BEGIN_GENERATED, 1)
    below = rest.split(END_GENERATED, 1)[1].removeprefix("\n")
    return above + block + below


def check_writable(out: Path, name: str) -> None:
    """Raise HandWrittenPage before a long run whose NAME.md could not be written at its end."""
    page = out / f"{name}.md"
    if page.exists():
        try:
            merge_generated(page.read_text(), "")
        except HandWrittenPage as refused:
            raise HandWrittenPage(f"{page} would not be written: {refused}") from None


def write(
    summary: dict[str, Any], out: Path, *, name: str = "bench", before: dict[str, Any] | None = None
) -> None:
    """NAME.json (this run only), NAME.md and NAME.png (with `before` beside it, if given). In NAME.md
    only the part between the markers is the bench's: text outside them is kept."""
    check_writable(out, name)
    out.mkdir(parents=True, exist_ok=True)
    page = out / f"{name}.md"
    text = merge_generated(
        page.read_text() if page.exists() else None, markdown(summary, before, image=f"{name}.png")
    )
    (out / f"{name}.json").write_text(json.dumps(summary, indent=2) + "\n")
    page.write_text(text)
    chart(summary, out / f"{name}.png", before)


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.report BENCH_JSON [OUT_DIR] [--before EARLIER_JSON]`: write the Markdown and the
    chart again (named after BENCH_JSON), with an earlier run beside this one if given."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.report", description=main.__doc__)
    parser.add_argument("source", type=Path, help="a bench.json")
    parser.add_argument("out", type=Path, nargs="?", help="where to write (default: beside the source)")
    parser.add_argument("--before", type=Path, help="an earlier bench.json to show side by side")
    args = parser.parse_args(argv)
    summary = load(args.source)
    before = load(args.before) if args.before else None
    write(summary, args.out or args.source.parent, name=args.source.stem, before=before)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
