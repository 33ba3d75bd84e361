"""The spending budget across calls: `KYMA_BUDGET_USD` per `KYMA_BUDGET_PERIOD` (day, week, month or
session; UTC calendar periods), kept in the store's spend ledger so restarts and several processes
share one budget. With `KYMA_STORE=off` the ledger is in memory: the budget is per process.

Each billed call reserves its estimate before it is sent, atomically against the budget (so
concurrent calls cannot jointly overshoot), and settles with Kyma's reported cost when it is done.
When Kyma reports none (a plain OpenAI-compatible gateway), or the call is cancelled mid-way, its
charge is recorded as unknown, never as $0: it keeps counting at its estimate against a budget, and
the summaries say how many calls are of unknown cost. A call refused by Kyma before anything ran
releases its reservation. Without a budget the ledger still records every call (model, tokens, cost) for
`get_limits` and `kyma://spend`, when the store can be used; a broken store then stops nothing.
There is nothing to hold then, so such a call is written once, when it ends, as reserve-then-settle
would have left it (one transaction instead of two, and no row for a call still in flight).
A call that succeeded is settled (or recorded) through `StoreHandle.later`: over stdio, once its reply
has been written (`store/behind.py`); this process's next read of the ledger waits for it.

A reservation holds until its call's deadline and a minute (`RESERVATION_MARGIN_SECONDS`): one left
by a process that died mid-call then stops holding the budget (it is marked `expired`; what that
call may have cost is not counted, Kyma's balance in get_limits is the judge).
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from collections.abc import AsyncGenerator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

import anyio
from pydantic import BaseModel, Field

from kyma_mcp.errors import BudgetExceededError, KymaError, StoreUnavailableError, budget_crossed_error
from kyma_mcp.settings import Settings
from kyma_mcp.spend import usd, with_unknown
from kyma_mcp.store import StoreHandle
from kyma_mcp.store.money import MICROS_PER_USD, known_micros, to_micros

if TYPE_CHECKING:
    from kyma_mcp.store import Store
    from kyma_mcp.store.records import LedgerStatus

logger = logging.getLogger(__name__)

RESERVATION_MARGIN_SECONDS = 60.0
"""A reservation holds for the call's deadline (KYMA_TOOL_TIMEOUT_SECONDS) and this much more: a
process that dies mid-call (no settle, no release) stops holding the budget then."""
_SESSION = uuid.uuid4().hex[:12]
"""This process's `session` period."""


@dataclass
class Reservation:
    """A reserved call; set `charged_usd` (and what else Kyma reported) before the block ends."""

    estimate_usd: float
    charged_usd: float | None = None
    model: str | None = None
    """The model served (for compare, the models), when known; else the one reserved for."""
    input_tokens: int | None = None
    output_tokens: int | None = None


class SpendCall(BaseModel):
    """One call of the period, as `kyma://spend` lists it."""

    at: datetime
    tool: str
    model: str | None
    status: str = Field(description="reserved (in flight), settled (charged) or released (never charged)")
    input_tokens: int | None
    output_tokens: int | None
    cost_usd: float | None = Field(
        description="what Kyma charged; None while in flight, released, or settled of unknown cost"
    )
    reserved_usd: float


class SpendSummary(BaseModel):
    """The period's money: what get_limits shows, and kyma://spend with the calls."""

    period: str = Field(description="day, week, month (UTC calendar periods) or session")
    started: str = Field(description="the ledger's key of this period, e.g. day:2026-12-04")
    resets_at: datetime | None = Field(description="None for session: until the server restarts")
    budget_usd: float | None = Field(description="KYMA_BUDGET_USD; None: no budget")
    spent_usd: float = Field(description="settled with Kyma's reported costs")
    reserved_usd: float = Field(description="held by calls in flight")
    largest_reservation_usd: float
    remaining_usd: float | None
    calls: int
    unknown_cost_calls: int = Field(
        description="calls settled with no known charge (not in spent_usd; counted at their estimates)"
    )
    unknown_estimated_usd: float = Field(description="the estimates of those calls: what they count against the budget")
    shared: bool = Field(description="kept in the durable store (restarts and processes share it)")

    def text(self) -> str:
        when = f"resets {self.resets_at:%Y-%m-%d %H:%M} UTC" if self.resets_at else "until the server restarts"
        held = (
            f", {usd(self.reserved_usd)} reserved in flight (largest {usd(self.largest_reservation_usd)})"
            if self.reserved_usd
            else ""
        )
        budget = (
            f"; budget {usd(self.budget_usd)} (KYMA_BUDGET_USD), {usd(self.remaining_usd)} remaining"
            if self.budget_usd is not None
            else "; no budget (KYMA_BUDGET_USD)"
        )
        scope = "" if self.shared else " (this process only: KYMA_STORE=off)"
        spent = with_unknown(self.spent_usd, self.unknown_cost_calls, "call")
        return (
            f"Spend this {self.period}{scope}: {spent} over {self.calls} call"
            f"{'s' if self.calls != 1 else ''}{self.unknown_text()}{held}{budget}; {when}. Calls: kyma://spend."
        )

    def unknown_text(self) -> str:
        """Why some calls' cost is unknown, and what they count at against the budget."""
        if not self.unknown_cost_calls:
            return ""
        counted = (
            f"; they count at their estimates, {usd(self.unknown_estimated_usd)}, against the budget"
            if self.budget_usd is not None
            else ""
        )
        return f" (the gateway reported no cost for them, or they were cancelled{counted})"


class SpendListing(SpendSummary):
    """`kyma://spend`: the summary and the period's newest calls."""

    recent: list[SpendCall] = Field(description="newest first; `calls` counts them all")


def period_of(settings: Settings, now: datetime | None = None) -> tuple[str, datetime | None]:
    """The ledger key of the current period and when it resets (None for `session`)."""
    kind = settings.budget_period
    if kind == "session":
        return f"session:{_SESSION}", None
    return _calendar_period(kind, (now or datetime.now(UTC)).date())


@functools.lru_cache(maxsize=16)
def _calendar_period(kind: str, today: date) -> tuple[str, datetime]:
    """`period_of` a UTC day: worked out once a day, not per call (formatting dates takes microseconds)."""
    day = datetime(today.year, today.month, today.day, tzinfo=UTC)
    if kind == "day":
        return f"day:{day:%Y-%m-%d}", day + timedelta(days=1)
    if kind == "week":
        start = day - timedelta(days=day.weekday())
        return f"week:{start:%Y-%m-%d}", start + timedelta(days=7)
    start = day.replace(day=1)
    reset = (start + timedelta(days=32)).replace(day=1)
    return f"month:{start:%Y-%m}", reset


class Budget:
    """Reserve-then-settle against `KYMA_BUDGET_USD`; without a budget, a record of each call when it ends."""

    def __init__(self, settings: Settings, store: StoreHandle) -> None:
        self._settings = settings
        self._store = store

    @property
    def active(self) -> bool:
        return self._settings.budget_usd is not None

    @asynccontextmanager
    async def reserved(self, tool: str, estimate_usd: float, *, model: str | None) -> AsyncGenerator[Reservation]:
        """Hold `estimate_usd` of the budget for the block; settle (or release on a Kyma refusal) after.

        Raises:
            BudgetExceededError: the reservation would cross the budget; nothing was sent.
            StoreUnavailableError: a budget is set and the ledger cannot be used (a budget is never
                skipped silently; without one, the call goes on unrecorded).
        """
        reservation = Reservation(estimate_usd, model=model)
        budget = self._settings.budget_usd
        store = None
        try:
            store = await self._store.get()
        except StoreUnavailableError:
            if budget is not None:
                raise
        if store is None:
            yield reservation
            return
        period, reset = period_of(self._settings)
        entry = uuid.uuid4().hex
        now = time.time()
        expires_at = now + self._settings.tool_timeout_seconds + RESERVATION_MARGIN_SECONDS
        if budget is None:  # nothing to hold against: the call is written once, when it has ended
            call = _Call(store, entry, period, tool, now, expires_at, reservation)
            try:
                yield reservation
            except KymaError:
                with anyio.CancelScope(shield=True):
                    await call.record("released", None)
                raise
            except BaseException:
                with anyio.CancelScope(shield=True):  # cancelled mid-call: it may have been charged, unknown
                    await call.record("settled", None, tokens=False)
                raise
            await self._store.later(lambda: call.record("settled", reservation.charged_usd))
            return
        reserved = await store.reserve(
            entry,
            period=period,
            tool=tool,
            amount_micros=to_micros(estimate_usd),
            budget_micros=to_micros(budget),
            now=now,
            expires_at=expires_at,
            model=model,
        )
        if not reserved:
            raise await self.refusal(estimate_usd, period, reset)
        try:
            yield reservation
        except KymaError:
            with anyio.CancelScope(shield=True):
                await _quietly(store.release(entry, now=time.time()))
            raise
        except BaseException:
            with anyio.CancelScope(shield=True):  # cancelled mid-call: may have been charged (its estimate holds)
                await _quietly(store.settle(entry, amount_micros=None, now=time.time()))
            raise
        await self._store.later(  # an unknown charge keeps counting at its estimate
            lambda: _quietly(
                store.settle(
                    entry,
                    amount_micros=known_micros(reservation.charged_usd),
                    now=time.time(),
                    model=reservation.model,
                    input_tokens=reservation.input_tokens,
                    output_tokens=reservation.output_tokens,
                )
            )
        )

    async def summary(self) -> SpendSummary:
        """This period's money from the ledger.

        Raises:
            StoreUnavailableError: the ledger cannot be read.
        """
        store = await self._store.get()
        period, reset = period_of(self._settings)
        spend = await store.period_spend(period)
        budget = self._settings.budget_usd
        spent = spend.settled_micros / MICROS_PER_USD
        pending = spend.reserved_micros / MICROS_PER_USD
        guessed = spend.unknown_reserved_micros / MICROS_PER_USD
        return SpendSummary(
            period=self._settings.budget_period,
            started=period,
            resets_at=reset,
            budget_usd=budget,
            spent_usd=spent,
            reserved_usd=pending,
            largest_reservation_usd=spend.largest_reserved_micros / MICROS_PER_USD,
            remaining_usd=None if budget is None else max(0.0, budget - spent - pending - guessed),
            calls=spend.calls,
            unknown_cost_calls=spend.unknown_calls,
            unknown_estimated_usd=guessed,
            shared=self._settings.store != "off",
        )

    async def listing(self, limit: int) -> SpendListing:
        """The summary and the period's `limit` newest calls.

        Raises:
            StoreUnavailableError: the ledger cannot be read.
        """
        summary = await self.summary()
        store = await self._store.get()
        calls = [
            SpendCall(
                at=datetime.fromtimestamp(entry.created_at, UTC),
                tool=entry.tool,
                model=entry.model,
                status=entry.status,
                input_tokens=entry.input_tokens,
                output_tokens=entry.output_tokens,
                cost_usd=None if entry.settled_micros is None else entry.settled_micros / MICROS_PER_USD,
                reserved_usd=entry.reserved_micros / MICROS_PER_USD,
            )
            for entry in await store.period_entries(summary.started, limit=limit)
        ]
        return SpendListing(**summary.model_dump(), recent=calls)

    async def refusal(self, estimate_usd: float, period: str, reset: datetime | None) -> BudgetExceededError:
        store = await self._store.get()
        spend = await store.period_spend(period)
        budget = self._settings.budget_usd or 0
        spent = spend.settled_micros / MICROS_PER_USD
        pending = spend.reserved_micros / MICROS_PER_USD
        guessed = spend.unknown_reserved_micros / MICROS_PER_USD
        remaining = max(0.0, budget - spent - pending - guessed)
        when = f"resets {reset:%Y-%m-%d %H:%M} UTC" if reset else "lasts until the server restarts"
        return budget_crossed_error(
            usd(estimate_usd),
            usd(budget),
            self._settings.budget_period,
            usd(spent),
            usd(pending) if pending else None,
            usd(remaining),
            when,
            spend.unknown_calls,
            usd(guessed),
        )


@dataclass(frozen=True)
class _Call:
    """A call without a budget, recorded in one write when it ends (see `Budget.reserved`)."""

    store: Store
    entry: str
    period: str
    tool: str
    started: float
    expires_at: float
    reservation: Reservation

    async def record(self, status: LedgerStatus, charged_usd: float | None, *, tokens: bool = True) -> None:
        """Write the call as it ended; a store that fails now is logged, and costs the caller nothing."""
        held = self.reservation
        try:
            await self.store.record_call(
                self.entry,
                period=self.period,
                tool=self.tool,
                status=status,
                reserved_micros=to_micros(held.estimate_usd),
                settled_micros=None if charged_usd is None else to_micros(charged_usd),
                created_at=self.started,
                now=time.time(),
                expires_at=self.expires_at,
                model=held.model,
                input_tokens=held.input_tokens if tokens else None,
                output_tokens=held.output_tokens if tokens else None,
            )
        except StoreUnavailableError as exc:
            logger.warning("a %s call is not recorded in the spend ledger: [%s]", self.tool, exc.word)


async def _quietly(write: Awaitable[object]) -> None:
    """Settle or release after the call: a store that fails now must not cost the caller the reply (or
    replace the call's own error). The reservation stays and expires on its own (RESERVATION_MARGIN_SECONDS)."""
    try:
        await write
    except StoreUnavailableError as exc:
        logger.warning("a spend-ledger entry was not settled: [%s]; it expires on its own", exc.word)
