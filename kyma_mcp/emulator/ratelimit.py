"""Rate limits over a sliding window: RPM, per-model RPM and TPM of the account's tier
(the tier table: kyma_mcp/data/tiers.json).

The window is `Switches.rate_window_seconds` (60 s, like the real per-minute limits; tests
shorten it). Only chat completions count: media endpoints are concurrency-based, and job
polls and account reads are not rated (INFERRED). `max_single_request` is reported by
`/v1/auth/limits` but not enforced: no source says which error it produces.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass

from kyma_mcp.emulator.catalog import TierLimits
from kyma_mcp.emulator.clock import Clock


@dataclass(frozen=True)
class Refusal:
    """Why a request was refused and when a retry can succeed."""

    limit: str
    """E.g. "30 requests/minute", worded like the documented 429 message."""
    retry_after_seconds: int
    """Whole seconds until enough of the window frees up; at least 1."""


@dataclass(frozen=True)
class _Admission:
    at: float
    model: str
    tokens: int


class RateWindow:
    """The chat requests admitted within the last window, by the emulator's `clock`; thread-safe."""

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock = clock or Clock()
        self._lock = threading.Lock()
        self._admitted: deque[_Admission] = deque()

    def admit(self, *, model: str, tokens: int, limits: TierLimits, window: float, enforce: bool) -> Refusal | None:
        """Record the request, or (when `enforce`) refuse it if it would exceed a limit."""
        now = self._clock.now()
        with self._lock:
            self._expire(now, window)
            refusal = self._refusal(model, tokens, limits, window, now) if enforce else None
            if refusal is None:
                self._admitted.append(_Admission(now, model, tokens))
            return refusal

    def usage(self, window: float) -> tuple[int, int]:
        """Requests and tokens admitted within the window."""
        with self._lock:
            self._expire(self._clock.now(), window)
            return len(self._admitted), sum(item.tokens for item in self._admitted)

    def clear(self) -> None:
        with self._lock:
            self._admitted.clear()

    def _expire(self, now: float, window: float) -> None:
        while self._admitted and self._admitted[0].at <= now - window:
            self._admitted.popleft()

    def _refusal(self, model: str, tokens: int, limits: TierLimits, window: float, now: float) -> Refusal | None:
        def wait_for(frees_at: float) -> int:
            return max(1, math.ceil(frees_at + window - now))

        admitted = list(self._admitted)
        if len(admitted) >= limits.rpm:
            return Refusal(f"{limits.rpm} requests/minute", wait_for(admitted[-limits.rpm].at))
        same_model = [item for item in admitted if item.model == model]
        if len(same_model) >= limits.per_model_rpm:
            limit = f"{limits.per_model_rpm} requests/minute for {model}"
            return Refusal(limit, wait_for(same_model[-limits.per_model_rpm].at))
        excess = sum(item.tokens for item in admitted) + tokens - limits.tpm
        if excess > 0:
            # The oldest admissions leave the window first; wait until enough tokens have left.
            frees_at = now
            for item in admitted:
                excess -= item.tokens
                frees_at = item.at
                if excess <= 0:
                    break
            return Refusal(f"{limits.tpm} tokens/minute", wait_for(frees_at))
        return None
