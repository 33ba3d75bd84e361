"""The spending budget across calls: `KYMA_BUDGET_USD` per `KYMA_BUDGET_PERIOD` (day, week, month or
session; UTC calendar periods), kept in the store's spend ledger so restarts and several processes
share one budget. With `KYMA_STORE=off` the ledger is in memory: the budget is per process.

Each billed call reserves its estimate before it is sent, atomically against the budget (so
concurrent calls cannot jointly overshoot), and settles with Kyma's reported cost when it is done
(the estimate when Kyma reports none). A call refused by Kyma before anything ran releases its
reservation.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import anyio

from kyma_mcp.errors import BudgetExceededError, KymaError, budget_crossed_error
from kyma_mcp.settings import Settings
from kyma_mcp.spend import usd
from kyma_mcp.store import StoreHandle
from kyma_mcp.store.records import MICROS_PER_USD, to_micros

_SESSION = uuid.uuid4().hex[:12]
"""This process's `session` period."""


@dataclass
class Reservation:
    """A reserved call; set `charged_usd` to what Kyma reported before the block ends."""

    estimate_usd: float
    charged_usd: float | None = None


def period_of(settings: Settings, now: datetime | None = None) -> tuple[str, datetime | None]:
    """The ledger key of the current period and when it resets (None for `session`)."""
    now = now or datetime.now(UTC)
    kind = settings.budget_period
    if kind == "session":
        return f"session:{_SESSION}", None
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if kind == "day":
        return f"day:{day:%Y-%m-%d}", day + timedelta(days=1)
    if kind == "week":
        start = day - timedelta(days=day.weekday())
        return f"week:{start:%Y-%m-%d}", start + timedelta(days=7)
    start = day.replace(day=1)
    reset = (start + timedelta(days=32)).replace(day=1)
    return f"month:{start:%Y-%m}", reset


class Budget:
    """Reserve-then-settle against `KYMA_BUDGET_USD`; a no-op when no budget is set."""

    def __init__(self, settings: Settings, store: StoreHandle) -> None:
        self._settings = settings
        self._store = store

    @property
    def active(self) -> bool:
        return self._settings.budget_usd is not None

    @asynccontextmanager
    async def reserved(self, tool: str, estimate_usd: float) -> AsyncGenerator[Reservation]:
        """Hold `estimate_usd` of the budget for the block; settle (or release on a Kyma refusal) after.

        Raises:
            BudgetExceededError: the reservation would cross the budget; nothing was sent.
            StoreUnavailableError: the ledger cannot be used (a budget is never skipped silently).
        """
        reservation = Reservation(estimate_usd)
        budget = self._settings.budget_usd
        if budget is None:
            yield reservation
            return
        store = await self._store.get()
        period, reset = period_of(self._settings)
        entry = uuid.uuid4().hex
        spend = await store.reserve(
            entry,
            period=period,
            tool=tool,
            amount_micros=to_micros(estimate_usd),
            budget_micros=to_micros(budget),
            now=time.time(),
        )
        if spend is None:
            raise await self.refusal(estimate_usd, period, reset)
        try:
            yield reservation
        except KymaError:
            with anyio.CancelScope(shield=True):
                await store.release(entry, now=time.time())
            raise
        except BaseException:
            with anyio.CancelScope(shield=True):  # cancelled mid-call: it may have been charged
                await store.settle(entry, amount_micros=to_micros(estimate_usd), now=time.time())
            raise
        charged = reservation.charged_usd if reservation.charged_usd is not None else estimate_usd
        with anyio.CancelScope(shield=True):
            await store.settle(entry, amount_micros=to_micros(charged), now=time.time())

    async def refusal(self, estimate_usd: float, period: str, reset: datetime | None) -> BudgetExceededError:
        store = await self._store.get()
        spend = await store.period_spend(period)
        budget = self._settings.budget_usd or 0
        spent = spend.settled_micros / MICROS_PER_USD
        pending = spend.reserved_micros / MICROS_PER_USD
        remaining = max(0.0, budget - spent - pending)
        when = f"resets {reset:%Y-%m-%d %H:%M} UTC" if reset else "lasts until the server restarts"
        return budget_crossed_error(
            usd(estimate_usd),
            usd(budget),
            self._settings.budget_period,
            usd(spent),
            usd(pending) if pending else None,
            usd(remaining),
            when,
        )
