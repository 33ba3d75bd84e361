"""Start-up, memory after start, and shutdown: what a host pays each time it launches the server.

Each run spawns a server, waits for `server/discover` and `tools/list` to be answered (cold
start), reads its resident memory, then closes stdin and times the exit. The kyma-mcp launch
paths and the bare one-tool `MCPServer` take turns, so drift on the machine hits them alike.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from bench import uv_paths
from bench.harness import Bench, rotated
from bench.stats import Baseline, Figure, Summary, Unit, ratio_at_most
from bench.wire import ServerCommand, StdioServer

COLD_START_TARGET = 1.10
MEMORY_TARGET = 1.15
SHUTDOWN_TARGET = 1.20


@dataclass(frozen=True)
class LaunchSample:
    ready_ms: float
    cpu_ms: float | None
    """The server's CPU time until tools/list was answered: what start-up costs without the machine's noise."""
    rss_mib: float | None
    exit_ms: float | None


Samples = dict[str, list[LaunchSample]]
"""Per launch path's label."""


async def launch_once(bench: Bench, command: ServerCommand) -> LaunchSample:
    """Spawn → tools/list answered; then memory and the exit after stdin closes (not behind a launcher)."""
    started = time.monotonic()
    async with StdioServer.launched(command, stderr=bench.server_log) as server:
        await server.handshake()
        listed = await server.request("tools/list")
        ready_ms = (listed.received_at - started) * 1000
        if command.behind_launcher:
            return LaunchSample(ready_ms, None, None, None)
        cpu_ms, rss = server.cpu_ms(), server.rss_mib()
        exit_ms = await server.exit_seconds() * 1000
    return LaunchSample(ready_ms, cpu_ms, rss, exit_ms)


async def run(bench: Bench) -> list[Figure]:
    kyma = [bench.kyma_module()]
    if (script := bench.kyma_script()) is not None:
        kyma.append(script)
    else:
        bench.notes.append("console script: no `kyma-mcp` next to this interpreter (install the package).")
    bare = bench.bare()
    async with uv_paths.prepared(bench) as uv_commands:
        commands = [bare, *kyma, *uv_commands]
        for _ in range(bench.counts.launch_warmups):  # warm the page cache and bytecode; not counted
            for command in commands:
                await launch_once(bench, command)
        samples: Samples = {command.label: [] for command in commands}
        for turn in range(bench.counts.cold_starts):
            for command in rotated(commands, turn):
                samples[command.label].append(await launch_once(bench, command))
    return [
        *_cold_starts(samples, bare, [*kyma, *uv_commands]),
        _figure("cold start", f"CPU time until ready, {kyma[0].label}", "ms", samples, kyma[0], bare, None),
        _figure("memory", f"RSS after start, {kyma[0].label}", "MiB", samples, kyma[0], bare, MEMORY_TARGET),
        *(
            _figure("shutdown", f"exit after stdin closes, {c.label}", "ms", samples, c, bare, SHUTDOWN_TARGET)
            for c in kyma
        ),
    ]


def _cold_starts(samples: Samples, bare: ServerCommand, kyma: list[ServerCommand]) -> list[Figure]:
    """Every launch path against the bare script; the target binds those not behind a launcher."""
    baseline = Baseline(bare.label, Summary.of([sample.ready_ms for sample in samples[bare.label]]))
    return [
        Figure(
            "cold start",
            command.label,
            "ms",
            Summary.of([sample.ready_ms for sample in samples[command.label]]),
            baseline,
            None if command.behind_launcher else ratio_at_most(COLD_START_TARGET),
            note="uvx resolves the environment, then starts Python: no target" if command.behind_launcher else "",
        )
        for command in kyma
    ]


def _figure(
    benchmark: str,
    name: str,
    unit: Unit,
    samples: Samples,
    command: ServerCommand,
    bare: ServerCommand,
    target: float | None,
) -> Figure:
    """CPU time to ready, memory or shutdown time of `command` against the bare script's."""

    def summary(label: str) -> Summary:
        values = [_reading(benchmark, sample) for sample in samples[label]]
        return Summary.of([value for value in values if value is not None])

    baseline = Baseline(bare.label, summary(bare.label))
    checked = None if target is None else ratio_at_most(target)
    return Figure(benchmark, name, unit, summary(command.label), baseline, checked)


def _reading(benchmark: str, sample: LaunchSample) -> float | None:
    return {"cold start": sample.cpu_ms, "memory": sample.rss_mib, "shutdown": sample.exit_ms}[benchmark]
