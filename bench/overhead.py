"""Per-call overhead: what an MCP hop adds to one chat request, kyma-mcp against the SDK's floor.

Every turn makes the same request directly with httpx2 (non-streaming and streaming), through a
bare forwarding `MCPServer` tool, and through kyma-mcp's `chat`, in rotating order, with the
emulator answering at once. "Added" is a call's time minus the direct call of the same turn in
the same mode (kyma-mcp always streams upstream), so slow moments of the machine cancel out.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

from bench.harness import Bench, rotated, timed
from bench.stats import Baseline, Figure, Summary, ratios_at_most
from bench.upstream import PROMPT, DirectChat
from bench.wire import JSONObject, StdioServer

TARGET = 1.2


@dataclass(frozen=True)
class Variant:
    """One way of making the request, and the server whose CPU it uses (none for a direct request)."""

    call: Callable[[], Awaitable[object]]
    server: StdioServer | None = None


def _ignore_progress(_: JSONObject, __: float) -> None:
    """Asking for progress is what makes a server send it; its content does not matter here."""


async def run(bench: Bench) -> list[Figure]:
    direct = DirectChat(bench.emulator.base_url, bench.model)
    async with AsyncExitStack() as stack:
        stack.push_async_callback(direct.aclose)
        kyma, floor = await stack.enter_async_context(bench.kyma_and_floor())

        def forward(stream: bool, progress: bool = False) -> Variant:
            arguments: dict[str, Any] = {"prompt": PROMPT, "model": bench.model, "stream": stream}
            on_progress = _ignore_progress if progress else None
            return Variant(lambda: floor.call_tool("chat", arguments, on_progress=on_progress), floor)

        def chat(progress: bool = False) -> Variant:
            arguments = {"prompt": PROMPT, "model": bench.model}
            on_progress = _ignore_progress if progress else None
            return Variant(lambda: kyma.call_tool("chat", arguments, on_progress=on_progress), kyma)

        variants: dict[str, Variant] = {
            "direct, non-streaming": Variant(direct.complete),
            "direct, streaming": Variant(direct.stream),
            "floor, non-streaming": forward(stream=False),
            "floor, streaming": forward(stream=True),
            "floor, streaming, progress": forward(stream=True, progress=True),
            "kyma-mcp": chat(),
            "kyma-mcp, progress": chat(progress=True),
        }
        for variant in variants.values():
            for _ in range(bench.counts.warmup_calls):
                await variant.call()
        times: dict[str, list[float]] = {name: [] for name in variants}
        cpu: dict[str, list[float]] = {name: [] for name in variants}
        for turn in range(bench.counts.calls):
            for name, variant in rotated(list(variants.items()), turn):
                cpu_before = variant.server.cpu_ms() if variant.server else 0.0
                times[name].append(await timed(variant.call))
                cpu[name].append(variant.server.cpu_ms() - cpu_before if variant.server else 0.0)
    return [*_latency_figures(times), _cpu_figure(cpu)]


def _cpu_figure(cpu: dict[str, list[float]]) -> Figure:
    """What each call costs the server in CPU: the same comparison, without the machine's noise."""
    return Figure(
        "per-call overhead",
        "server CPU per call, kyma-mcp `chat`",
        "ms",
        Summary.of(cpu["kyma-mcp"]),
        Baseline("bare forwarding MCPServer, streaming", Summary.of(cpu["floor, streaming"])),
    )


def _latency_figures(times: dict[str, list[float]]) -> list[Figure]:
    def added(name: str, direct: str) -> Summary:
        return Summary.of([via - plain for via, plain in zip(times[name], times[direct], strict=True)])

    floor_plain = Baseline("bare forwarding MCPServer, streaming", added("floor, streaming", "direct, streaming"))
    floor_progress = Baseline(
        "bare forwarding MCPServer, streaming, progress", added("floor, streaming, progress", "direct, streaming")
    )
    group = "per-call overhead"
    return [
        Figure(group, "direct httpx2 request, non-streaming", "ms", Summary.of(times["direct, non-streaming"])),
        Figure(group, "direct httpx2 request, streaming", "ms", Summary.of(times["direct, streaming"])),
        Figure(
            group,
            "added by bare forwarding MCPServer, non-streaming",
            "ms",
            added("floor, non-streaming", "direct, non-streaming"),
        ),
        Figure(group, "added by bare forwarding MCPServer, streaming", "ms", floor_plain.value),
        Figure(
            group,
            "added by kyma-mcp `chat`",
            "ms",
            added("kyma-mcp", "direct, streaming"),
            floor_plain,
            ratios_at_most(TARGET),
        ),
        Figure(
            group,
            "added by kyma-mcp `chat`, client asks for progress",
            "ms",
            added("kyma-mcp, progress", "direct, streaming"),
            floor_progress,
            ratios_at_most(TARGET),
        ),
    ]
