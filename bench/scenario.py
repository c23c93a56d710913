"""One measurement: a fresh server, a room with history, N clients joined in steps, an idle window, and
messages sent while replies stream.

Every wait has a timeout and every loop a bound; a server that cannot keep up is recorded as overloaded,
never waited out. The result is a plain dict, ready for bench.report.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import math
import secrets
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

from bench import trace
from bench.bare import BareSession
from bench.emulator import EmulatedSession, RefusedError
from bench.model import BenchModel
from bench.server import (
    ALL_CORES,
    AppServer,
    AppServers,
    BareServer,
    RedisWatch,
    Usage,
    app_version,
    command_delta,
    cpu_between,
    split_cores,
)

log = logging.getLogger(__name__)

API_KEY = "sk-bench"
ASSISTANT = "CatGPT"
POLL_SECONDS = 0.05  # how often the scenario looks at its clients' progress (their stamps are exact)
QUIET_WINDOW_SECONDS = 0.5
# The longest wait for the server to calm down after a step of joins: every join reruns every page
# already in the room, so the wave a step causes grows with the room.
QUIET_CAP_SECONDS = 10.0
QUIET_CAP_SECONDS_PER_SESSION = 0.4
SATURATED = 0.95  # share of one core above which the server is not keeping up
SEED_NUDGE_SECONDS = 0.3  # a seeder with no news this long reruns its page, as a click would
SEED_SHOWN_SECONDS = 5.0  # a history message not back on the seeder's page by then was not taken
SEED_REPOSTS = 2
SAMPLE_SECONDS = 0.1  # how often the server's CPU is read while messages go round


@dataclass(frozen=True)
class Plan:
    """What one measurement does. The defaults are the full run's."""

    mode: str  # the app's REFRESH_MODE (live; poll while the app still has it)
    # emulator, chromium, or mixed: `browsers` Chromium pages (the first sessions) among emulated ones
    clients: str
    sessions: int
    browsers: int = 1  # mixed only: how many of the sessions are Chromium pages
    # app: `streamlit run app.py`; bare: the bench's own tiny websocket server and page (bench/bare.py),
    # the same room and messages, the reference every row is compared with
    server: str = "app"
    history_posts: int = 100  # each is answered, so the room holds about twice as many messages
    posts: int = 50  # measured messages, each sent while the reply to the one before is written (p95 of 50)
    senders: int = 3  # sessions that send them, in turn; everyone else only watches
    # When a sender sends after the previous reply's first words showed on its page: right as it
    # starts, and into it. The reply takes about reply_words * word_delay_ms.
    send_offsets: tuple[float, ...] = (0.0, 0.4, 1.0)
    reply_words: int = 30  # each measured reply's length: 1.5 s of streaming at 50 ms a word
    settle_seconds: float = 3.0
    idle_seconds: float = 10.0
    ramp_step: int = 10  # sessions that join together before the server may calm down
    word_delay_ms: int = 50  # the model's pause between words, and the app's WORD_DELAY_MS
    refresh_interval_ms: int = 1000
    join_timeout: float = 60.0
    turn_timeout: float = 30.0  # per message, at least; a big room gets longer (see `turn_limit`)
    posting_budget_seconds: float = 400.0  # no more messages after this long in the posting phase
    pin: bool = True  # server on one core, clients on the others
    baseline_seconds: float = 3.0  # the server with nobody in the room, for the per-session share
    server_options: tuple[str, ...] = ()  # Streamlit options for the server, e.g. "runner.postScriptGC=false"
    # App processes sharing the room; more than one needs `redis`. Sessions are spread over them in turn.
    processes: int = 1
    redis: bool = False  # rooms in a Redis the bench starts (REDIS_URL), instead of the process's memory
    # Each app process on a core of its own, as a deployment of several processes runs them; the clients
    # then run where they may (on a 2-core machine they share the app's cores, which only slows the app).
    own_cores: bool = False
    # Chromium pages only: record a performance trace of the browser while the measured messages go
    # round (bench/trace.py), saved beside the server's log and summed up in the result.
    trace: bool = False

    def __post_init__(self) -> None:
        if self.processes > 1 and not self.redis:
            raise ValueError("several app processes share a room only through Redis: set redis too")
        if self.own_cores and self.processes > len(ALL_CORES):
            raise ValueError(f"{self.processes} processes on a core each need {self.processes} cores")
        if self.server == "bare" and (self.redis or self.processes > 1):
            raise ValueError("the bare page has one server and keeps its room in memory")
        if self.clients == "mixed" and not 0 < self.browsers < self.sessions:
            raise ValueError("a mixed room has at least one Chromium page and one emulated session")

    def turn_limit(self, sessions: int) -> float:
        """How long one message may take to reach everyone before the run calls it lost."""
        return max(self.turn_timeout, 0.5 * sessions)

    @property
    def label(self) -> str:
        store = f"-redis-{self.processes}p" if self.redis else ""
        store += "-own-cores" if self.own_cores else ""
        clients = f"{self.browsers}chromium-mixed" if self.clients == "mixed" else self.clients
        return f"{self.mode}-{clients}-{self.sessions}{store}" + ("-bare" if self.server == "bare" else "")

    @property
    def uses_chromium(self) -> bool:
        return self.clients in ("chromium", "mixed")

    @property
    def bench_on_server_core(self) -> bool:
        """The mixed row leaves the browser alone on the clients' core(s): the bench's own process, the
        emulated sessions with it, runs on the server's core."""
        return self.clients == "mixed" and self.pin and not self.own_cores and split_cores()[0] is not None


def app_environment(plan: Plan, model_url: str) -> dict[str, str]:
    return {
        "REFRESH_MODE": plan.mode,
        "REFRESH_INTERVAL_MS": str(plan.refresh_interval_ms),
        "WORD_DELAY_MS": str(plan.word_delay_ms),
        "OPENAI_API_KEY": API_KEY,
        "OPENAI_BASE_URL": model_url,
        "ASSISTANT_NAME": ASSISTANT,
        "MAX_PARTICIPANTS": "1000",
        # Nobody is reaped during a run, even on an overloaded server: the run measures delivery, and a
        # wave of "left" messages would be a second, unplanned load.
        "LEAVE_GRACE_SECONDS": "600",
        "HEARTBEAT_TIMEOUT_SECONDS": "600",
        "ROOM_EMPTY_GRACE_SECONDS": "3600",
        # The history is one person posting 100 messages in a row, which the per-person limit refuses:
        # 1000 messages a second lifts it, with values every version of the app accepts.
        "RATE_LIMIT_MESSAGES": "1000",
        "RATE_LIMIT_SECONDS": "1",
        # Delivery is compared with runs of earlier versions, which kept no notes; what the notes cost is
        # measured on its own (`python -m bench.notes`, docs/notes.md). Older versions ignore the setting.
        "ROOM_NOTES_BY_ASSISTANT": "off",
    }


def percentiles(values: list[float]) -> dict[str, float | int | None]:
    """p50, p95 and max in milliseconds (nearest rank), and how many values there were."""
    if not values:
        return {"n": 0, "p50_ms": None, "p95_ms": None, "max_ms": None}
    ordered = sorted(values)

    def rank(p: float) -> float:
        return ordered[max(0, math.ceil(p * len(ordered)) - 1)]

    return {
        "n": len(ordered),
        "p50_ms": round(1000 * rank(0.50), 1),
        "p95_ms": round(1000 * rank(0.95), 1),
        "max_ms": round(1000 * ordered[-1], 1),
    }


class LoopLag:
    """How late this process's event loop wakes up: the clients' stamps are only as good as this."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(0.02)
            self.lags.append(time.monotonic() - before - 0.02)

    async def stop(self) -> dict[str, Any]:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        return percentiles(self.lags)


async def run_plan(plan: Plan, log_dir: Path, browser=None) -> dict[str, Any]:
    """Measure one plan on a fresh server; the server is stopped (or killed) whatever happens."""
    server_cores = split_cores()[0] if plan.pin and not plan.own_cores else None
    result: dict[str, Any] = {"plan": asdict(plan), "notes": []}
    redis = await asyncio.to_thread(RedisWatch) if plan.redis else None
    try:
        with BenchModel(api_key=API_KEY) as model:
            env = app_environment(plan, model.base_url)
            if redis is not None:
                # Every process behind one address needs the same cookie secret; here each is reached
                # directly, but the bench runs them as a deployment would.
                env |= {"REDIS_URL": redis.url, "STREAMLIT_SERVER_COOKIE_SECRET": secrets.token_hex(32)}
            started: list[AppServer] = []
            try:
                for number in range(plan.processes):
                    suffix = f"-{number + 1}" if plan.processes > 1 else ""
                    log_path = log_dir / f"streamlit-{plan.label}{suffix}.log"
                    cores = {ALL_CORES[number]} if plan.own_cores else server_cores
                    kind = BareServer if plan.server == "bare" else AppServer
                    started.append(
                        await asyncio.to_thread(kind, env, log_path, cores=cores, options=plan.server_options)
                    )
            except BaseException:
                for server in started:
                    await asyncio.to_thread(server.stop)
                raise
            server = AppServers(started)
            result["server_cores"] = sorted(server_cores) if server_cores else None
            if plan.own_cores:
                result["process_cores"] = list(ALL_CORES[: plan.processes])
            result["app_version"] = app_version()  # the code this server loaded
            clients: list = []
            try:
                await _measure(plan, server, model, browser, clients, result, redis, log_dir)
            except RefusedError as error:
                log.warning("%s: the app refused to run: %s", plan.label, error)
                result["refused"] = str(error)
            except Exception as error:
                log.exception("%s: the run failed", plan.label)
                result["error"] = f"{type(error).__name__}: {error}"
            finally:
                await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
                await asyncio.to_thread(server.stop)
                result["server_log_tracebacks"] = server.log_text().count("Traceback")
    finally:
        if redis is not None:
            await asyncio.to_thread(redis.stop)
    return result


async def _measure(
    plan: Plan,
    server: AppServers,
    model: BenchModel,
    browser,
    clients: list,
    result: dict,
    redis: RedisWatch | None = None,
    log_dir: Path | None = None,
) -> None:
    started = server.usage()
    result["server_rss_mb_at_start"] = round(started.rss_bytes / 2**20, 1)

    seeded_at = time.monotonic()
    result["history_messages"] = await _seed(plan, server.url, model, result)
    result["seed_seconds"] = round(time.monotonic() - seeded_at, 1)
    model.delta_delay = plan.word_delay_ms / 1000  # from now on the model streams at a readable pace
    model.reply_words = plan.reply_words
    await asyncio.sleep(plan.settle_seconds)  # the seeder's tab has just closed
    empty, empty_commands = server.usage(), redis.commands() if redis else {}
    await asyncio.sleep(plan.baseline_seconds)
    before_sessions = server.usage()
    result["empty_server_cpu_ms_per_s"] = round(cpu_between(empty, before_sessions), 2)
    if redis is not None:
        empty_total = sum(command_delta(empty_commands, redis.commands()).values())
        seconds = max(before_sessions.at - empty.at, 1e-9)
        result["redis"] = {"empty_commands_per_s": round(empty_total / seconds, 1)}
    requests_before_ramp = len(model.requests)

    ramp = await _ramp(plan, server, browser, clients)
    result["ramp"] = ramp
    joined = len(clients)
    result["joined"] = joined
    result["overloaded"] = ramp["saturated"] or joined < plan.sessions

    await asyncio.sleep(plan.settle_seconds)
    idle_commands, idle_redis_cpu = (redis.commands(), redis.cpu_seconds()) if redis else ({}, 0.0)
    idle = await _idle(plan, server, clients, before_sessions, result["empty_server_cpu_ms_per_s"])
    if redis is not None:
        _redis_idle(result["redis"], redis, idle_commands, idle_redis_cpu, idle["seconds"], len(clients))
    result["idle"] = idle
    if idle["server_cpu_share_of_core"] >= SATURATED:
        result["overloaded"] = True
    result["api"] = {"requests_while_joining_and_idle": len(model.requests) - requests_before_ramp}

    if joined < 2:
        result["notes"].append("fewer than two sessions joined: no delivery to measure")
        return
    posts = 1 if result["overloaded"] else plan.posts  # an overloaded server gets one try, not ten
    lag = LoopLag()  # the clients' stamps are only as good as this process's promptness
    lag.start()
    psutil.cpu_percent(percpu=True)
    first, bench_cpu = server.usage(), _cpu_seconds(psutil.Process())
    posting_commands, posting_redis_cpu = (redis.commands(), redis.cpu_seconds()) if redis else ({}, 0.0)
    tracing = plan.trace and clients and hasattr(clients[0], "start_trace")
    if tracing:
        await clients[0].start_trace(trace.CATEGORIES)
    try:
        result.update(await _posts(plan, server, clients, model, posts, result))
        if redis is not None:
            commands = command_delta(posting_commands, redis.commands())
            seconds = max(result["posting_seconds"], 1e-9)
            result["redis"].update(
                commands_per_message=round(sum(commands.values()) / max(result["posts"], 1), 1),
                message_commands_by_name=dict(list(commands.items())[:8]),
                posting_cpu_ms_per_s=round(1000 * (redis.cpu_seconds() - posting_redis_cpu) / seconds, 2),
            )
    finally:
        if tracing:
            data = await clients[0].stop_trace()
            path = (log_dir or Path(".")) / f"trace-{plan.label}.json"
            path.write_bytes(data)
            result["trace"] = {"path": str(path), **trace.summarize(trace.load(path))}
            log.info("%s: %s", plan.label, trace.brief(result["trace"]))
        result["client_loop_lag"] = await lag.stop()
        last, bench_percent = server.usage(), 0.0
        if plan.bench_on_server_core:
            bench_percent = 100 * (_cpu_seconds(psutil.Process()) - bench_cpu) / max(last.at - first.at, 1e-9)
            result["bench_on_server_core_while_posting_percent"] = round(bench_percent, 1)
        others = _others_on_server_core(plan, psutil.cpu_percent(percpu=True), first, last, bench_percent)
        result["others_on_server_core_while_posting_percent"] = others


def _cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


# --- the room's history ------------------------------------------------------------------------------


async def _seed(plan: Plan, url: str, model: BenchModel, result: dict) -> int:
    """One emulated person posts the history, one message at a time, then leaves; returns its length."""
    model.delta_delay = 0.0  # history needs no pacing
    seeder = _emulated(plan, url, "seeder", 0)
    result["seed_reposts"] = 0
    try:
        await seeder.connect()
        await seeder.join("History", plan.join_timeout)
        for number in range(plan.history_posts):
            token = f"bm9{number:05d}"  # never collides with a measured token (bm0…)
            for attempt in range(1 + SEED_REPOSTS):
                await _until(
                    seeder, lambda: seeder.progress.input_enabled, plan.turn_timeout, plan, "open box"
                )
                await seeder.post(f"History message {number + 1} ({token})")
                try:
                    await _until(
                        seeder,
                        lambda token=token: token in seeder.progress.seen,
                        SEED_SHOWN_SECONDS,
                        plan,
                        "echo",
                    )
                    break
                except TimeoutError:
                    if attempt == SEED_REPOSTS:
                        raise
                    # Seen rarely, in poll mode: the page showed an open box, yet the message never came
                    # back; the server most likely drew the box closed in the run that received it.
                    log.warning(
                        "%s: history message %d was not shown; sending it again", plan.label, number + 1
                    )
                    result["seed_reposts"] += 1
            # The turn's end as everyone sees it: the reply finished, nobody shown busy.
            await _until(
                seeder,
                lambda token=token: (
                    token in seeder.progress.done and not seeder.progress.writing and not seeder.progress.busy
                ),
                plan.turn_timeout,
                plan,
                f"reply to history message {number + 1}",
            )
        await seeder.leave()
        await asyncio.sleep(0.2)  # let the leave reach the room before the tab goes
    finally:
        await seeder.close()
    # Welcome + joined + every post and its reply + left.
    return 3 + 2 * plan.history_posts


async def _until(seeder: EmulatedSession, condition, timeout: float, plan: Plan, what: str) -> None:
    """Wait for the seeder's page to show something. A polled page learns news only on its next tick,
    so there a seeder with no news reruns its page, as a click anywhere would; a live page is told."""
    nudge = SEED_NUDGE_SECONDS if plan.mode == "poll" else timeout
    deadline = time.monotonic() + timeout
    while not condition():
        left = deadline - time.monotonic()
        if left <= 0:
            said = f' (the page said: "{seeder.progress.errors[-1]}")' if seeder.progress.errors else ""
            raise TimeoutError(f"seeding: no {what} after {timeout:g} s{said}")
        with contextlib.suppress(TimeoutError):
            await seeder.wait_for(condition, min(nudge, left), what)
        if not condition() and plan.mode == "poll":
            await seeder.rerun()


# Each emulated session is its own person: it carries no identity cookie, and the address carries none.
QUERY = "room=lobby"


# --- joining -------------------------------------------------------------------------------------------


async def _ramp(plan: Plan, server: AppServers, browser, clients: list) -> dict[str, Any]:
    """Join sessions `ramp_step` at a time; after each step wait (bounded) until the server calms down.

    Every join changes who is here, which reruns every page already in the room: joining all at once
    would be a burst no real room sees.
    """
    began, first = time.monotonic(), server.usage()
    saturated, failures = False, []
    for start in range(0, plan.sessions, plan.ramp_step):
        step = [
            _new_client(plan, server.urls[i % len(server.urls)], browser, i)
            for i in range(start, min(plan.sessions, start + plan.ramp_step))
        ]
        outcomes = await asyncio.gather(*(_join(c, plan.join_timeout) for c in step), return_exceptions=True)
        for client, outcome in zip(step, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                failures.append(f"{client.name}: {outcome}")
                await client.close()
            else:
                clients.append(client)
        if failures:
            log.warning("%s: %d sessions could not join; stopping the ramp", plan.label, len(failures))
            break
        calm = await _calm(server, max(QUIET_CAP_SECONDS, QUIET_CAP_SECONDS_PER_SESSION * len(clients)))
        log.info("%s: %d joined; server at %.0f%% of a core", plan.label, len(clients), 100 * calm)
        if calm >= SATURATED:
            saturated = True
            log.warning(
                "%s: the server is saturated at %d sessions; stopping the ramp", plan.label, len(clients)
            )
            break
    last = server.usage()
    return {
        "seconds": round(last.at - began, 1),
        "server_cpu_seconds": round(last.cpu_seconds - first.cpu_seconds, 2),
        "saturated": saturated,
        "failures": failures[:5],
    }


def _new_client(plan: Plan, url: str, browser, index: int):
    name = f"p{index:03d}"
    if plan.clients == "chromium" or (plan.clients == "mixed" and index < plan.browsers):
        from bench.browser import BrowserPage

        return BrowserPage(browser, url, name, assistant=ASSISTANT)
    return _emulated(plan, url, name, index + 1)


def _emulated(plan: Plan, url: str, name: str, seed: int):
    """An emulated session of the app, or of the bare page."""
    if plan.server == "bare":
        return BareSession(url, name, assistant=ASSISTANT)
    return EmulatedSession(url, name, QUERY, assistant=ASSISTANT, seed=seed)


async def _join(client, timeout: float) -> None:
    await asyncio.wait_for(client.connect(), timeout)
    await client.join(client.name, timeout)


async def _calm(server: AppServers, cap: float) -> float:
    """Wait until the server's CPU stops falling (bounded); returns its last share of one core."""
    previous = server.usage()
    shares: list[float] = []
    deadline = time.monotonic() + cap
    while time.monotonic() < deadline:
        await asyncio.sleep(QUIET_WINDOW_SECONDS)
        now = server.usage()
        shares.append(cpu_between(previous, now) / 1000)
        previous = now
        if len(shares) >= 2 and (shares[-1] < 0.3 or abs(shares[-1] - shares[-2]) < 0.1 and shares[-1] < 0.9):
            break
    return shares[-1]


# --- idle ----------------------------------------------------------------------------------------------


async def _idle(
    plan: Plan, server: AppServers, clients: list, before_sessions: Usage, empty_ms_per_s: float
) -> dict[str, Any]:
    """Nobody writes: what the server spends just keeping `len(clients)` pages up to date.

    Per session is what the sessions add to the empty server (its reaper, its event loop's timers), so
    it does not shrink with N just because a fixed cost is shared out.
    """
    me = psutil.Process()
    psutil.cpu_percent(percpu=True)  # starts the machine-wide count: other load would show here
    first, client_cpu = server.usage(), me.cpu_times()
    msgs = sum(getattr(c, "forward_msgs", 0) for c in clients)
    runs = sum(c.progress.full_runs for c in clients)
    received = sum(getattr(c, "bytes_in", 0) for c in clients)
    await asyncio.sleep(plan.idle_seconds)
    last, client_cpu_after = server.usage(), me.cpu_times()
    cores_busy = psutil.cpu_percent(percpu=True)
    n = max(len(clients), 1)
    seconds = last.at - first.at
    server_ms_per_s = cpu_between(first, last)
    client_ms = 1000 * (client_cpu_after.user + client_cpu_after.system - client_cpu.user - client_cpu.system)
    bench_percent = client_ms / max(seconds, 1e-9) / 10 if plan.bench_on_server_core else 0.0
    idle = {
        "seconds": round(seconds, 1),
        "server_cpu_ms_per_s": round(server_ms_per_s, 2),
        "server_cpu_ms_per_session_s": round(max(server_ms_per_s - empty_ms_per_s, 0.0) / n, 3),
        "server_cpu_share_of_core": round(server_ms_per_s / 1000, 3),
        "server_rss_mb": round(last.rss_bytes / 2**20, 1),
        "server_rss_mb_per_session": round((last.rss_bytes - before_sessions.rss_bytes) / 2**20 / n, 2),
        "server_threads": last.threads,
        "cores_busy_percent": cores_busy,  # everything on the machine, the server included
        "others_on_server_core_percent": _others_on_server_core(plan, cores_busy, first, last, bench_percent),
    }
    if plan.bench_on_server_core:
        idle["bench_on_server_core_percent"] = round(bench_percent, 1)
    idle["full_runs_per_session"] = round((sum(c.progress.full_runs for c in clients) - runs) / n, 2)
    # Opening the page and joining are full runs: a count of none would mean the counting is broken.
    idle["full_runs_joining_per_session"] = round(runs / n, 2)
    if plan.clients == "emulator":
        idle["client_cpu_ms_per_session_s"] = round(client_ms / seconds / n, 3)
        idle["forward_msgs_per_session_s"] = round(
            (sum(c.forward_msgs for c in clients) - msgs) / seconds / n, 2
        )
        idle["kb_per_session_s"] = round(
            (sum(c.bytes_in for c in clients) - received) / 1024 / seconds / n, 2
        )
    return idle


def _others_on_server_core(
    plan: Plan, cores_busy: list[float], first: Usage, last: Usage, bench_percent: float = 0.0
) -> float | None:
    """How much of the server's core other processes used meanwhile (in %), when the server is pinned
    to one core the clients keep off (not when each process has a core the clients share). In the mixed
    row the bench's own process shares that core by design: `bench_percent` of it is not counted."""
    server_cores, _ = split_cores()
    if not server_cores or not plan.pin or plan.own_cores:
        return None
    server_percent = cpu_between(first, last) / 10
    return round(max(cores_busy[min(server_cores)] - server_percent - bench_percent, 0.0), 1)


def _redis_idle(
    stats: dict[str, Any],
    redis: RedisWatch,
    before: dict[str, int],
    cpu_before: float,
    seconds: float,
    n: int,
) -> None:
    """Redis commands while nobody wrote: what the sessions add to the empty app, per session per second."""
    commands = command_delta(before, redis.commands())
    per_s = sum(commands.values()) / max(seconds, 1e-9)
    stats.update(
        idle_commands_per_s=round(per_s, 1),
        idle_commands_per_session_s=round(max(per_s - stats["empty_commands_per_s"], 0.0) / max(n, 1), 3),
        idle_commands_by_name=dict(list(commands.items())[:8]),
        idle_cpu_ms_per_s=round(1000 * (redis.cpu_seconds() - cpu_before) / max(seconds, 1e-9), 2),
    )


# --- posting -------------------------------------------------------------------------------------------


async def _posts(
    plan: Plan, server: AppServers, clients: list, model: BenchModel, posts: int, result: dict
) -> dict[str, Any]:
    """Post `posts` messages from a few senders, each while the reply to the one before is being written.

    Message k+1 goes out once the reply to message k shows its first words on its sender's page, after
    one of `plan.send_offsets` (0: right as it starts). A person cannot type into a closed box: a sender
    whose box is drawn closed waits (bounded) for it to open, and the message is marked as not sent
    during a reply. Whether the turn ended is read from what everyone sees (the finished reply, no busy
    caption), never from the box. Per message: when each other session first showed it, and when each
    session showed the first words of the reply to it.
    """
    n, limit = len(clients), plan.turn_limit(len(clients))
    senders = [clients[(1 + 7 * i) % n] for i in range(min(plan.senders, n - 1))]
    senders = list(dict.fromkeys(senders))  # distinct, in order
    passive = [c for c in clients if c not in senders]
    runs_before = {c: c.progress.full_runs for c in clients}
    counts_before = {c: dict(c.progress.counts) for c in passive}
    cpu = CpuSampler(server)
    cpu.start()
    pages = [c for c in clients if hasattr(c, "main_thread")]  # Chromium pages
    threads_before, cores_before = await _main_threads(pages), psutil.cpu_times(percpu=True)
    began = time.monotonic()
    budget_ends = began + plan.posting_budget_seconds
    mark, responses_before = len(model.requests), len(model.sent("POST", "/v1/responses"))
    sent: list[tuple[Any, str, float, bool]] = []  # (sender, token, moment, while a reply was written)
    box_waits: list[float] = []
    for number in range(posts):
        if time.monotonic() > budget_ends:
            result["notes"].append(
                f"{number} messages in the {plan.posting_budget_seconds:g} s posting budget"
            )
            break
        sender = senders[number % len(senders)]
        token = f"bm{number:06d}"
        if sent:
            previous = sent[-1][1]
            started = await _wait_all(
                [sender], lambda p, t=previous: t in p.first_words or t in p.done, limit
            )
            if started:
                await asyncio.sleep(plan.send_offsets[number % len(plan.send_offsets)])
            else:
                result["notes"].append(
                    f"message {number + 1}: the reply to message {number} never showed on its sender's page"
                )
        await sender.refresh()  # a Chromium page's state is read when asked
        if not sender.progress.input_enabled:  # only a page that closes its box during a reply
            closed_at = time.monotonic()
            if not await _wait_all([sender], lambda p: p.input_enabled, limit):
                result["notes"].append(f"message {number + 1}: the sender's box stayed closed {limit:g} s")
                break
            box_waits.append(time.monotonic() - closed_at)
        during = sender.progress.writing or sender.progress.busy
        moment = await sender.post(f"Measured message {number + 1} from {sender.name} ({token})")
        sent.append((sender, token, moment, during))
    tokens = [t for _, t, _, _ in sent]
    ended = await _wait_all(
        clients,
        lambda p: all(t in p.seen and t in p.done for t in tokens) and not p.writing and not p.busy,
        limit,
    )
    phase_seconds = time.monotonic() - began
    threads_after = await _main_threads(pages)
    busy = _busy(cores_before, psutil.cpu_times(percpu=True), threads_before, threads_after)
    samples = await cpu.stop()
    # The server's share ends when the last reply was shown finished somewhere: a page that never shows
    # it (the wait's timeout) must not add its idle seconds to what the messages cost.
    finished = [c.progress.done[t] for c in clients for t in tokens if t in c.progress.done]
    per_message = _per_message(
        samples, n, len(sent), threads_before, threads_after, max(finished, default=None)
    )
    responses = len(model.sent("POST", "/v1/responses")) - responses_before
    besides = len(model.requests) - mark - responses

    delivery: list[float] = []  # one per (message, other session)
    # Chromium pages: until the frame carrying it reached the page, and from there until it was drawn
    reached: list[float] = []
    drawn: list[float] = []
    everyone: list[float] = []  # per message: until the last other session showed it
    on_browsers: list[float] = []  # the same, counting only the Chromium pages
    first_word_sender: list[float] = []
    first_word_others: list[float] = []
    missing = {"delivery": 0, "first_word": 0, "turn_end": 0}
    messages: list[dict[str, Any]] = []  # the raw delays, per message, for bench.json
    # A message no page ever showed, its sender's included, was dropped by the app when it arrived
    # (Streamlit ignores what a widget sends when the run before drew it disabled); the bench sent it.
    dropped = [t for _, t, _, _ in sent if not any(t in c.progress.seen for c in clients)]
    for sender, token, moment, during in sent:
        seen = [c.progress.seen.get(token) for c in clients if c is not sender]
        delivery += [t - moment for t in seen if t is not None]
        for c in clients:
            arrived, shown = c.progress.arrived.get(token), c.progress.seen.get(token)
            if c is not sender and arrived is not None and shown is not None:
                reached.append(arrived - moment)
                drawn.append(shown - arrived)
        lost = token in dropped  # counted as dropped, not as missing: no page had it to show
        missing["delivery"] += 0 if lost else sum(t is None for t in seen)
        if seen and all(t is not None for t in seen):
            everyone.append(max(seen) - moment)
        shown_on_pages = [c.progress.seen.get(token) for c in pages if c is not sender]
        if shown_on_pages and all(t is not None for t in shown_on_pages):
            on_browsers.append(max(shown_on_pages) - moment)
        # A page that streams nothing shows the reply whole: then that moment counts as its first words.
        words = [(c, c.progress.first_words.get(token) or c.progress.done.get(token)) for c in clients]
        missing["first_word"] += 0 if lost else sum(t is None for _, t in words)
        first_word_sender += [t - moment for c, t in words if t is not None and c is sender]
        first_word_others += [t - moment for c, t in words if t is not None and c is not sender]
        messages.append(
            {
                "sender": sender.name,
                "dropped": lost,
                "sent_during_reply": during,
                "shown_ms": [_ms_after(moment, t) for t in seen],
                "first_words_ms": [_ms_after(moment, t) for _, t in words],  # the sender's among them
            }
        )
    taken = [t for t in tokens if t not in dropped]
    if dropped:
        result["notes"].append(f"{len(dropped)} of {len(sent)} messages were never shown on any page")
    if not ended:  # a dropped message alone also keeps the wait from ending: it is counted above
        stuck = [c for c in clients if _turn_not_ended(c.progress, taken)]
        missing["turn_end"] = len(stuck)
        result["turn_end_examples"] = [f"{c.name}: {_turn_not_ended(c.progress, taken)}" for c in stuck[:5]]
    if missing["turn_end"]:
        result["notes"].append(
            f"{missing['turn_end']} sessions did not show the last turn's end within {limit:g} s"
        )
    turns = sum(any(t in c.progress.done for c in clients) for t in tokens)  # replies someone saw finished
    result["api"].update(
        responses=responses,
        turns=turns,
        responses_per_turn=round(responses / turns, 2) if turns else None,
        requests_besides_responses=besides,
    )
    if besides:
        result["notes"].append(f"{besides} requests to the model besides POST /v1/responses while posting")
    return {
        "posts": len(sent),
        "dropped": len(dropped),
        "sent_during_reply": sum(during for *_, during in sent),
        "box_waits_s": [round(w, 2) for w in box_waits],
        "senders": len(senders),
        "posting_seconds": round(phase_seconds, 1),
        "delivery": percentiles(delivery),
        "delivery_to_everyone": percentiles(everyone),
        # Mixed rooms: the Chromium pages' own figure (with only Chromium pages it is the one above)
        "delivery_to_browsers": percentiles(on_browsers) if pages else None,
        "per_message": per_message,
        "delivery_reached_page": percentiles(reached) if reached else None,
        "delivery_drawn_after_reaching": percentiles(drawn) if drawn else None,
        "passive_page_traffic": _traffic(passive, counts_before, phase_seconds),
        "busy_while_posting": busy,
        "first_word_sender": percentiles(first_word_sender),
        "first_word_others": percentiles(first_word_others),
        "missing": missing,
        "streaming": _streaming_cpu(samples, [w for w in model.streamed if w[0] >= began]),
        "full_runs": None if plan.server == "bare" else _full_runs(passive, runs_before, turns),
        "messages": messages,
    }


def _turn_not_ended(progress, tokens: list[str]) -> str:
    """Why a page does not show the last turn ended ("" if it does)."""
    unfinished = [t for t in tokens if t not in progress.done]
    return "; ".join(
        why
        for why in (
            "a reply shown being written" if progress.writing else "",
            "the busy caption shown" if progress.busy else "",
            f"no finished reply to {', '.join(unfinished[:3])}" if unfinished else "",
        )
        if why
    )


async def _main_threads(clients: list) -> list[tuple[float, float]] | None:
    """Chromium pages: each renderer main thread's time in tasks so far, and its clock (None if none)."""
    if not clients:
        return None
    try:
        return list(await asyncio.gather(*(c.main_thread() for c in clients)))
    except Exception as error:  # a crashed or closed page: the run reports it elsewhere, not here
        log.warning("a page's renderer counters could not be read: %s", error)
        return None


def _busy(cores_before, cores_after, threads_before, threads_after) -> dict[str, Any]:
    """How busy each core of the machine was while the messages went round, and (Chromium) how much of
    that time each page's renderer main thread spent in a task: time it had work, running or waiting
    for a core. A page whose main thread has work nearly all the time draws news late."""
    cores = [
        round(100 * (1 - (b.idle - a.idle) / max(sum(b) - sum(a), 1e-9)))
        for a, b in zip(cores_before, cores_after, strict=True)
    ]
    busy: dict[str, Any] = {"cores_percent": cores}
    if threads_before and threads_after:
        shares = [
            100 * (b[0] - a[0]) / max(b[1] - a[1], 1e-9)
            for a, b in zip(threads_before, threads_after, strict=True)
        ]
        busy["renderer_main_thread_percent"] = {
            "mean": round(sum(shares) / len(shares)),
            "max": round(max(shares)),
        }
    return busy


def _per_message(
    samples: list[Usage], sessions: int, messages: int, threads_before, threads_after, ended: float | None
) -> dict[str, Any] | None:
    """What one message cost while the messages went round (replies and relaying included): the
    server's CPU per session until `ended` (the phase's end if None), and each Chromium page's renderer
    main thread (TaskDuration) over the phase."""
    if not messages or len(samples) < 2:
        return None
    last = samples[-1].cpu_seconds if ended is None else _cpu_at(samples, ended)
    spent = last - samples[0].cpu_seconds
    out: dict[str, Any] = {"server_cpu_ms_per_session": round(1000 * spent / messages / max(sessions, 1), 3)}
    if threads_before and threads_after:
        each = [1000 * (b[0] - a[0]) / messages for a, b in zip(threads_before, threads_after, strict=True)]
        out["renderer_main_thread_ms"] = {"mean": round(sum(each) / len(each), 1), "max": round(max(each), 1)}
    return out


def _traffic(passive: list, before: dict, seconds: float) -> dict[str, float] | None:
    """Pages whose person did nothing: websocket frames, kilobytes, and DOM mutations (Chromium) or deltas
    (emulated sessions) a second."""
    pages = [c for c in passive if c.progress.counts]
    if not pages or seconds <= 0:
        return None

    def rate(key: str, scale: float = 1) -> float:
        total = sum(c.progress.counts.get(key, 0) - before[c].get(key, 0) for c in pages)
        return round(total / len(pages) / seconds / scale, 1)

    counted = {"frames_per_s": rate("frames"), "kb_per_s": rate("bytes", 1000)}
    if "mutations" in pages[0].progress.counts:
        counted["mutations_per_s"] = rate("mutations")
    if "deltas" in pages[0].progress.counts:
        counted["deltas_per_s"] = rate("deltas")
    return counted


def _full_runs(passive: list, before: dict, turns: int) -> dict[str, Any] | None:
    """Full script runs of pages whose person did nothing while the messages went round.

    Emulated sessions and Chromium pages both count them from their websocket: a `new_session`
    ForwardMsg without fragment ids.
    """
    if not passive:
        return None
    total = sum(c.progress.full_runs - before[c] for c in passive)
    return {
        "passive_sessions": len(passive),
        "turns": turns,
        "total": total,
        "per_session_per_turn": round(total / len(passive) / turns, 2) if turns else None,
        "max_one_session": max(c.progress.full_runs - before[c] for c in passive),
    }


class CpuSampler:
    """The server's CPU every `SAMPLE_SECONDS`, to tell what it spent while replies streamed."""

    def __init__(self, server: AppServers) -> None:
        self.server = server
        self.samples: list[Usage] = []
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._sample())

    async def _sample(self) -> None:
        while True:
            self.samples.append(self.server.usage())
            await asyncio.sleep(SAMPLE_SECONDS)

    async def stop(self) -> list[Usage]:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.samples.append(self.server.usage())
        return self.samples


def _cpu_at(samples: list[Usage], moment: float) -> float:
    """The server's cumulative CPU seconds at `moment`, interpolated between the samples around it."""
    later = bisect.bisect_left([s.at for s in samples], moment)
    if later == 0:
        return samples[0].cpu_seconds
    if later == len(samples):
        return samples[-1].cpu_seconds
    a, b = samples[later - 1], samples[later]
    return a.cpu_seconds + (b.cpu_seconds - a.cpu_seconds) * (moment - a.at) / max(b.at - a.at, 1e-9)


def _streaming_cpu(samples: list[Usage], windows: list[tuple[float, float]]) -> dict[str, Any]:
    """Server CPU, as a share of its core, while the model streamed a reply (one window per reply).

    Everything the server did meanwhile counts: relaying the words to every page, and the messages
    people sent during the reply.
    """
    inside = [w for w in windows if samples and samples[0].at <= w[0] and w[1] <= samples[-1].at]
    if not inside:
        return {"replies": 0, "seconds": 0.0, "share_of_core": None, "max_share_of_core": None}
    spent = [(_cpu_at(samples, e) - _cpu_at(samples, b), e - b) for b, e in inside]
    return {
        "replies": len(inside),
        "seconds": round(sum(t for _, t in spent), 2),
        "share_of_core": round(sum(c for c, _ in spent) / max(sum(t for _, t in spent), 1e-9), 3),
        "max_share_of_core": round(max(c / max(t, 1e-9) for c, t in spent), 3),
    }


def _ms_after(start: float, moment: float | None) -> float | None:
    return None if moment is None else round(1000 * (moment - start), 1)


async def _wait_all(clients: list, condition, timeout: float) -> bool:
    """True once `condition(progress)` holds for every client; False after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        progress = await asyncio.gather(*(c.refresh() for c in clients))
        if all(condition(p) for p in progress):
            return True
        if any(c.error for c in clients) or time.monotonic() > deadline:
            return False
        await asyncio.sleep(POLL_SECONDS)
