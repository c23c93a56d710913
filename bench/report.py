"""The benchmark's outputs: bench.json (everything measured), bench.md (tables and goals), bench.png.

Pure formatting: it reads the summary `bench.run` builds and never measures anything itself.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MODES = ("live", "poll")
# Other processes' share of the server's core that makes a run worth repeating (bench.run) and flagging.
DISTURBED_PERCENT = 25.0
COLORS = {"live": "#1f77b4", "poll": "#ff7f0e"}
MARKERS = {"chromium": "o", "emulator": "s"}
READABLE_TICKS = tuple(m * 10**e for e in range(-2, 4) for m in (1, 2, 5))  # log axes read as plain numbers


# --- numbers as text ---------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.0f} ms"


def _stats(stats: dict[str, Any] | None, keys: tuple[str, ...] = ("p50_ms", "p95_ms", "max_ms")) -> str:
    if not stats or not stats.get("n"):
        return "–"
    return " / ".join(_ms(stats[k]) for k in keys)


def _num(value: float | None, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _p95(run: dict[str, Any], key: str) -> float | None:
    return (run.get(key) or {}).get("p95_ms")


def _state(run: dict[str, Any]) -> str:
    state = []
    if run.get("error"):
        state.append("error: " + run["error"][:100])
    if run.get("overloaded"):
        state.append(f"overloaded ({run.get('joined', 0)} joined)")
    others = disturbance(run)
    if others >= DISTURBED_PERCENT:
        state.append(f"disturbed: other processes took {others:.0f} % of the server's core")
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
    if not api:
        return None
    return api.get("requests_while_joining_and_idle", 0) + api.get("requests_between_turns", 0)


def rows(summary: dict[str, Any]) -> list[dict[str, str]]:
    out = []
    for run in summary["runs"]:
        plan, idle, api = run["plan"], run.get("idle") or {}, run.get("api") or {}
        turns = api.get("responses_per_turn") or []
        share = idle.get("server_cpu_share_of_core")
        out.append(
            {
                "mode": plan["mode"],
                "clients": plan["clients"],
                "N": str(plan["sessions"]),
                "idle CPU per session (ms/s)": _num(idle.get("server_cpu_ms_per_session_s"), 2),
                "idle server CPU (% of a core)": _num(None if share is None else 100 * share, 0),
                "RSS per session (MB)": _num(idle.get("server_rss_mb_per_session"), 2),
                "message shown, p50 / p95 / max": _stats(run.get("delivery")),
                "shown in every other session, p95": _ms(_p95(run, "delivery_to_everyone")),
                "first words, sender p50 / p95": _stats(run.get("first_word_sender"), ("p50_ms", "p95_ms")),
                "first words, others p50 / p95": _stats(run.get("first_word_others"), ("p50_ms", "p95_ms")),
                "API calls per turn": "–" if not turns else "/".join(sorted({str(t) for t in turns})),
                "API calls on refresh or idle": _num(_refresh_requests(api), 0),
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


def _find(summary: dict[str, Any], mode: str, clients: str, n: int | None = None) -> list[dict[str, Any]]:
    return [
        r
        for r in summary["runs"]
        if r["plan"]["mode"] == mode
        and r["plan"]["clients"] == clients
        and (n is None or r["plan"]["sessions"] == n)
    ]


def _verdict(checks: list[tuple[bool, str]]) -> tuple[str, str]:
    """('met' | 'not met' | 'not measured', the evidence)."""
    if not checks:
        return "not measured", "no run"
    met = all(ok for ok, _ in checks)
    return ("met" if met else "not met"), "; ".join(text for _, text in checks)


def goals(summary: dict[str, Any]) -> list[dict[str, str]]:
    """Each goal of the issue, judged for each refresh mode on the runs it is about."""
    out = []

    def add(goal: str, judge) -> None:
        for mode in MODES:
            verdict, evidence = _verdict(judge(mode))
            out.append({"goal": goal, "mode": mode, "verdict": verdict, "evidence": evidence})

    def idle_cpu(mode):
        return [
            (
                not r.get("overloaded") and r["idle"]["server_cpu_ms_per_session_s"] <= 1.0,
                f"N={r['plan']['sessions']}: {r['idle']['server_cpu_ms_per_session_s']:.2f} ms/s",
            )
            for r in _find(summary, mode, "emulator")
            if r.get("idle")
        ]

    def hundred(mode):
        return [
            (
                r.get("joined") == 100 and r["idle"]["server_cpu_share_of_core"] < 0.5,
                f"{r.get('joined')} joined, {100 * r['idle']['server_cpu_share_of_core']:.0f} % of a core",
            )
            for r in _find(summary, mode, "emulator", 100)
            if r.get("idle")
        ]

    def delivery(limit_ms: float, clients: str, sizes: tuple[int, ...]):
        def judge(mode):
            checks = []
            for n in sizes:
                for r in _find(summary, mode, clients, n):
                    p95 = _p95(r, "delivery_to_everyone")
                    lost = (r.get("missing") or {}).get("delivery", 1)
                    joined = r.get("joined") or 0
                    evidence = f"N={n}: p95 {_ms(p95)}" + (f", {lost} never shown" if lost else "")
                    if joined < n:
                        evidence += f" (only {joined} joined: overloaded)"
                    checks.append(
                        (p95 is not None and p95 <= limit_ms and not lost and joined == n, evidence)
                    )
            return checks

        return judge

    def no_api(mode):
        checks = []
        for r in summary["runs"]:
            if r["plan"]["mode"] != mode or not r.get("api"):
                continue
            refresh = _refresh_requests(r["api"])
            turns = r["api"].get("responses_per_turn") or []
            checks.append(
                (
                    refresh == 0 and bool(turns) and set(turns) == {1},
                    f"{r['plan']['clients']} N={r['plan']['sessions']}: {refresh} on refresh, "
                    f"{'/'.join(sorted({str(t) for t in turns})) or '–'} per turn",
                )
            )
        return checks

    add("Idle server CPU <= 1 ms per session per second (emulated sessions)", idle_cpu)
    add("100 sessions on one core under 50 %", hundred)
    add("Message shown in every other session, p95 <= 0.3 s at 50 sessions", delivery(300, "emulator", (50,)))
    add(
        "Message shown in every other page, p95 <= 0.5 s in Chromium at 3-5",
        delivery(500, "chromium", (3, 5)),
    )
    add("No request to the model on any refresh; one response per turn", no_api)
    return out


def goals_table(summary: dict[str, Any]) -> str:
    lines = ["| goal | mode | verdict | evidence |", "|---|---|---|---|"]
    for g in goals(summary):
        lines.append(f"| {g['goal']} | {g['mode']} | **{g['verdict']}** | {g['evidence']} |")
    return "\n".join(lines)


# --- files -------------------------------------------------------------------------------------------


def _versions(summary: dict[str, Any], quote: str = "`") -> str:
    """The app's commit the runs measured ("+hash": with uncommitted changes); several if it changed."""
    versions = list(dict.fromkeys(r.get("app_version") or "?" for r in summary["runs"])) or ["?"]
    text = ", ".join(f"{quote}{v}{quote}" for v in versions)
    return ("app commit " if len(versions) == 1 else "app commits (the app changed during the run) ") + text


def _history(summary: dict[str, Any]) -> str:
    sizes = sorted({r["history_messages"] for r in summary["runs"] if r.get("history_messages")})
    return "/".join(map(str, sizes)) or "?"


def markdown(summary: dict[str, Any]) -> str:
    machine = summary["machine"]
    options = sorted({o for r in summary["runs"] for o in r["plan"].get("server_options", ())})
    pinned = any(r.get("server_cores") for r in summary["runs"])
    lines = [
        "# Benchmark: many sessions in one room",
        "",
        f"Measured {machine['date']} with `python -m bench.run{' --smoke' if summary['smoke'] else ''}` "
        f"({summary['seconds'] / 60:.0f} min) on {_versions(summary)}: "
        f"Streamlit {machine['streamlit']}, Python {machine['python']}, "
        f"{machine['cores']} cores"
        + (", the server pinned to one core and the clients on the other(s)" if pinned else "")
        + (f", server options {', '.join(f'`{o}`' for o in options)}" if options else "")
        + f". Each row is a fresh server with a room of {_history(summary)} messages. What each number means "
        "and how it is "
        "measured: [bench/README.md](../bench/README.md).",
        "",
        table(summary),
        "",
        "## Goals",
        "",
        goals_table(summary),
        "",
        "![Message delay p95 and idle server CPU per session against the number of sessions](bench.png)",
        "",
    ]
    notes = [(r["plan"], n) for r in summary["runs"] for n in r.get("notes", [])]
    if notes:
        lines += ["## Notes from the runs", ""]
        lines += [f"- {p['mode']} {p['clients']} N={p['sessions']}: {n}" for p, n in notes]
        lines.append("")
    return "\n".join(lines)


def _never_shown(run: dict[str, Any]) -> bool:
    """A message was sent but did not reach every other session before the run gave up on it."""
    return bool(run.get("posts")) and not (run.get("delivery_to_everyone") or {}).get("n")


def chart(summary: dict[str, Any], path: Path) -> None:
    """Two panels against N, one line per mode through the runs that kept up; overloaded runs hollow."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    figure, (delay_axis, cpu_axis) = plt.subplots(1, 2, figsize=(12, 5.2))
    panels = [
        (
            delay_axis,
            lambda r: (_p95(r, "delivery_to_everyone") or 0) / 1000,
            "Message shown in every other session, p95 (s)",
            [(0.3, "goal at 50 sessions: 0.3 s"), (0.5, "goal in Chromium: 0.5 s")],
        ),
        (
            cpu_axis,
            lambda r: (r.get("idle") or {}).get("server_cpu_ms_per_session_s"),
            "Idle server CPU per session (ms per second)",
            [(1.0, "goal: 1 ms/s")],
        ),
    ]
    sizes = sorted({r["plan"]["sessions"] for r in summary["runs"]})
    for axis, value, title, goal_lines in panels:
        for mode in MODES:
            runs = sorted(
                (r for r in summary["runs"] if r["plan"]["mode"] == mode), key=lambda r: r["plan"]["sessions"]
            )
            kept_up = [r for r in runs if value(r) and not r.get("overloaded")]
            if kept_up:
                axis.plot(
                    [r["plan"]["sessions"] for r in kept_up],
                    [value(r) for r in kept_up],
                    color=COLORS[mode],
                    label=mode,
                )
            for r in runs:
                n, y = r["plan"]["sessions"], value(r)
                if axis is delay_axis and _never_shown(r):
                    y = r["plan"]["turn_timeout"]  # drawn at the limit it did not make
                    axis.scatter(n, y, marker="x", s=46, color=COLORS[mode], zorder=3)
                    axis.annotate(
                        f"not shown in {y:g} s",
                        (n, y),
                        textcoords="offset points",
                        xytext=(-36, -14),
                        fontsize=8,
                    )
                    continue
                if not y:
                    continue
                overloaded = r.get("overloaded")
                axis.scatter(
                    n,
                    y,
                    marker=MARKERS[r["plan"]["clients"]],
                    s=46,
                    zorder=3,
                    facecolor="white" if overloaded else COLORS[mode],
                    edgecolor=COLORS[mode],
                )
                if overloaded:
                    joined = r.get("joined", 0)
                    text = "overloaded" if joined == n else f"{joined}/{n} joined"
                    axis.annotate(text, (n, y), textcoords="offset points", xytext=(-24, 7), fontsize=7.5)
        for y, label in goal_lines:
            axis.axhline(y, color="grey", linestyle="--", linewidth=0.9, zorder=1)
            axis.annotate(
                label,
                (sizes[0] if sizes else 1, y),
                textcoords="offset points",
                xytext=(2, 3),
                fontsize=8,
                color="dimgrey",
            )
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlim(min(sizes, default=1) / 1.3, max(sizes, default=1) * 1.3)
        axis.set_xticks(sizes, [str(s) for s in sizes])
        low, high = axis.get_ylim()
        axis.set_ylim(low, high * 1.6)  # room for the labels above the top points
        ticks = [t for t in READABLE_TICKS if low <= t <= high * 1.6]
        axis.set_yticks(ticks, [f"{t:g}" for t in ticks])
        axis.minorticks_off()
        axis.set_xlabel("sessions in the room (N)")
        axis.set_title(title, fontsize=11)
        axis.grid(True, which="major", alpha=0.3)
    handles, labels = delay_axis.get_legend_handles_labels()
    legend = [
        (MARKERS["chromium"], "grey", "Chromium pages"),
        (MARKERS["emulator"], "grey", "emulated sessions"),
        ("o", "white", "hollow: overloaded, not on the line"),
        ("x", "grey", "x: message never reached everyone"),
    ]
    for marker, face, text in legend:
        handles.append(plt.Line2D([], [], marker=marker, markerfacecolor=face, color="grey", linestyle=""))
        labels.append(text)
    figure.legend(handles, labels, loc="lower center", ncol=6, frameon=False, fontsize=9)
    machine = summary["machine"]
    figure.suptitle(
        f"Shared chat room on Streamlit {machine['streamlit']}: server on one core, "
        f"{_history(summary)}-message room ({machine['date'][:10]}, {_versions(summary, quote='')})",
        fontsize=12,
    )
    figure.tight_layout(rect=(0, 0.07, 1, 0.95))
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write(summary: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "bench.md").write_text(markdown(summary))
    chart(summary, out / "bench.png")


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.report BENCH_JSON [OUT_DIR]`: write the Markdown and the chart again."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if not args:
        print(main.__doc__)
        return 2
    source = Path(args[0])
    summary = json.loads(source.read_text())
    write(summary, Path(args[1]) if len(args) > 1 else source.parent)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
