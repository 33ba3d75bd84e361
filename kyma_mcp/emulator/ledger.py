"""The account's money: chat charges, image holds that settle or refund.

An image job's estimate is held at submit and settled (or refunded) when the job ends.

The balance itself lives in `Switches.balance_usd`, so a test (or `POST /_emulator/switches`)
can top up or drain the account at any moment; the ledger moves it and keeps the history.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Literal

from kyma_mcp.emulator.switches import Switches

_DECIMALS = 8


@dataclass(frozen=True)
class LedgerEntry:
    kind: Literal["charge", "hold", "settle", "refund"]
    amount: float
    reference: str


class Ledger:
    """Thread-safe: the server thread moves money while a test thread reads totals."""

    def __init__(self, switches: Switches) -> None:
        self._switches = switches
        self._lock = threading.Lock()
        self._entries: list[LedgerEntry] = []
        self._holds: dict[str, float] = {}

    @property
    def balance(self) -> float:
        return self._switches.balance_usd

    def can_afford(self, amount: float = 0.0) -> bool:
        """Whether a request may start: something left, and at least `amount` (an image hold)."""
        return self.balance > 0 and self.balance >= amount

    def charge(self, amount: float, reference: str) -> None:
        """Deduct a finished request's cost; the balance may dip below zero, as on a real meter."""
        with self._lock:
            self._move(-amount, LedgerEntry("charge", amount, reference))

    def hold(self, amount: float, reference: str) -> None:
        with self._lock:
            self._holds[reference] = amount
            self._move(-amount, LedgerEntry("hold", amount, reference))

    def settle(self, reference: str) -> float:
        """Turn a hold into a charge; returns the amount charged."""
        with self._lock:
            amount = self._holds.pop(reference)
            self._entries.append(LedgerEntry("settle", amount, reference))
            return amount

    def refund(self, reference: str) -> None:
        with self._lock:
            amount = self._holds.pop(reference)
            self._move(amount, LedgerEntry("refund", amount, reference))

    @property
    def entries(self) -> list[LedgerEntry]:
        with self._lock:
            return list(self._entries)

    @property
    def charges(self) -> list[LedgerEntry]:
        """Money actually spent: chat charges and settled image holds."""
        return [entry for entry in self.entries if entry.kind in ("charge", "settle")]

    @property
    def total_charged(self) -> float:
        return round(sum(entry.amount for entry in self.charges), _DECIMALS)

    @property
    def held(self) -> float:
        with self._lock:
            return round(sum(self._holds.values()), _DECIMALS)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._holds.clear()

    def _move(self, delta: float, entry: LedgerEntry) -> None:
        self._switches.balance_usd = round(self._switches.balance_usd + delta, _DECIMALS)
        self._entries.append(entry)
