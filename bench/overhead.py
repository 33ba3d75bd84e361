"""Per-call overhead: what an MCP hop adds to one chat request, kyma-mcp against the SDK's floor.

Every turn makes the same request directly with httpx2 (non-streaming and streaming), through a
bare forwarding `MCPServer` tool, and through kyma-mcp's `chat`, in rotating order, with the
emulator answering at once. "Added" is a call's time minus the direct call of the same turn in
the same mode (kyma-mcp always streams upstream), so slow moments of the machine cancel out.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

from bench.harness import Bench, rotated, timed
from bench.stats import Baseline, Figure, Summary, ratios_at_most
from bench.upstream import PROMPT, DirectChat
from bench.wire import JSONObject, StdioServer

TARGET = 1.2

Call = Callable[[], Awaitable[object]]


def _ignore_progress(_: JSONObject, __: float) -> None:
    """Asking for progress is what makes a server send it; its content does not matter here."""


async def run(bench: Bench) -> list[Figure]:
    direct = DirectChat(bench.emulator.base_url, bench.model)
    async with AsyncExitStack() as stack:
        stack.push_async_callback(direct.aclose)
        kyma = await stack.enter_async_context(StdioServer.launched(bench.kyma_module(), stderr=bench.server_log))
        floor = await stack.enter_async_context(StdioServer.launched(bench.forwarding(), stderr=bench.server_log))
        for server in (kyma, floor):
            await server.handshake()
            await server.request("tools/list")

        def forward(stream: bool, progress: bool = False) -> Call:
            arguments: dict[str, Any] = {"prompt": PROMPT, "model": bench.model, "stream": stream}
            return lambda: floor.call_tool("chat", arguments, on_progress=_ignore_progress if progress else None)

        def chat(progress: bool = False) -> Call:
            arguments = {"prompt": PROMPT, "model": bench.model}
            return lambda: kyma.call_tool("chat", arguments, on_progress=_ignore_progress if progress else None)

        calls: dict[str, Call] = {
            "direct, non-streaming": direct.complete,
            "direct, streaming": direct.stream,
            "floor, non-streaming": forward(stream=False),
            "floor, streaming": forward(stream=True),
            "floor, streaming, progress": forward(stream=True, progress=True),
            "kyma-mcp": chat(),
            "kyma-mcp, progress": chat(progress=True),
        }
        for call in calls.values():
            for _ in range(bench.counts.warmup_calls):
                await call()
        times: dict[str, list[float]] = {name: [] for name in calls}
        for turn in range(bench.counts.calls):
            for name, call in rotated(list(calls.items()), turn):
                times[name].append(await timed(call))
    return _figures(times)


def _figures(times: dict[str, list[float]]) -> list[Figure]:
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
