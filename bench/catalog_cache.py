"""Catalog: `list_models` served from the cache, in-process (no transport), against a bare echo tool.

The first call fetches the catalog from the emulator; every timed call must then come from the
cache. Both servers run under the SDK's in-memory `Client`, calls interleaved. The target reads
the server's side: the request sent as is, the result parsed, not validated against the tool's
output schema. How long a Python SDK client's `call_tool` takes, with that jsonschema validation
(which grows with the rows returned), is shown beside it.
"""

from __future__ import annotations

from typing import Any

from mcp import Client
from mcp.types import CallToolRequest, CallToolRequestParams, CallToolResult, TextContent
from pydantic import SecretStr

from bench.baselines.bare_server import server as bare_server
from bench.harness import Bench, rotated, timed
from bench.stats import Baseline, Figure, Summary, median_at_most
from bench.upstream import API_KEY
from kyma_mcp.server import build_server
from kyma_mcp.settings import Settings

TARGET_MS = 1.0


async def served(client: Client, tool: str, arguments: dict[str, Any]) -> CallToolResult:
    """A `tools/call` without the client's output-schema validation: what the server itself costs."""
    request = CallToolRequest(params=CallToolRequestParams(name=tool, arguments=arguments))
    return await client.session.send_request(request, CallToolResult)


async def run(bench: Bench) -> list[Figure]:
    settings = Settings(api_key=SecretStr(API_KEY), base_url=bench.emulator.base_url)
    async with Client(build_server(settings)) as kyma, Client(bare_server) as bare:
        if (source := await _source(kyma)) != "live":
            raise RuntimeError(f"the first list_models was not fetched live but {source}")
        calls = {
            "kyma-mcp": lambda: served(kyma, "list_models", {}),
            "bare": lambda: served(bare, "echo", {"text": "hello"}),
            "kyma-mcp, validated": lambda: kyma.call_tool("list_models", {}),
            "bare, validated": lambda: bare.call_tool("echo", {"text": "hello"}),
        }
        for call in calls.values():
            await call()
        times: dict[str, list[float]] = {name: [] for name in calls}
        for turn in range(bench.counts.catalog_calls):
            for name, call in rotated(list(calls.items()), turn):
                times[name].append(await timed(call))
        if (source := await _source(kyma)) != "cached":
            raise RuntimeError(f"list_models answered from {source}, not from its cache")
    return [
        Figure(
            "catalog",
            "`list_models` from cache, in-process (default page), server side",
            "ms",
            Summary.of(times["kyma-mcp"]),
            Baseline("bare MCPServer echo tool, in-process", Summary.of(times["bare"])),
            median_at_most(TARGET_MS, "ms", shown=f"{TARGET_MS:g} ms median"),
        ),
        Figure(
            "catalog",
            "the same through the Python SDK client's `call_tool` (validates the result's JSON schema)",
            "ms",
            Summary.of(times["kyma-mcp, validated"]),
            Baseline("bare MCPServer echo tool, validated", Summary.of(times["bare, validated"])),
        ),
    ]


async def _source(client: Client) -> object:
    """Where `list_models` got the catalog from: live, cached or bundled."""
    result = await client.call_tool("list_models", {})
    text = "".join(block.text for block in result.content if isinstance(block, TextContent))
    return text.partition("(source: ")[2].partition(")")[0] or None  # "35 models match (source: live)."
