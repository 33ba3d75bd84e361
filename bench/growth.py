"""Memory growth: resident memory after 2,000 `chat` calls, to catch a leak.

Growth is read from the end of a warm-up (the first 100 calls fill caches, pools and lazy
imports, which is not a leak) to the last call; the bare forwarding server makes the same
calls, turn about, as the reference.
"""

from __future__ import annotations

from bench.harness import Bench
from bench.stats import Figure, median_at_most, single
from bench.upstream import PROMPT

TARGET_MIB = 5e6 / 2**20
"""5 MB."""


async def run(bench: Bench) -> list[Figure]:
    total, warmup = bench.counts.growth_calls, bench.counts.growth_warmup_calls
    chat = {"prompt": PROMPT, "model": bench.model}
    async with bench.kyma_and_floor() as (kyma, floor):
        servers = {"kyma-mcp": (kyma, chat), "floor": (floor, {**chat, "stream": True})}
        started = {name: server.rss_mib() for name, (server, _) in servers.items()}
        warm: dict[str, float] = {}
        for call in range(total):
            if call == warmup:
                warm = {name: server.rss_mib() for name, (server, _) in servers.items()}
            for server, arguments in servers.values():
                await server.call_tool("chat", arguments)
        ended = {name: server.rss_mib() for name, (server, _) in servers.items()}
    warm = warm or started
    kyma_name, floor_name = "kyma-mcp `chat`", "bare forwarding MCPServer (reference)"
    after_warmup, from_start = f"over calls {warmup}-{total}", f"over all {total} calls"
    return [
        Figure(
            "memory",
            f"RSS growth {after_warmup}, {kyma_name}",
            "MiB",
            single(ended["kyma-mcp"] - warm["kyma-mcp"]),
            target=median_at_most(TARGET_MIB, "MiB", shown="5 MB"),
        ),
        _growth(f"{after_warmup}, {floor_name}", ended["floor"] - warm["floor"]),
        _growth(f"{from_start}, {kyma_name}", ended["kyma-mcp"] - started["kyma-mcp"]),
        _growth(f"{from_start}, {floor_name}", ended["floor"] - started["floor"]),
    ]


def _growth(what: str, mib: float) -> Figure:
    return Figure("memory", f"RSS growth {what}", "MiB", single(mib))
