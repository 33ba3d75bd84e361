"""Time to first progress: how soon the agent's host hears that tokens are arriving.

The emulator streams one token every 20 ms and records when it wrote the first chunk
(`first_chunk_at` in `/_emulator/state`, on the system's monotonic clock); the client stamps
the first `notifications/progress` it reads. kyma-mcp and the bare forwarding tool, which
reports progress at its first token too, take turns.
"""

from __future__ import annotations

from typing import Any

from bench.harness import Bench, rotated
from bench.stats import Baseline, Figure, Summary, median_at_most
from bench.upstream import PROMPT, Emulator
from bench.wire import JSONObject, StdioServer

TOKEN_INTERVAL_MS = 20
TARGET_MS = 2.0
_PROMPT = PROMPT + " [[words=6]]"
"""Six tokens (the emulator's reply-length directive): enough to stream, short enough to repeat."""


async def first_progress_ms(emulator: Emulator, server: StdioServer, tool: str, arguments: dict[str, Any]) -> float:
    """Milliseconds from the emulator writing the first token to the client reading the first progress.

    Raises:
        RuntimeError: no progress arrived, or the emulator recorded no streamed reply.
    """
    arrivals: list[float] = []

    def on_progress(_: JSONObject, at: float) -> None:
        arrivals.append(at)

    await server.call_tool(tool, arguments, on_progress=on_progress)
    first_chunk_at = (await emulator.state()).get("first_chunk_at")
    if not arrivals:
        raise RuntimeError(f"{tool} sent no progress notification while streaming")
    if first_chunk_at is None:
        raise RuntimeError("the emulator recorded no first chunk (is it older than the benchmarks?)")
    return (arrivals[0] - first_chunk_at) * 1000


async def run(bench: Bench) -> list[Figure]:
    emulator = bench.emulator
    chat = {"prompt": _PROMPT, "model": bench.model}
    async with (
        emulator.switched(token_interval_ms=TOKEN_INTERVAL_MS),
        bench.kyma_and_floor() as (kyma, floor),
    ):
        servers = {"kyma-mcp": (kyma, chat), "floor": (floor, {**chat, "stream": True})}
        for server, arguments in servers.values():
            await first_progress_ms(emulator, server, "chat", arguments)  # warm-up, not counted
        delays: dict[str, list[float]] = {name: [] for name in servers}
        for turn in range(bench.counts.progress_runs):
            for name, (server, arguments) in rotated(list(servers.items()), turn):
                delays[name].append(await first_progress_ms(emulator, server, "chat", arguments))
    return [
        Figure(
            "time to first progress",
            f"first upstream token → first progress at the client, kyma-mcp `chat` ({TOKEN_INTERVAL_MS} ms/token)",
            "ms",
            Summary.of(delays["kyma-mcp"]),
            Baseline("bare forwarding MCPServer", Summary.of(delays["floor"])),
            median_at_most(TARGET_MS, "ms", shown=f"{TARGET_MS:g} ms median"),
        )
    ]
