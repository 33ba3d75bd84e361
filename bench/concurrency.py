"""Concurrency: 100 `chat` calls at once while the emulator takes 200 ms per request.

With Tier 4 pacing (300 requests/min, 200 per model) none of them has to wait for a slot, so
the wall time should stay near one call's. Each round starts a fresh server (a fresh pacing
window) and times one call, then the burst; the bare forwarding tool does the same for reference.
"""

from __future__ import annotations

from typing import Any

import anyio

from bench.harness import Bench, rotated, timed
from bench.stats import Baseline, Figure, Summary, ratio_at_most
from bench.upstream import PROMPT
from bench.wire import ServerCommand, StdioServer

LATENCY_MS = 200
TARGET = 1.5


async def _burst(server: StdioServer, arguments: dict[str, Any], calls: int) -> None:
    async with anyio.create_task_group() as tasks:
        for _ in range(calls):
            tasks.start_soon(lambda: server.call_tool("chat", arguments))


async def _round(bench: Bench, command: ServerCommand, arguments: dict[str, Any]) -> tuple[float, float]:
    """One call's wall time and the burst's, in milliseconds, on a fresh server."""
    async with StdioServer.launched(command, stderr=bench.server_log) as server:
        await server.handshake()
        await server.request("tools/list")
        await server.call_tool("chat", arguments)  # warm-up, not counted
        single = await timed(lambda: server.call_tool("chat", arguments))
        burst = await timed(lambda: _burst(server, arguments, bench.counts.concurrent_calls))
    return single, burst


async def run(bench: Bench) -> list[Figure]:
    chat = {"prompt": PROMPT, "model": bench.model}
    servers = {
        "kyma-mcp": (bench.kyma_module(KYMA_TIER="4"), chat),
        "floor": (bench.forwarding(), {**chat, "stream": True}),
    }
    singles: dict[str, list[float]] = {name: [] for name in servers}
    bursts: dict[str, list[float]] = {name: [] for name in servers}
    async with bench.emulator.switched(latency_ms=LATENCY_MS):
        for turn in range(bench.counts.concurrency_rounds):
            for name, (command, arguments) in rotated(list(servers.items()), turn):
                single, burst = await _round(bench, command, arguments)
                singles[name].append(single)
                bursts[name].append(burst)
    n = bench.counts.concurrent_calls
    return [
        Figure(
            "concurrency",
            f"{n} concurrent `chat` calls, wall time (Tier 4, {LATENCY_MS} ms upstream)",
            "ms",
            Summary.of(bursts["kyma-mcp"]),
            Baseline("one `chat` call", Summary.of(singles["kyma-mcp"])),
            ratio_at_most(TARGET),
        ),
        Figure(
            "concurrency",
            f"{n} concurrent calls, bare forwarding MCPServer (reference)",
            "ms",
            Summary.of(bursts["floor"]),
            Baseline("one forwarded call", Summary.of(singles["floor"])),
        ),
    ]
