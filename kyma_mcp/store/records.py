"""The rows the store keeps, as plain frozen values: what callers pass in and get back.

Money is integer micro-US-dollars (`*_micros`, 1 USD = 1,000,000) so sums are exact; times are
Unix epoch seconds (floats) so both backends sort and compare them the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from kyma_mcp.store.money import MICROS_PER_USD as MICROS_PER_USD
from kyma_mcp.store.money import to_micros as to_micros

TurnStatus = Literal["pending", "complete", "failed", "interrupted"]
"""`pending` is written before the request is sent; a crash leaves it, and the next turn marks it
`interrupted`. Only `complete` turns are ever sent again as history."""

LedgerStatus = Literal["reserved", "settled", "released", "expired"]
"""`expired`: reserved by a process that died before settling; it no longer holds the budget (a settle
that still arrives counts)."""


@dataclass(frozen=True)
class Conversation:
    id: str
    title: str
    system: str | None
    created_at: float
    updated_at: float
    turns: int = 0
    cost_micros: int = 0
    """The sum of the turns' known costs."""
    models: tuple[str, ...] = ()
    unknown_cost_turns: int = 0
    """Ended turns whose cost Kyma did not report (not counted in `cost_micros`)."""


@dataclass(frozen=True)
class NewTurn:
    """What is known before a turn is sent: the caller's messages (images as references) and model."""

    messages_json: str
    model_requested: str
    created_at: float


@dataclass(frozen=True)
class TurnOutcome:
    """How a turn ended; written once, after the reply (or the failure)."""

    status: TurnStatus
    reply: str = ""
    model_served: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost_micros: int | None = None
    """What Kyma reported charging; None when it did not say (unknown, never taken as $0)."""
    latency_ms: int | None = None
    finish_reason: str | None = None
    error_word: str | None = None
    prompt_estimate: int | None = None
    """Our estimate (`usage.estimate_message_tokens`) of the request sent for this turn; against
    `prompt_tokens`, what Kyma counted, it corrects the estimate for the next turns."""


@dataclass(frozen=True)
class Turn:
    conversation_id: str
    seq: int
    messages_json: str
    model_requested: str
    created_at: float
    outcome: TurnOutcome = field(default_factory=lambda: TurnOutcome(status="pending"))

    @property
    def status(self) -> TurnStatus:
        return self.outcome.status


@dataclass(frozen=True)
class LedgerEntry:
    id: str
    period: str
    tool: str
    status: LedgerStatus
    reserved_micros: int
    settled_micros: int | None
    created_at: float
    updated_at: float
    model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    expires_at: float | None = None


@dataclass(frozen=True)
class PeriodSpend:
    """A period's money: settled (charged) and still reserved (in flight); `total` is what counts against a budget."""

    settled_micros: int
    reserved_micros: int
    largest_reserved_micros: int = 0
    """The largest single reservation in flight."""
    calls: int = 0
    """Ledger entries of the period, released ones included."""
    unknown_calls: int = 0
    """Calls settled with no known charge (Kyma reported none, or the call was cancelled mid-way)."""
    unknown_reserved_micros: int = 0
    """Their estimates: what they count against a budget, since what they cost is unknown."""

    @property
    def total_micros(self) -> int:
        """What counts against a budget: the known charges, the calls in flight, and the calls of unknown
        charge at their estimates (never at $0)."""
        return self.settled_micros + self.reserved_micros + self.unknown_reserved_micros


@dataclass(frozen=True)
class ImageJob:
    """One image job, recorded before its submit is sent (so `job_id` may still be None)."""

    idempotency_key: str
    model: str
    prompt_words: str
    status: str
    """`submitting` until Kyma answers the submit, then Kyma's own status (`succeeded`, `failed`, …)."""
    created_at: float
    updated_at: float
    job_id: str | None = None
    files: tuple[str, ...] = ()
    request_fingerprint: str | None = None
