"""What every benchmark gets: the emulator, the counts, how to launch each server, and helpers to interleave runs."""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from bench.stats import Figure
from bench.upstream import API_KEY, Emulator
from bench.wire import ServerCommand, StdioServer, python_env

T = TypeVar("T")

BASELINES = Path(__file__).with_name("baselines")
UNPACED = {"KYMA_TIER": "4", "KYMA_RATE_WINDOW_SECONDS": "0.1"}
"""Tier 4 limits over a 0.1 s window: pacing still does its bookkeeping on every call but never makes
one wait, so thousands of calls a minute can be timed (at the default 60 s window Tier 4 allows 200)."""


@dataclass(frozen=True)
class Counts:
    """How many runs each benchmark makes; `tiny()` for the test that keeps the harness honest."""

    cold_starts: int = 20
    launch_warmups: int = 1
    calls: int = 500
    warmup_calls: int = 20
    growth_calls: int = 2000
    growth_warmup_calls: int = 100
    progress_runs: int = 30
    concurrency_rounds: int = 5
    concurrent_calls: int = 100
    catalog_calls: int = 500
    compare_rounds: int = 30

    @classmethod
    def tiny(cls) -> Counts:
        return cls(
            cold_starts=1,
            launch_warmups=0,
            calls=2,
            warmup_calls=1,
            growth_calls=4,
            growth_warmup_calls=2,
            progress_runs=1,
            concurrency_rounds=1,
            concurrent_calls=3,
            catalog_calls=3,
            compare_rounds=1,
        )


@dataclass
class Bench:
    """One benchmark run's shared setup."""

    emulator: Emulator
    counts: Counts
    model: str
    server_log: BinaryIO
    """Where the servers' stderr goes (bench/results/servers.log), so a failure can be read afterwards."""
    notes: list[str] = field(default_factory=list[str])
    """What was not measured and why; printed under the table."""
    details: dict[str, Any] = field(default_factory=dict[str, Any])
    """Breakdowns behind some figures (e.g. bytes per tool), kept in the JSON."""
    with_uv: bool = True

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a server under test: pointed at the emulator, the user's KYMA_* left out."""
        return python_env({"KYMA_API_KEY": API_KEY, "KYMA_BASE_URL": self.emulator.base_url, **extra})

    def kyma_module(self, **extra: str) -> ServerCommand:
        return ServerCommand("kyma-mcp (python -m kyma_mcp)", (sys.executable, "-m", "kyma_mcp"), self.env(**extra))

    @asynccontextmanager
    async def kyma_and_floor(self) -> AsyncGenerator[tuple[StdioServer, StdioServer]]:
        """Unpaced kyma-mcp and the bare forwarding server, both launched, initialised and listed."""
        async with (
            StdioServer.launched(self.kyma_unpaced(), stderr=self.server_log) as kyma,
            StdioServer.launched(self.forwarding(), stderr=self.server_log) as floor,
        ):
            for server in (kyma, floor):
                await server.handshake()
                await server.request("tools/list")
            yield kyma, floor

    def kyma_unpaced(self) -> ServerCommand:
        """kyma-mcp for benchmarks that make more calls a minute than any tier allows."""
        return self.kyma_module(**UNPACED)

    def kyma_script(self) -> ServerCommand | None:
        """The console script installed next to this interpreter, if there is one."""
        script = shutil.which("kyma-mcp", path=str(Path(sys.executable).parent))
        return None if script is None else ServerCommand("kyma-mcp (console script)", (script,), self.env())

    def bare(self) -> ServerCommand:
        return ServerCommand("bare MCPServer", (sys.executable, str(BASELINES / "bare_server.py")), self.env())

    def forwarding(self, **extra: str) -> ServerCommand:
        argv = (sys.executable, str(BASELINES / "forwarding_server.py"))
        return ServerCommand("bare forwarding MCPServer", argv, self.env(**extra))


Benchmark = Callable[[Bench], Awaitable[list[Figure]]]


def rotated(items: Sequence[T], turn: int) -> list[T]:
    """`items` starting at position `turn`: interleaved runs take turns at going first."""
    shift = turn % len(items) if items else 0
    return [*items[shift:], *items[:shift]]


async def timed(action: Callable[[], Awaitable[object]]) -> float:
    """Milliseconds `action` took."""
    started = time.perf_counter()
    await action()
    return (time.perf_counter() - started) * 1000
