"""The benchmark keeps working: its smoke runs, checked for behaviour (everyone saw everything), not speed.

The messages go out while replies stream; every number the report prints must be there and agree with
the others. Each row is measured on the app and on the bare page (bench/bare.py), which must pass the
same checks: the same harness drives both.

Emulated sessions need no browser; the Chromium runs skip, and say why, where no Chromium is installed.
"""

from __future__ import annotations

import asyncio
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import psutil
import pytest

from bench import report, trace
from bench.browser import chromium_path
from bench.run import measure, plans
from bench.scenario import Plan
from bench.server import ALL_CORES, split_cores
from tests.conftest import missing_part
from tests.redis_server import redis_server_path


def smoke(clients: str, tmp_path, *, trace: bool = False, **options) -> dict:
    plan_list = [replace(p, trace=trace) for p in plans(smoke=True, **options) if p.clients == clients]
    # A thread of its own: the end-to-end tests' Playwright keeps an event loop on the main thread.
    with ThreadPoolExecutor(max_workers=1) as pool:
        run = pool.submit(asyncio.run, measure(plan_list, smoke=True, log_dir=tmp_path / "logs"))
        summary = run.result()
    report.write(summary, tmp_path)
    return summary


def assert_everyone_saw_everything(run: dict) -> None:
    """Every message the app took (that any page showed) reached every page, with its reply.

    A message sent while a reply streams may be dropped by an app that closes its box meanwhile
    (Streamlit ignores a disabled widget's value): that is the app's behaviour, which the bench counts
    as `dropped` and shows, not a fault of the bench.
    """
    plan = run["plan"]
    n, posts = plan["sessions"], run["posts"]
    assert "error" not in run, run["error"]
    assert run["joined"] == n
    assert run["history_messages"] == 3 + 2 * plan["history_posts"]
    assert run["missing"] == {"delivery": 0, "first_word": 0, "turn_end": 0}, run["notes"]
    # An overloaded server gets one message instead of all: this checks behaviour, not how fast it was.
    assert posts == (1 if run["overloaded"] else plan["posts"])
    taken = posts - run["dropped"]
    assert taken >= 1, run["notes"]
    assert run["delivery"]["n"] == taken * (n - 1)  # every other session showed every message taken
    assert run["delivery_to_everyone"]["n"] == taken
    assert run["first_word_sender"]["n"] == taken
    assert run["first_word_others"]["n"] == taken * (n - 1)
    assert len(run["messages"]) == posts and run["senders"] == min(plan["senders"], n - 1)
    for stats in ("delivery", "first_word_sender", "first_word_others"):
        assert 0 < run[stats]["p50_ms"] <= run[stats]["p95_ms"] <= run[stats]["max_ms"]


def assert_numbers_are_sane(run: dict) -> None:
    idle, sessions = run["idle"], run["plan"]["sessions"]
    assert idle["seconds"] >= run["plan"]["idle_seconds"]
    assert math.isfinite(idle["server_cpu_ms_per_s"]) and math.isfinite(idle["server_cpu_ms_per_session_s"])
    # What the sessions add is a share of what the server spent (rounding aside), never more.
    assert idle["server_cpu_ms_per_session_s"] * sessions <= idle["server_cpu_ms_per_s"] + 0.01
    # Memory growth per session is measured, not promised: a garbage collection can make it negative.
    assert math.isfinite(idle["server_rss_mb_per_session"])
    assert idle["server_rss_mb"] > 0 and run["server_rss_mb_at_start"] > 0
    streaming = run["streaming"]
    # Relaying a reply to every page costs the app something: a zero means the samples missed it. The
    # bare server may spend less than /proc's 10 ms resolution on a short reply.
    least = 0 if run["plan"]["server"] == "bare" else 1e-9
    assert streaming["replies"] >= 1 and least <= streaming["share_of_core"] <= streaming["max_share_of_core"]
    per_message = run["per_message"]["server_cpu_ms_per_session"]
    assert math.isfinite(per_message) and per_message >= least


def assert_each_page_counts_its_renderer(run: dict) -> None:
    """Chromium pages: the renderer main thread's time per message (TaskDuration), and the delays on the
    Chromium pages alone, on the same clock as the emulated sessions' (seconds, not decades)."""
    renderer = run["per_message"]["renderer_main_thread_ms"]
    assert 0 < renderer["mean"] <= renderer["max"]
    pages = run["delivery_to_browsers"]
    assert pages["n"] == run["posts"] - run["dropped"]
    assert 0 < pages["p50_ms"] <= pages["p95_ms"] <= pages["max_ms"] <= 1000 * run["plan"]["turn_timeout"]
    assert pages["max_ms"] <= run["delivery_to_everyone"]["max_ms"]


def assert_no_page_reruns_for_what_others_did(run: dict) -> None:
    """A page whose person did nothing follows the room without a full run (the live page's promise,
    and the bench's "full runs per turn" column): counted over every turn of the smoke run."""
    assert run["idle"]["full_runs_joining_per_session"] >= 1  # opening the page and joining are counted
    runs = run["full_runs"]
    assert runs["passive_sessions"] == run["plan"]["sessions"] - run["senders"] >= 1
    assert runs["turns"] == run["posts"] - run["dropped"] >= 1
    assert runs["total"] == runs["max_one_session"] == runs["per_session_per_turn"] == 0, runs


def assert_the_model_is_asked_once_per_turn_and_never_on_refresh(run: dict) -> None:
    api = run["api"]
    assert (
        api["responses"] == api["turns"] == run["posts"] - run["dropped"] and api["responses_per_turn"] == 1
    )
    assert api["requests_while_joining_and_idle"] == 0
    assert api["requests_besides_responses"] == 0


def test_the_full_run_measures_a_persons_seat_and_each_row_beside_the_bare_page():
    planned = plans()
    rows = [(p.clients, p.sessions, p.server) for p in planned]
    assert rows == [
        ("mixed", 100, "app"),
        ("mixed", 100, "bare"),
        ("chromium", 5, "app"),
        ("chromium", 5, "bare"),
        ("emulator", 100, "app"),
        ("emulator", 100, "bare"),
    ]
    assert all(p.posts >= 50 for p in planned)  # a p95 over 10 messages is nearly the maximum
    assert planned[0].browsers == 1 and planned[0].label == "live-1chromium-mixed-100"
    assert planned[1].label == "live-1chromium-mixed-100-bare"
    assert [p.posts for p in plans(messages=60)] == [60] * 6
    # The seat: the server on one core, the browser alone on the other, the bench on the server's.
    assert planned[0].bench_on_server_core == (split_cores()[0] is not None)
    assert not planned[2].bench_on_server_core
    with pytest.raises(ValueError, match="bare"):
        Plan(mode="live", clients="emulator", sessions=10, server="bare", redis=True)


def test_emulated_sessions_see_every_message_sent_while_replies_stream(tmp_path):
    summary = smoke("emulator", tmp_path)
    assert [(r["plan"]["mode"], r["plan"]["server"]) for r in summary["runs"]] == [
        ("live", "app"),
        ("live", "bare"),
    ]
    for run in summary["runs"]:
        assert_everyone_saw_everything(run)
        assert_numbers_are_sane(run)
        assert_the_model_is_asked_once_per_turn_and_never_on_refresh(run)
        assert run["server_log_tracebacks"] == 0
    ours, bare = summary["runs"]
    assert_no_page_reruns_for_what_others_did(ours)
    assert bare["full_runs"] is None  # the bare page has no script runs to count
    table = (tmp_path / "bench.md").read_text()
    assert "## Goals" in table and "full runs per turn" in table
    assert (
        table.count("| live | app | 3 emulated sessions |")
        == table.count("| live | bare page | 3 emulated sessions |")
        == 1
    )
    # Every row prints ours, the bare page's and the ratio.
    [row] = [line for line in table.splitlines() if line.startswith("| 3 emulated sessions |")]
    assert row.count(" / ") >= 5 and row.count("x |") == 2  # the delay and the server CPU
    assert (tmp_path / "bench.png").stat().st_size > 10_000
    # Before and after in one table and chart: here the same run twice, which is enough to draw them.
    report.main([str(tmp_path / "bench.json"), "--before", str(tmp_path / "bench.json")])
    assert "## Before and after" in (tmp_path / "bench.md").read_text()


def test_redis_runs_sit_beside_memory_runs_of_the_same_size():
    planned = plans(
        sizes={"mixed": (), "chromium": (), "emulator": (100,)}, redis=True, processes=2, servers=("app",)
    )
    # Through Redis: both processes on the server's one core, and (given two cores) each on its own.
    expected = [(100, False, 1, False), (100, True, 2, False)]
    expected += [(100, True, 2, True)] if len(ALL_CORES) >= 2 else []
    assert [(p.sessions, p.redis, p.processes, p.own_cores) for p in planned] == expected
    assert planned[1].label == "live-emulator-100-redis-2p"
    if len(ALL_CORES) >= 2:
        assert planned[2].label == "live-emulator-100-redis-2p-own-cores"
    with pytest.raises(ValueError, match="Redis"):
        Plan(mode="live", clients="emulator", sessions=10, processes=2)
    with pytest.raises(ValueError, match="cores"):
        Plan(
            mode="live",
            clients="emulator",
            sessions=10,
            redis=True,
            processes=len(ALL_CORES) + 1,
            own_cores=True,
        )


def test_sessions_on_two_processes_share_one_room_through_redis(tmp_path):
    if redis_server_path() is None:
        missing_part("no redis-server here (apt-get install redis-server)")
    summary = smoke("emulator", tmp_path, redis=True, processes=2, servers=("app",))
    [run] = [r for r in summary["runs"] if r["plan"]["redis"]]
    assert_everyone_saw_everything(run)
    assert_the_model_is_asked_once_per_turn_and_never_on_refresh(run)
    assert run["server_log_tracebacks"] == 0
    redis = run["redis"]
    assert redis["commands_per_message"] > 0
    # Idle processes still talk to Redis (heartbeats, the reaper, leases); the sessions' share is part of it.
    sessions = run["plan"]["sessions"]
    assert redis["idle_commands_per_s"] > 0
    assert redis["idle_commands_per_session_s"] * sessions <= redis["idle_commands_per_s"] + 0.01
    assert "Redis, 2 processes" in (tmp_path / "bench.md").read_text()


@pytest.mark.e2e
def test_chromium_pages_see_every_message(tmp_path):
    if chromium_path() is None:
        missing_part("no Chromium here (apt-get install chromium): the emulated sessions are still measured")
    summary = smoke("chromium", tmp_path, trace=True, servers=("app",))  # the bare page: the mixed row's test
    assert summary["runs"]
    for run in summary["runs"]:
        assert_everyone_saw_everything(run)
        assert_each_page_counts_its_renderer(run)
        assert_no_page_reruns_for_what_others_did(run)
        assert_the_model_is_asked_once_per_turn_and_never_on_refresh(run)
        assert run["idle"]["server_rss_mb"] > 0
        # Each delay splits into reaching the page and being drawn there, for every (message, page).
        reached, drawn = run["delivery_reached_page"], run["delivery_drawn_after_reaching"]
        assert reached["n"] == drawn["n"] == run["delivery"]["n"]
        assert reached["p50_ms"] <= run["delivery"]["max_ms"] and drawn["p50_ms"] >= 0
        assert run["passive_page_traffic"]["frames_per_s"] > 0
        # How busy the machine's cores and each page's renderer were while the messages went round.
        busy = run["busy_while_posting"]
        assert len(busy["cores_percent"]) == len(psutil.cpu_times(percpu=True))
        assert all(0 <= c <= 100 for c in busy["cores_percent"]) and max(busy["cores_percent"]) > 0
        assert 0 < busy["renderer_main_thread_percent"]["mean"] <= busy["renderer_main_thread_percent"]["max"]
        # The trace: every page's renderer, its main thread's work by kind, the functions it ran.
        renderers = run["trace"]["renderers"]
        assert len(renderers) >= run["plan"]["sessions"]
        assert all(r["by_kind_ms"].get("scripting", 0) > 0 and r["functions"] for r in renderers)
    assert "## Where a real browser spends the time" in (tmp_path / "bench.md").read_text()


@pytest.mark.e2e
def test_one_chromium_page_among_emulated_sessions_sees_every_message_on_the_app_and_the_bare_page(tmp_path):
    if chromium_path() is None:
        missing_part("no Chromium here (apt-get install chromium): the emulated sessions are still measured")
    summary = smoke("mixed", tmp_path)
    assert [(r["plan"]["sessions"], r["plan"]["server"]) for r in summary["runs"]] == [
        (3, "app"),
        (3, "bare"),
    ]
    for run in summary["runs"]:
        assert_everyone_saw_everything(run)
        assert_numbers_are_sane(run)
        assert_each_page_counts_its_renderer(run)
        assert_the_model_is_asked_once_per_turn_and_never_on_refresh(run)
        assert run["server_log_tracebacks"] == 0
        # The Chromium page (the first session) only watches: the senders are emulated.
        assert run["delivery_to_browsers"]["n"] == run["delivery_to_everyone"]["n"]
        if split_cores()[0] is not None:  # the bench shared the server's core, and says how much of it
            assert run["bench_on_server_core_while_posting_percent"] > 0
    assert_no_page_reruns_for_what_others_did(summary["runs"][0])
    page = (tmp_path / "bench.md").read_text()
    assert "## Each row beside the bare page" in page
    [row] = [line for line in page.splitlines() if line.startswith("| one Chromium page among 3 sessions |")]
    assert row.count("x |") >= 4  # ours / bare / ratio for both delays, the renderer and the server CPU


def test_a_trace_is_summed_up_by_self_time_on_each_renderer_main_thread():
    events = [
        {"ph": "M", "name": "thread_name", "pid": 1, "tid": 10, "args": {"name": "CrRendererMain"}},
        {"ph": "M", "name": "thread_name", "pid": 1, "tid": 11, "args": {"name": "Compositor"}},
        # a 10 ms task: a 6 ms call that laid out for 2 ms; then a 3 ms paint; another thread's work
        {"ph": "X", "name": "RunTask", "pid": 1, "tid": 10, "ts": 1000, "dur": 10000},
        {"ph": "X", "name": "FunctionCall", "pid": 1, "tid": 10, "ts": 2000, "dur": 6000},
        {"ph": "X", "name": "Layout", "pid": 1, "tid": 10, "ts": 3000, "dur": 2000},
        {"ph": "X", "name": "Paint", "pid": 1, "tid": 10, "ts": 20000, "dur": 3000},
        {"ph": "X", "name": "FunctionCall", "pid": 1, "tid": 11, "ts": 2000, "dur": 50000},
    ]
    [renderer] = trace.summarize(events)["renderers"]
    assert renderer["busy_ms"] == 13.0
    assert renderer["by_event_ms"] == {"RunTask": 4.0, "FunctionCall": 4.0, "Paint": 3.0, "Layout": 2.0}
    assert renderer["by_kind_ms"] == {"other": 4.0, "scripting": 4.0, "paint": 3.0, "layout": 2.0}


def test_the_notes_bench_counts_the_notes_requests_and_none_without_them(tmp_path):
    from bench import notes

    with ThreadPoolExecutor(max_workers=1) as pool:  # a thread of its own, as `smoke` does
        result = pool.submit(asyncio.run, notes.measure(5, tmp_path)).result()
    on, off = result["runs"]
    assert (on["notes"], off["notes"]) == (True, False)
    assert on["turn_calls"] == off["turn_calls"] == 5  # one turn per message, notes or not
    assert 1 <= on["notes_calls"] <= 5 and on["notes_tokens"] > 0  # at most one per batch
    assert off["notes_calls"] == off["notes_tokens"] == 0
    assert on["server_cpu_seconds"] > 0 and off["server_cpu_seconds"] > 0
    assert "per 100 messages" in notes.show(result)
