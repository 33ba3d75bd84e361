"""Progress of one tool call: what the agent sees while it waits.

A tool call owns one `Progress`. Deep code (the pacer waiting for a slot, the client backing off
before a retry) has no handle on the call, so the call lends its progress through a context
variable for its duration (`reporting`), and that code calls `report_wait`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Generator
from contextlib import contextmanager
from contextvars import ContextVar

PROGRESS_INTERVAL_SECONDS = 0.25
"""Streamed tokens are reported at most this often (the first one at once): the default of
`Timing.progress_interval_seconds`, which a tool call's `Progress` is given."""

SendProgress = Callable[[float, float | None, str], Awaitable[None]]
"""How a message reaches the client: (progress, total, message), e.g. the SDK context's `report_progress`."""


class Progress:
    """MCP progress for one call: strictly increasing values; streamed updates at most every interval."""

    def __init__(self, send: SendProgress, *, interval_seconds: float = PROGRESS_INTERVAL_SECONDS) -> None:
        self._send = send
        self._interval_seconds = interval_seconds
        self._sent = 0
        self._last_sent = float("-inf")

    async def report(self, message: str) -> None:
        self._sent += 1
        self._last_sent = time.monotonic()
        await self._send(self._sent, None, message)

    def due(self) -> bool:
        """Whether another streamed update may go out (they are throttled to one per interval)."""
        return time.monotonic() - self._last_sent >= self._interval_seconds


_current: ContextVar[Progress | None] = ContextVar("kyma_progress", default=None)


@contextmanager
def reporting(progress: Progress | None) -> Generator[None]:
    """Make `progress` the one `report_wait` reaches, for the duration of a tool call."""
    token = _current.set(progress)
    try:
        yield
    finally:
        _current.reset(token)


async def report_wait(message: str) -> None:
    """Tell the current call's client why it is waiting (a rate-limit slot, a retry); a no-op outside a call."""
    progress = _current.get()
    if progress is not None:
        await progress.report(message)
