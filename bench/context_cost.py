"""Context cost: the bytes of the agent's context that kyma-mcp's tool list and results take.

`tools/list` is read whole, as on the wire, with a breakdown per tool and per field (kept in
the JSON under `details.tools_list`); a short `chat` result is read against its reply, which it
carries twice (as text and as structured content), with its breakdown under `details.chat_result`.
"""

from __future__ import annotations

import json
from typing import Any

from bench.harness import Bench
from bench.stats import Baseline, Figure, median_at_most, single
from bench.upstream import PROMPT
from bench.wire import StdioServer

TOOLS_LIST_LIMIT = 6000
"""6 KB, read strictly as 6,000 bytes."""
RESULT_OVERHEAD_LIMIT = 300


def size(value: Any) -> int:
    """Bytes of `value` as compact UTF-8 JSON, the way the SDK writes it."""
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


def tool_breakdown(tool: dict[str, Any]) -> dict[str, Any]:
    """Bytes of one tool definition: whole, per field, and per input property."""
    fields = {key: size(tool[key]) if key in tool else 0 for key in ("description", "inputSchema", "outputSchema")}
    schema, output = tool.get("inputSchema", {}), tool.get("outputSchema", {})
    return {
        "name": tool["name"],
        "total": size(tool),
        **fields,
        "other": size(tool) - sum(fields.values()),
        "input_properties": {name: size(value) for name, value in schema.get("properties", {}).items()},
        "input_defs": {name: size(value) for name, value in schema.get("$defs", {}).items()},
        "output_properties": {name: size(value) for name, value in output.get("properties", {}).items()},
    }


def result_breakdown(result: dict[str, Any]) -> dict[str, Any]:
    """Bytes of a tool result: whole, per member, and per structured field (the name's bytes included)."""
    structured: dict[str, Any] = result.get("structuredContent") or {}
    return {
        "total": size(result),
        "members": {key: size({key: value}) - 2 for key, value in result.items()},
        "structured_fields": {key: size({key: value}) - 2 for key, value in structured.items()},
    }


def reply_of(result: dict[str, Any]) -> str:
    """chat's reply: its structured `reply` (older results), else its text before the notes."""
    structured: dict[str, Any] = result.get("structuredContent") or {}
    if "reply" in structured:
        return str(structured["reply"])
    text = "".join(block.get("text", "") for block in result.get("content", []) if block.get("type") == "text")
    return text.split("\n\n---\n", 1)[0]


def not_one_sentence(tools: list[dict[str, Any]]) -> list[str]:
    """Tools whose description is not one sentence (saying when to use the tool)."""
    return [tool["name"] for tool in tools if ". " in tool.get("description", "").strip().removesuffix(".")]


async def run(bench: Bench) -> list[Figure]:
    chat = {"prompt": PROMPT, "model": bench.model}
    async with (
        StdioServer.launched(bench.kyma_module(), stderr=bench.server_log) as kyma,
        StdioServer.launched(bench.bare(), stderr=bench.server_log) as bare,
        StdioServer.launched(bench.forwarding(), stderr=bench.server_log) as floor,
    ):
        for server in (kyma, bare, floor):
            await server.handshake()
        listed, bare_listed = await kyma.request("tools/list"), await bare.request("tools/list")
        await floor.request("tools/list")
        result = await kyma.call_tool("chat", chat)
        floor_result = await floor.call_tool("chat", {**chat, "stream": True})
    tools: list[dict[str, Any]] = listed.result["tools"]
    bench.details["tools_list"] = [tool_breakdown(tool) for tool in tools]
    if wordy := not_one_sentence(tools):
        bench.notes.append(f"tools/list: more than one sentence in the description of {', '.join(wordy)}.")
    reply = len(reply_of(result.result).encode())
    limit = reply + RESULT_OVERHEAD_LIMIT
    bench.details["chat_result"] = result_breakdown(result.result)
    return [
        Figure(
            "context cost",
            f"`tools/list` answer, {len(tools)} default tools ({', '.join(tool['name'] for tool in tools)})",
            "bytes",
            single(listed.wire_bytes),
            Baseline("bare MCPServer, 1 tool", single(bare_listed.wire_bytes)),
            median_at_most(TOOLS_LIST_LIMIT, "bytes"),
        ),
        Figure(
            "context cost",
            f"short `chat` result (the JSON-RPC `result`; {reply:,} B reply)",
            "bytes",
            single(size(result.result)),
            Baseline("bare forwarding MCPServer, same reply", single(size(floor_result.result))),
            median_at_most(limit, "bytes", shown=f"reply + {RESULT_OVERHEAD_LIMIT} = {limit:,} B"),
        ),
    ]
