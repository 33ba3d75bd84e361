"""This server's own tally of calls and spend since it started, reported by `get_limits`."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class SessionUsage:
    calls: Counter[str] = field(default_factory=Counter[str])
    failures: Counter[str] = field(default_factory=Counter[str])
    spend_usd: float = 0.0

    def record(self, tool: str, *, cost_usd: float | None = None, failed: bool = False) -> None:
        self.calls[tool] += 1
        if failed:
            self.failures[tool] += 1
        if cost_usd:
            self.spend_usd += cost_usd
