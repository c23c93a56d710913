"""What the assistant may spend on the model: one `may_spend` rule that every model call goes through.

Two budgets count tokens per UTC day: the room's (`DAILY_TOKEN_BUDGET`, per room name, so a room that
empties and reopens keeps its day) and the app's (`APP_DAILY_TOKEN_BUDGET`, every room on every process).
Each is a `Ledger` kept in the rooms' store, changed atomically (memory: a lock; Redis: a transaction).

Every call to the model (a turn's first response and each round of tool calls after it, a "When it can
help" decision, a catch-up) goes through `Purse.spend`: it reserves an estimate first (`reserve`, refused
by `may_spend` once a day's tokens, spent and reserved, reach a budget), then settles the tokens the server
reported (`settle`). So calls made at once cannot all pass under a budget: each one's estimate counts
against the next. A reservation lapses by itself after `HOLD_SECONDS` (its process may have died); a late
settlement still counts the tokens against the day it was made on.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Protocol, TypeVar

from shared.errors import AssistantError, BudgetSpent, ChatError

if TYPE_CHECKING:
    from shared.config import Settings

T = TypeVar("T")

log = logging.getLogger(__name__)

HOLD_SECONDS = 600.0  # a reservation lapses this long after it was made (a process that died leaks no more)
UNCHECKED = (
    "The daily token budget could not be checked (the rooms' store cannot be reached), so no request was "
    "made; try again in a moment."
)
SETTLED_KEPT = 64  # settled reservations a ledger remembers, so a settlement run twice counts once


class Budget(enum.Enum):
    """Which budget refused a call."""

    ROOM = "room"
    APP = "app"


@dataclass
class Ledger:
    """One UTC day's tokens for one room, or for the whole app: spent, and reserved by calls under way."""

    spent: int = 0
    holds: dict[str, tuple[int, float]] = field(default_factory=dict)  # reservation -> (tokens, lapses at)
    settled: list[str] = field(default_factory=list)  # the last reservations settled

    def committed(self, now: float) -> int:
        """Tokens spent, plus those reserved by calls still under way (lapsed reservations drop out)."""
        self.holds = {hold: kept for hold, kept in self.holds.items() if kept[1] > now}
        return self.spent + sum(tokens for tokens, _ in self.holds.values())


class Ledgers(Protocol):
    """Where the ledgers are kept: the rooms' store (`Store.spend`)."""

    def spend(self, room: str, day: str, rule: Callable[[Ledger, Ledger], T], *, write: bool = True) -> T: ...


@dataclass(frozen=True)
class Budgets:
    room: int  # DAILY_TOKEN_BUDGET; 0: none
    app: int  # APP_DAILY_TOKEN_BUDGET; 0: none

    @classmethod
    def of(cls, settings: Settings) -> Budgets:
        return cls(settings.daily_token_budget, settings.app_daily_token_budget)


def utc_day(now: datetime) -> str:
    """The UTC day (ISO) the budgets count."""
    return now.astimezone(UTC).date().isoformat()


# --- the rule, and the changes made with it (run by the store, atomically, on both ledgers) ---------------


def may_spend(room: Ledger, app: Ledger, budgets: Budgets, now: float) -> Budget | None:
    """None if a call may be made now; else the budget that is spent (tokens spent and reserved reach it)."""
    if budgets.room and room.committed(now) >= budgets.room:
        return Budget.ROOM
    if budgets.app and app.committed(now) >= budgets.app:
        return Budget.APP
    return None


def reserve(
    room: Ledger, app: Ledger, *, hold: str, tokens: int, budgets: Budgets, now: float
) -> Budget | None:
    """Reserve `tokens` on both ledgers for a call about to be made, unless `may_spend` refuses it."""
    if hold in room.holds:  # made already (the store ran this change again)
        return None
    refused = may_spend(room, app, budgets, now)
    if refused is None:
        for ledger in (room, app):
            ledger.holds[hold] = (tokens, now + HOLD_SECONDS)
    return refused


def settle(room: Ledger, app: Ledger, *, hold: str, tokens: int) -> None:
    """The call is over: its reservation goes and the tokens it used count (also after the reservation
    lapsed: they were still spent that day). A settlement made twice counts once."""
    for ledger in (room, app):
        if hold in ledger.settled:
            continue
        ledger.holds.pop(hold, None)
        ledger.spent += tokens
        ledger.settled = [*ledger.settled[1 - SETTLED_KEPT :], hold]


def peek(room: Ledger, app: Ledger, *, budgets: Budgets, now: float) -> tuple[int, int, Budget | None]:
    """Today's spent tokens (room's, app's) and whether a call would be refused now; changes nothing."""
    return room.spent, app.spent, may_spend(room, app, budgets, now)


# --- what people read ---------------------------------------------------------------------------------


def spent_sentence(budget: Budget, settings: Settings) -> str:
    """Why the assistant does not answer, naming the budget."""
    if budget is Budget.APP:
        return (
            f"This app has used its daily budget of {settings.app_daily_token_budget:,} tokens across all "
            "rooms, so I will answer again tomorrow (from midnight UTC)."
        )
    return (
        f"This room has used its daily budget of {settings.daily_token_budget:,} tokens, so I will answer "
        "again tomorrow (from midnight UTC)."
    )


def stopped_line(budget: Budget, settings: Settings) -> str:
    """The same for a page that shows the room's state: the assistant is stopped by which budget."""
    if budget is Budget.APP:
        return (
            f"{settings.assistant_name} is paused until midnight UTC: the app's daily budget of "
            f"{settings.app_daily_token_budget:,} tokens, shared by every room, is spent."
        )
    return (
        f"{settings.assistant_name} is paused until midnight UTC: this room's daily budget of "
        f"{settings.daily_token_budget:,} tokens is spent."
    )


# --- the purse: how a caller goes through the rule ---------------------------------------------------------


@dataclass
class Bill:
    """What one call cost: set by the assistant from the usage the server reported."""

    estimate: int
    tokens: int | None = None  # reported; None: the server reported nothing
    refused: bool = False  # the server refused the request before running the model: nothing to pay

    def report(self, tokens: int) -> None:
        self.tokens = (self.tokens or 0) + tokens


class Purse:
    """One room's way to the model: `spend` for every call. Made by the room; one per room and process."""

    def __init__(
        self,
        store: Ledgers,
        room: str,
        settings: Settings,
        now: Callable[[], datetime],
        wall: Callable[[], float] = time.time,
    ):
        self._store, self._room, self._settings = store, room, settings
        self._now, self._wall = now, wall

    @property
    def budgets(self) -> Budgets:
        return Budgets.of(self._settings)

    def state(self) -> tuple[int, int, Budget | None]:
        """Today's tokens, the room's and the app's, and the budget that stops the assistant now, if any."""
        rule = partial(peek, budgets=self.budgets, now=self._wall())
        return self._store.spend(self._room, utc_day(self._now()), rule, write=False)

    def refusal(self) -> Budget | None:
        """The budget that stops the assistant now, if any; None also when the store cannot tell."""
        try:
            return self.state()[2]
        except ChatError:  # the store cannot be reached: the call itself will find out
            return None

    def check(self) -> None:
        """Raise `BudgetSpent` if a call would be refused now (nothing is reserved)."""
        refused = self.refusal()
        if refused is not None:
            raise BudgetSpent(spent_sentence(refused, self._settings), app=refused is Budget.APP)

    @contextlib.contextmanager
    def spend(self, estimate: int, *, delivered: bool = False) -> Iterator[Bill]:
        """Reserve `estimate` tokens for one call made inside the block, and settle what it used after it.

        Raises `BudgetSpent` (no call may be made) once a budget is spent; `delivered` is passed on to it
        (a tool round refused after the turn's messages reached the model). Without an answer from the
        server the estimate counts: the model may have run.
        """
        hold, day, budgets = uuid.uuid4().hex, utc_day(self._now()), self.budgets
        rule = partial(reserve, hold=hold, tokens=max(estimate, 1), budgets=budgets, now=self._wall())
        try:
            refused = self._store.spend(self._room, day, rule)
        except ChatError:  # the store cannot be reached: with a budget set, no call it cannot check
            if budgets.room or budgets.app:
                raise AssistantError(UNCHECKED, delivered=delivered) from None
            log.warning("room %s: a call is made without counting its tokens (store unreachable)", self._room)
            yield Bill(estimate)
            return
        if refused is not None:
            sentence = spent_sentence(refused, self._settings)
            raise BudgetSpent(sentence, app=refused is Budget.APP, delivered=delivered)
        bill = Bill(estimate)
        try:
            yield bill
        finally:
            used = bill.tokens if bill.tokens is not None else (0 if bill.refused else estimate)
            try:
                self._store.spend(self._room, day, partial(settle, hold=hold, tokens=used))
            except ChatError:  # the store cannot be reached: the reservation lapses, the tokens go uncounted
                log.warning("room %s: %d tokens could not be counted (store unreachable)", self._room, used)


def estimate_tokens(*texts: str, output: int) -> int:
    """A call's tokens, guessed before it is made: about four characters a token for what is sent, and
    `output` for the answer (a reply's length is not known before it is written)."""
    return sum(len(text) for text in texts) // 4 + output
