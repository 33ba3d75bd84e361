"""Everything a running emulator remembers, in one object shared by its routes and its tests."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from kyma_mcp.emulator.catalog import TierLimits, load_catalog
from kyma_mcp.emulator.clock import Clock
from kyma_mcp.emulator.errors import GatewayError, injected_failure, rate_limit_message, rate_limited
from kyma_mcp.emulator.jobs import JobStore
from kyma_mcp.emulator.ledger import Ledger
from kyma_mcp.emulator.ratelimit import RateWindow, Refusal
from kyma_mcp.emulator.switches import Switches


class EmulatorState:
    """The live switches, the ledger, the rate window, the image jobs and request counts.

    Tests read it through `EmulatorHandle.state`; `reset()` returns it to how it started.
    """

    def __init__(self, switches: Switches, clock: Clock | None = None) -> None:
        self.switches = switches
        self.clock = clock or Clock()
        """What the rate window, the image jobs and the image concurrency cap count time by: real
        monotonic time until a test freezes or advances it (`reset()` lets it run again)."""
        self.catalog = load_catalog()
        self.ledger = Ledger(switches)
        self.rate_window = RateWindow(self.clock)
        self.jobs = JobStore(self.ledger, self.clock)
        self.requests: Counter[str] = Counter()
        """Requests received per route template (e.g. `/v1/jobs/{job_id}`), control routes excepted."""
        self.open_streams = 0
        """Streamed chat replies still being written (a client that disconnects ends its stream)."""
        self.first_chunk_at: float | None = None
        """`time.monotonic()` when the latest streamed reply's first chunk was written (benchmarks time
        first-token latency from it; CLOCK_MONOTONIC is one clock for every process on Linux and macOS)."""
        self.last_authorization: str | None = None
        """The latest /v1 request's Authorization header, so tests can see which key reached Kyma."""
        self.closing = threading.Event()
        """Set when the server starts shutting down, so hung requests let go."""
        self._initial = switches.clone()

    @property
    def limits(self) -> TierLimits:
        return self.catalog.tier(self.switches.tier)

    @property
    def balance(self) -> float:
        self.jobs.settle_finished()
        return self.ledger.balance

    @property
    def total_charged(self) -> float:
        self.jobs.settle_finished()
        return self.ledger.total_charged

    @property
    def charge_count(self) -> int:
        """Chat charges plus settled image jobs; holds and refunds are not charges."""
        self.jobs.settle_finished()
        return len(self.ledger.charges)

    def pop_failure(self) -> GatewayError | None:
        """The next `fail_next` status as an error, consuming it; None when the queue is empty."""
        if not self.switches.fail_next:
            return None
        status = self.switches.fail_next.pop(0)
        return injected_failure(
            status,
            rpm=self.limits.rpm,
            retry_after_seconds=self.switches.retry_after_seconds,
            retry_after_ms=self.switches.retry_after_ms,
        )

    def rate_limit_error(self, refusal: Refusal) -> GatewayError:
        return rate_limited(
            rate_limit_message(refusal.limit),
            retry_after_seconds=refusal.retry_after_seconds,
            retry_after_ms=self.switches.retry_after_ms,
        )

    def reset(self) -> None:
        """Back to the switches the emulator started with; forget money, jobs, windows and counts;
        a frozen clock runs again (from where it stands: it never goes back)."""
        self.switches.restore(self._initial)
        self.clock.resume()
        self.ledger.clear()
        self.rate_window.clear()
        self.jobs.clear()
        self.requests.clear()
        self.first_chunk_at = None
        self.last_authorization = None

    def snapshot(self) -> dict[str, Any]:
        requests_in_window, tokens_in_window = self.rate_window.usage(self.switches.rate_window_seconds)
        return {
            "balance": self.balance,
            "total_charged": self.total_charged,
            "charges": self.charge_count,
            "held": self.ledger.held,
            "requests": dict(self.requests),
            "jobs": len(self.jobs),
            "jobs_in_flight": len(self.jobs.in_flight()),
            "open_streams": self.open_streams,
            "first_chunk_at": self.first_chunk_at,
            "rate_window": {"requests": requests_in_window, "tokens": tokens_in_window},
        }
