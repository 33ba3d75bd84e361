"""Concurrency: 100 `chat` calls at once while the emulator takes 200 ms per request.

With Tier 4 pacing (300 requests/min, 200 per model) none of them has to wait for a slot, so
the wall time should stay near one call's. Each round starts a fresh server (a fresh pacing
window) and times one call, then the burst; the bare forwarding tool does the same for reference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import anyio

from bench.harness import Bench, rotated, timed
from bench.stats import Baseline, Figure, Summary, ratio_at_most
from bench.upstream import PROMPT
from bench.wire import ServerCommand, StdioServer, cpu_seconds

LATENCY_MS = 200
TARGET = 1.5


async def _burst(server: StdioServer, arguments: dict[str, Any], calls: int) -> None:
    async with anyio.create_task_group() as tasks:
        for _ in range(calls):
            tasks.start_soon(lambda: server.call_tool("chat", arguments))


@dataclass(frozen=True)
class Round:
    single_ms: float
    burst_ms: float
    server_cpu_ms: float
    """The server's CPU time per call of the burst."""
    emulator_cpu_ms: float
    """The emulator's, per call of the burst: the part of the wall time that is not the server's doing."""


async def _round(bench: Bench, command: ServerCommand, arguments: dict[str, Any]) -> Round:
    """One call's wall time and the burst's, and the burst's CPU per call, on a fresh server."""
    calls = bench.counts.concurrent_calls
    async with StdioServer.launched(command, stderr=bench.server_log) as server:
        await server.handshake()
        await server.request("tools/list")
        await server.call_tool("chat", arguments)  # warm-up, not counted
        single = await timed(lambda: server.call_tool("chat", arguments))
        server_before, emulator_before = server.cpu_ms(), cpu_seconds(bench.emulator.pid) * 1000
        burst = await timed(lambda: _burst(server, arguments, calls))
        server_cpu = (server.cpu_ms() - server_before) / calls
        emulator_cpu = (cpu_seconds(bench.emulator.pid) * 1000 - emulator_before) / calls
    return Round(single, burst, server_cpu, emulator_cpu)


async def run(bench: Bench) -> list[Figure]:
    chat = {"prompt": PROMPT, "model": bench.model}
    servers = {
        "kyma-mcp": (bench.kyma_module(KYMA_TIER="4"), chat),
        "floor": (bench.forwarding(), {**chat, "stream": True}),
    }
    rounds: dict[str, list[Round]] = {name: [] for name in servers}
    async with bench.emulator.switched(latency_ms=LATENCY_MS):
        for turn in range(bench.counts.concurrency_rounds):
            for name, (command, arguments) in rotated(list(servers.items()), turn):
                rounds[name].append(await _round(bench, command, arguments))
    kyma, floor = rounds["kyma-mcp"], rounds["floor"]
    n = bench.counts.concurrent_calls
    floor_name = "bare forwarding MCPServer"
    return [
        Figure(
            "concurrency",
            f"{n} concurrent `chat` calls, wall time (Tier 4, {LATENCY_MS} ms upstream)",
            "ms",
            Summary.of([r.burst_ms for r in kyma]),
            Baseline("one `chat` call", Summary.of([r.single_ms for r in kyma])),
            ratio_at_most(TARGET),
        ),
        Figure(
            "concurrency",
            f"{n} concurrent calls, {floor_name} (reference)",
            "ms",
            Summary.of([r.burst_ms for r in floor]),
            Baseline("one forwarded call", Summary.of([r.single_ms for r in floor])),
        ),
        Figure(
            "concurrency",
            "server CPU per call in the burst, kyma-mcp",
            "ms",
            Summary.of([r.server_cpu_ms for r in kyma]),
            Baseline(floor_name, Summary.of([r.server_cpu_ms for r in floor])),
        ),
        Figure(
            "concurrency",
            "emulator CPU per call in the burst, kyma-mcp's calls",
            "ms",
            Summary.of([r.emulator_cpu_ms for r in kyma]),
            Baseline(f"{floor_name}'s calls", Summary.of([r.emulator_cpu_ms for r in floor])),
        ),
    ]
