"""Log lines rate-limited at the handler, so a flood (a reconnect storm, a broken client) cannot
fill the disk or burn the CPU: each kind of line (logger and message template) passes at most
`Bounds.log_lines_per_second` times a second; the rest are counted and summarised once a second."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class RateLimitFilter(logging.Filter):
    def __init__(self, per_second: int, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._per_second = per_second
        self._clock = clock
        self._window = 0.0
        self._counts: dict[tuple[str, str], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        now = self._clock()
        if now - self._window >= 1.0:
            dropped = sum(max(0, count - self._per_second) for count in self._counts.values())
            self._window, self._counts = now, {}
            if dropped:
                record.msg = f"({dropped} similar log lines dropped in the last second) {record.msg}"
        kind = (record.name, str(record.msg))
        self._counts[kind] = self._counts.get(kind, 0) + 1
        return self._counts[kind] <= self._per_second


def install_log_rate_limit(per_second: int, logger: logging.Logger | None = None) -> None:
    """Rate-limit every handler of `logger` (the root logger by default)."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, RateLimitFilter) for f in handler.filters):
            handler.addFilter(RateLimitFilter(per_second))
