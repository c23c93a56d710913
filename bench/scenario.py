"""One measurement: a fresh server, a room with history, N clients joined in steps, an idle window, posts.

Every wait has a timeout and every loop a bound; a server that cannot keep up is recorded as overloaded,
never waited out. The result is a plain dict, ready for bench.report.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

from bench.emulator import EmulatedSession
from bench.server import AppServer, Usage, app_version, cpu_between, split_cores
from tests.openai_server import OpenAIServer

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


@dataclass(frozen=True)
class Plan:
    """What one measurement does. The defaults are the full run's."""

    mode: str  # the app's REFRESH_MODE: live or poll
    clients: str  # emulator or chromium
    sessions: int
    history_posts: int = 100  # each is answered, so the room holds about twice as many messages
    posts: int = 10  # measured messages, one at a time, from different sessions
    settle_seconds: float = 5.0
    idle_seconds: float = 20.0
    ramp_step: int = 10  # sessions that join together before the server may calm down
    word_delay_ms: int = 50  # the model's pause between words, and the app's WORD_DELAY_MS
    refresh_interval_ms: int = 1000
    join_timeout: float = 60.0
    turn_timeout: float = 30.0  # per message, at least; a big room gets longer (see `turn_limit`)
    posting_budget_seconds: float = 240.0  # no more messages after this long in the posting phase
    pin: bool = True  # server on one core, clients on the others
    baseline_seconds: float = 5.0  # the server with nobody in the room, for the per-session share
    server_options: tuple[str, ...] = ()  # Streamlit options for the server, e.g. "runner.postScriptGC=false"

    def turn_limit(self, sessions: int) -> float:
        """How long one message may take to reach everyone before the run calls it lost."""
        return max(self.turn_timeout, 0.5 * sessions)

    @property
    def label(self) -> str:
        return f"{self.mode}-{self.clients}-{self.sessions}"


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
        # The history is one person posting 100 messages in a row, which the per-person limit refuses.
        "RATE_LIMIT_SECONDS": "0",
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
    server_cores = split_cores()[0] if plan.pin else None
    result: dict[str, Any] = {"plan": asdict(plan), "notes": []}
    with OpenAIServer(api_key=API_KEY) as model:
        env = app_environment(plan, model.base_url)
        log_path = log_dir / f"streamlit-{plan.label}.log"
        server = await asyncio.to_thread(
            AppServer, env, log_path, cores=server_cores, options=plan.server_options
        )
        result["server_cores"] = sorted(server_cores) if server_cores else None
        result["app_version"] = app_version()  # the code this server loaded
        clients: list = []
        try:
            await _measure(plan, server, model, browser, clients, result)
        except Exception as error:
            log.exception("%s: the run failed", plan.label)
            result["error"] = f"{type(error).__name__}: {error}"
        finally:
            await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
            await asyncio.to_thread(server.stop)
            result["server_log_tracebacks"] = server.log_text().count("Traceback")
    return result


async def _measure(
    plan: Plan, server: AppServer, model: OpenAIServer, browser, clients: list, result: dict
) -> None:
    started = server.usage()
    result["server_rss_mb_at_start"] = round(started.rss_bytes / 2**20, 1)

    seeded_at = time.monotonic()
    result["history_messages"] = await _seed(plan, server.url, model, result)
    result["seed_seconds"] = round(time.monotonic() - seeded_at, 1)
    model.delta_delay = plan.word_delay_ms / 1000  # from now on the model streams at a readable pace
    await asyncio.sleep(1.0)  # the seeder's tab has just closed
    empty = server.usage()
    await asyncio.sleep(plan.baseline_seconds)
    before_sessions = server.usage()
    result["empty_server_cpu_ms_per_s"] = round(cpu_between(empty, before_sessions), 2)
    requests_before_ramp = len(model.requests)

    ramp = await _ramp(plan, server, browser, clients)
    result["ramp"] = ramp
    joined = len(clients)
    result["joined"] = joined
    result["overloaded"] = ramp["saturated"] or joined < plan.sessions

    await asyncio.sleep(plan.settle_seconds)
    idle = await _idle(plan, server, clients, before_sessions, result["empty_server_cpu_ms_per_s"])
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
    first = server.usage()
    try:
        result.update(await _posts(plan, clients, model, posts, result))
    finally:
        result["client_loop_lag"] = await lag.stop()
        others = _others_on_server_core(psutil.cpu_percent(percpu=True), first, server.usage())
        result["others_on_server_core_while_posting_percent"] = others


# --- the room's history ------------------------------------------------------------------------------


async def _seed(plan: Plan, url: str, model: OpenAIServer, result: dict) -> int:
    """One emulated person posts the history, one message at a time, then leaves; returns its length."""
    model.delta_delay = 0.0  # history needs no pacing
    seeder = EmulatedSession(url, "seeder", _query(), assistant=ASSISTANT, seed=0)
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
            await _until(
                seeder,
                lambda token=token: token in seeder.progress.done and seeder.progress.input_enabled,
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


def _query() -> str:
    return f"room=lobby&me={uuid.uuid4().hex}"


# --- joining -------------------------------------------------------------------------------------------


async def _ramp(plan: Plan, server: AppServer, browser, clients: list) -> dict[str, Any]:
    """Join sessions `ramp_step` at a time; after each step wait (bounded) until the server calms down.

    Every join changes who is here, which reruns every page already in the room: joining all at once
    would be a burst no real room sees.
    """
    began, first = time.monotonic(), server.usage()
    saturated, failures = False, []
    for start in range(0, plan.sessions, plan.ramp_step):
        step = [
            _new_client(plan, server.url, browser, i)
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
    if plan.clients == "chromium":
        from bench.browser import BrowserPage

        return BrowserPage(browser, url, name, assistant=ASSISTANT)
    return EmulatedSession(url, name, _query(), assistant=ASSISTANT, seed=index + 1)


async def _join(client, timeout: float) -> None:
    await asyncio.wait_for(client.connect(), timeout)
    await client.join(client.name, timeout)


async def _calm(server: AppServer, cap: float) -> float:
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
    plan: Plan, server: AppServer, clients: list, before_sessions: Usage, empty_ms_per_s: float
) -> dict[str, Any]:
    """Nobody writes: what the server spends just keeping `len(clients)` pages up to date.

    Per session is what the sessions add to the empty server (its reaper, its event loop's timers), so
    it does not shrink with N just because a fixed cost is shared out.
    """
    me = psutil.Process()
    psutil.cpu_percent(percpu=True)  # starts the machine-wide count: other load would show here
    first, client_cpu = server.usage(), me.cpu_times()
    msgs = sum(getattr(c, "forward_msgs", 0) for c in clients)
    await asyncio.sleep(plan.idle_seconds)
    last, client_cpu_after = server.usage(), me.cpu_times()
    cores_busy = psutil.cpu_percent(percpu=True)
    n = max(len(clients), 1)
    seconds = last.at - first.at
    server_ms_per_s = cpu_between(first, last)
    client_ms = 1000 * (client_cpu_after.user + client_cpu_after.system - client_cpu.user - client_cpu.system)
    idle = {
        "seconds": round(seconds, 1),
        "server_cpu_ms_per_s": round(server_ms_per_s, 2),
        "server_cpu_ms_per_session_s": round(max(server_ms_per_s - empty_ms_per_s, 0.0) / n, 3),
        "server_cpu_share_of_core": round(server_ms_per_s / 1000, 3),
        "server_rss_mb": round(last.rss_bytes / 2**20, 1),
        "server_rss_mb_per_session": round((last.rss_bytes - before_sessions.rss_bytes) / 2**20 / n, 2),
        "server_threads": last.threads,
        "cores_busy_percent": cores_busy,  # everything on the machine, the server included
        "others_on_server_core_percent": _others_on_server_core(cores_busy, first, last),
    }
    if plan.clients == "emulator":
        idle["client_cpu_ms_per_session_s"] = round(client_ms / seconds / n, 3)
        idle["forward_msgs_per_session_s"] = round(
            (sum(c.forward_msgs for c in clients) - msgs) / seconds / n, 2
        )
    return idle


def _others_on_server_core(cores_busy: list[float], first: Usage, last: Usage) -> float | None:
    """How much of the server's core other processes used meanwhile (in %), when the server is pinned."""
    server_cores, _ = split_cores()
    if not server_cores:
        return None
    server_percent = cpu_between(first, last) / 10
    return round(max(cores_busy[min(server_cores)] - server_percent, 0.0), 1)


# --- posting -------------------------------------------------------------------------------------------


async def _posts(plan: Plan, clients: list, model: OpenAIServer, posts: int, result: dict) -> dict[str, Any]:
    """Post `posts` messages one at a time from different sessions, each after the last turn ended.

    Per message: when each other session first showed it, and when each showed the reply's first words.
    """
    delivery: list[float] = []  # one per (message, other session)
    everyone: list[float] = []  # per message: until the last other session showed it
    first_word_sender: list[float] = []
    first_word_others: list[float] = []
    missing = {"delivery": 0, "first_word": 0, "turn_end": 0}
    streamed = 0  # (message, session) pairs that saw the reply being written, not only finished
    responses_per_turn: list[int] = []
    requests_between_turns = 0
    messages: list[dict[str, Any]] = []  # the raw delays, per message, for bench.json
    n, limit = len(clients), plan.turn_limit(len(clients))
    budget_ends = time.monotonic() + plan.posting_budget_seconds
    mark = len(model.requests)
    for number in range(posts):
        if time.monotonic() > budget_ends:
            result["notes"].append(
                f"{number} messages in the {plan.posting_budget_seconds:g} s posting budget"
            )
            break
        sender = clients[(1 + 7 * number) % n]
        others = [c for c in clients if c is not sender]
        token = f"bm{number:06d}"
        if not await _wait_all([sender], lambda p: p.input_enabled, limit):
            result["notes"].append(f"message {number + 1}: the sender's box never opened")
            missing["turn_end"] += 1
            break
        for client in clients:
            await client.arm_reply_watch()
        requests_between_turns += len(model.requests) - mark
        responses_before = len(model.sent("POST", "/v1/responses"))
        requests_before = len(model.requests)
        sent = await sender.post(f"Measured message {number + 1} from {sender.name} ({token})")
        ended = await _wait_all(
            clients, lambda p, token=token: token in p.seen and token in p.done and p.input_enabled, limit
        )
        seen = [c.progress.seen.get(token) for c in others]
        delivery += [t - sent for t in seen if t is not None]
        missing["delivery"] += sum(t is None for t in seen)
        if all(t is not None for t in seen):
            everyone.append(max(seen) - sent)
        # A polled page may never see a short reply being written: then its first words come whole.
        words = [(c, c.progress.first_word or c.progress.done.get(token)) for c in clients]
        streamed += sum(c.progress.first_word is not None for c in clients)
        missing["first_word"] += sum(t is None for _, t in words)
        first_word_sender += [t - sent for c, t in words if t is not None and c is sender]
        first_word_others += [t - sent for c, t in words if t is not None and c is not sender]
        messages.append(
            {
                "sender": sender.name,
                "shown_ms": [_ms_after(sent, t) for t in seen],
                "first_words_ms": [_ms_after(sent, t) for _, t in words],  # the sender's among them
                "streamed": [c.progress.first_word is not None for c in clients],
            }
        )
        mark = len(model.requests)
        responses_per_turn.append(len(model.sent("POST", "/v1/responses")) - responses_before)
        if mark - requests_before != responses_per_turn[-1]:
            result["notes"].append(
                f"message {number + 1}: {mark - requests_before - responses_per_turn[-1]} requests "
                "besides POST /v1/responses"
            )
        if not ended:
            missing["turn_end"] += 1
            result["notes"].append(f"message {number + 1}: not every session saw the turn end in {limit:g} s")
            break  # an overloaded server: more messages would only pile up
        await asyncio.sleep(0.5)  # let the last reruns of this turn finish before the next message
    result["api"]["responses_per_turn"] = responses_per_turn
    result["api"]["requests_between_turns"] = requests_between_turns
    return {
        "posts": len(responses_per_turn),
        "delivery": percentiles(delivery),
        "delivery_to_everyone": percentiles(everyone),
        "first_word_sender": percentiles(first_word_sender),
        "first_word_others": percentiles(first_word_others),
        "reply_seen_streaming": streamed,
        "missing": missing,
        "messages": messages,
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
