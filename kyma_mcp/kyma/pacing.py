"""Client-side pacing: spread a burst of calls under Kyma's rate limits instead of collecting 429s.

One `Pacer` is shared by every call of a server. It keeps the start times of recent requests
in a sliding window per account and per model (Kyma enforces both), waits for a free slot,
and honours a shared pause after Kyma answers 429 with `Retry-After`. A call that would have
to wait past its deadline is refused at once with the time to retry, so it never just hangs.

A limit that is not known (`None`, see `tiers.account_limits`) is not enforced: the call is
sent, and only the gateway's own 429s make calls wait.
"""

from __future__ import annotations

import math
from collections import deque

import anyio

from kyma_mcp.errors import jobs_in_flight_error, no_slot_error
from kyma_mcp.kyma.tiers import UNKNOWN, TierLimits
from kyma_mcp.progress import report_wait

REQUEST_ROOM_SECONDS = 2.0
"""A queued call's slot must leave the request this long (at most half the call's time) before its deadline."""


class Pacer:
    """Sliding-window request pacing, shared by all concurrent calls.

    Each call reserves the earliest start that keeps both windows under their limits, in
    arrival order, then sleeps until it. Reserving (rather than queueing on a lock) lets a call
    see at once whether its slot falls past its deadline.
    """

    def __init__(self, limits: TierLimits = UNKNOWN, *, window_seconds: float = 60.0) -> None:
        self.limits = limits
        self._window = window_seconds
        self._starts: deque[float] = deque()
        self._model_starts: dict[str, deque[float]] = {}
        self._paused_until = 0.0

    def set_limits(self, limits: TierLimits) -> None:
        self.limits = limits

    def pause(self, seconds: float) -> None:
        """Hold every call for `seconds` (Kyma answered 429 with Retry-After)."""
        self._paused_until = max(self._paused_until, anyio.current_time() + seconds)

    async def acquire(self, model: str | None, deadline: float) -> None:
        """Wait for a request slot, reporting the wait; a cancelled wait gives its slot back.

        Raises:
            RateLimitedError: the slot would come after `deadline`; the text says when to retry.
        """
        now = anyio.current_time()
        start = self._reserve(model, now, deadline)
        try:
            if start > now:
                await report_wait(f"waiting {start - now:.1f} s for a rate-limit slot ({self.limits.label})")
                await anyio.sleep(start - now)
            while (pause := self._paused_until - anyio.current_time()) > 0:
                self._refuse_past(deadline, pause)
                await anyio.sleep(pause)
        except BaseException:
            self._release(model, start)
            raise

    def _reserve(self, model: str | None, now: float, deadline: float) -> float:
        starts = self._model_starts.setdefault(model or "", deque())
        for queue in (self._starts, starts):
            while queue and queue[0] <= now - self._window:
                queue.popleft()
        start = max(
            now,
            self._paused_until,
            self._starts[-1] if self._starts else now,
            self._slot_after(self._starts, self.limits.rpm),
            self._slot_after(starts, self.limits.per_model_rpm) if model else now,
        )
        self._refuse_past(deadline, start - now)
        self._starts.append(start)
        starts.append(start)
        return start

    def _slot_after(self, starts: deque[float], limit: int | None) -> float:
        """The earliest time a new start fits: `limit` starts per window at most (no bound when unknown)."""
        return starts[-limit] + self._window if limit is not None and len(starts) >= limit else 0.0

    def _release(self, model: str | None, start: float) -> None:
        for queue in (self._starts, self._model_starts.get(model or "", deque())):
            if start in queue:
                queue.remove(start)

    def _refuse_past(self, deadline: float, wait: float) -> None:
        """Refuse a wait that ends past the deadline, or so close to it that the request can't finish."""
        now = anyio.current_time()
        room = min(REQUEST_ROOM_SECONDS, (deadline - now) / 2)
        if wait > 0 and now + wait > deadline - room:
            seconds = max(1, math.ceil(wait))
            why = (
                f"Kyma allows {self.limits.label}"
                if self.limits.rpm is not None
                else "The gateway answered 429 and asked to wait"
            )
            raise no_slot_error(why, seconds)


JOB_TRACK_SECONDS = 300.0
"""A job not seen finishing is counted as in flight this long (Kyma's runner times out at 5 minutes)."""


class JobSlots:
    """Media jobs in flight from this server, bounded by the tier's running + queued jobs when known.

    Kyma limits media by jobs, not requests per minute. An unknown bound (`None`) bounds nothing.
    """

    def __init__(self) -> None:
        self._jobs: dict[str, float] = {}
        self._freed = anyio.Event()

    async def acquire(self, cap: int | None, deadline: float) -> str:
        """A slot's token (pass it to `started` or `release`); waits for a job to finish, up to `deadline`.

        Raises:
            RateLimitedError: no job finished in time.
        """
        while True:
            now = anyio.current_time()
            for token in [t for t, at in self._jobs.items() if at <= now - JOB_TRACK_SECONDS]:
                del self._jobs[token]
            if cap is None or len(self._jobs) < cap:
                token = f"slot-{now}-{len(self._jobs)}"
                self._jobs[token] = now
                return token
            room = min(REQUEST_ROOM_SECONDS, (deadline - now) / 2)
            with anyio.move_on_at(deadline - room):
                await report_wait(f"waiting for one of {cap} image jobs in flight to finish")
                await self._freed.wait()
                continue
            raise jobs_in_flight_error(cap)

    def started(self, token: str, job_id: str) -> None:
        """The slot's submit created job `job_id`."""
        self._jobs[job_id] = self._jobs.pop(token, anyio.current_time())

    def release(self, key: str) -> None:
        """A job finished (or its submit failed): its slot is free."""
        if self._jobs.pop(key, None) is not None:
            self._freed.set()
            self._freed = anyio.Event()
