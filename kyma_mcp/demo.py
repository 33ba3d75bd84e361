"""`kyma-mcp demo`: the whole product offline, as an agent would see it.

Starts the Kyma emulator on a free loopback port, launches `kyma-mcp` over stdio under the
MCP SDK's own client, calls the tools and prints what comes back. This is not the MCP server,
so it may print to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import anyio
from mcp import Client, StdioServerParameters
from mcp.types import CallToolResult, ImageContent, TextContent, TextResourceContents

from kyma_mcp.emulator import Switches, running_emulator
from kyma_mcp.recommend.ranking import Recommendation
from kyma_mcp.server.context import RESULT_META

DEMO_KEY = "ky-emulator-demo"


def main(argv: Sequence[str] | None = None) -> int:
    argparse.ArgumentParser(
        prog="kyma-mcp demo",
        description=(
            "Start a local Kyma emulator, launch kyma-mcp over stdio under the MCP SDK's client, call each "
            "tool and print what an agent would see. No key and no network needed; nothing is billed."
        ),
    ).parse_args(argv)
    with running_emulator(Switches(token_interval_ms=25)) as emulator, tempfile.TemporaryDirectory() as out:
        env = {
            "KYMA_BASE_URL": emulator.base_url,
            "KYMA_API_KEY": DEMO_KEY,
            "KYMA_OUTPUT_DIR": out,
            "KYMA_STORE_URL": f"sqlite://{Path(out) / 'demo-store.sqlite3'}",  # not the user's own threads
            "KYMA_RESULT_FACTS": "1",  # the demo prints facts (model served, usage) a model is not shown
            "PATH": os.environ.get("PATH", ""),
        }
        _say(
            f"Kyma emulator at {emulator.base_url}: a local stand-in for Kyma. Every reply below comes from it\n"
            "(echoed prompts and filler words, not a model's answer) and nothing is billed.\n"
            "Starting `kyma-mcp` over stdio, as an MCP host would…"
        )
        anyio.run(_tour, env)
    _heading("next")
    _say("  Use it from your MCP host with a real key from kymaapi.com (the installer keeps a backup;")
    _say("  --dry-run shows the change first; clients: claude-desktop, claude-code, cursor, vscode,")
    _say("  codex, gemini, windsurf), then check the setup with `kyma-mcp doctor`.")
    _say("next: kyma-mcp install --client claude-code")
    return 0


async def _tour(env: dict[str, str]) -> None:
    params = StdioServerParameters(command=sys.executable, args=["-m", "kyma_mcp"], env=env)
    async with Client(params) as client:
        tools = (await client.list_tools()).tools
        _heading("tools/list")
        for tool in tools:
            _say(f"  {tool.name:16} {(tool.description or '').splitlines()[0]}")

        _heading('list_models {"kind": "chat", "capability": "vision"}')
        _show(await client.call_tool("list_models", {"kind": "chat", "capability": "vision"}))

        task = "Refactor this Python module and add unit tests"
        _heading(f'recommend_model {{"task": "{task}"}}')
        recommendation = await client.call_tool("recommend_model", {"task": task})
        _show(recommendation)
        pick = Recommendation.model_validate(_facts(recommendation)).pick
        ready: dict[str, Any] = pick.chat if pick is not None and pick.chat else {"model": "best"}
        arguments = {**ready, "prompt": "Suggest three unit tests for a date parser."}
        _heading(f"chat {json.dumps(arguments)}  (the pick's ready-made arguments; an emulator reply)")
        _show(await client.call_tool("chat", arguments), fields=("model_served", "usage"))

        _heading('chat {"prompt": "Explain rate limits in one paragraph.", "model": "best"}  (streamed, emulated)')

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            _say(f"  … progress {progress:g}: {message}")

        result = await client.call_tool(
            "chat", {"prompt": "Explain rate limits in one paragraph.", "model": "best"}, progress_callback=on_progress
        )
        _show(result, fields=("model_requested", "model_served", "finish_reason", "usage", "latency_ms"))

        first_turn = {"prompt": "Name three uses for a message queue.", "model": "qwen-3.6-plus"}
        _heading(f"chat {json.dumps(first_turn)}  (starts a thread)")
        first = await client.call_tool("chat", first_turn)
        _show(first, fields=("model_served", "conversation_id"))
        started = _facts(first)
        thread = str(started.get("conversation_id"))
        second_turn = {"prompt": "Critique that list.", "model": "deepseek-r1", "conversation_id": thread}
        _heading(f"chat {json.dumps(second_turn)}  (the same thread, another model)")
        _show(await client.call_tool("chat", second_turn), fields=("model_served", "usage"))
        _heading(f"resources/read kyma://conversations/{thread}  (the thread as Markdown)")
        for contents in (await client.read_resource(f"kyma://conversations/{thread}")).contents:
            if isinstance(contents, TextResourceContents):
                _say(textwrap.indent(contents.text.rstrip(), "  | "))

        _heading('generate_image {"prompt": "A red fox in fresh snow, golden hour", "size": "16:9"}  (a job, polled)')
        result = await client.call_tool(
            "generate_image",
            {"prompt": "A red fox in fresh snow, golden hour", "size": "16:9"},
            progress_callback=on_progress,
        )
        _show(result, fields=("job_id", "status", "charged_usd"))
        delivered = _facts(result)
        images: list[dict[str, Any]] = delivered.get("images") or []
        for image in images:
            _say(f"  saved: {image['file']} ({image['width']}x{image['height']}; the demo's folder is temporary)")
        for block in result.content:
            if isinstance(block, ImageContent):
                _say(f"  preview sent to the agent: {block.mime_type}, {len(block.data) / 1000:.0f} KB of base64")

        capped = {
            "prompt": "Write a detailed 3,000-word market report.",
            "model": "kimi-k2.6",
            "max_tokens": 8000,
            "max_cost_usd": 0.0005,
        }
        _heading(f"chat {json.dumps(capped)}  (over its cap: refused before anything is sent)")
        _show(await client.call_tool("chat", capped))

        fan_out = {
            "prompt": "In one sentence: what is a message queue for?",
            "models": ["qwen-3.6-plus", "kimi-k2.6", "deepseek-r1"],
        }
        _heading(f"compare {json.dumps(fan_out)}  (three models at once, emulated)")
        compared = await client.call_tool("compare", fan_out, progress_callback=on_progress)
        _show(compared, fields=("total_cost_usd",))

        _heading("get_limits {}  (tier, limits, balance, this period's spend and this server's own tally)")
        _show(await client.call_tool("get_limits", {}))

        _heading('chat {"prompt": "…", "model": "no-such-model"}  (an error, as the agent reads it)')
        _show(await client.call_tool("chat", {"prompt": "hi", "model": "no-such-model"}))


def _show(result: CallToolResult, fields: Sequence[str] = ()) -> None:
    status = "ERROR" if result.is_error else "ok"
    text = "\n".join(block.text for block in result.content if isinstance(block, TextContent))
    _say(f"  [{status}]")
    _say(textwrap.indent(text, "  | "))
    structured = _facts(result)
    for field in fields:
        _say(f"  {field}: {_rendered(structured.get(field), field)}")


def _facts(result: CallToolResult) -> dict[str, Any]:
    """A result's data: a data tool's structured content, else a text-first tool's `_meta` facts."""
    if result.structured_content is not None:
        return result.structured_content
    facts: dict[str, Any] = (result.meta or {}).get(RESULT_META) or {}
    return facts


def _rendered(value: Any, key: str = "") -> str:
    """A field as a person reads it: money as `$0.00006`, not `6e-05`."""
    if isinstance(value, float) and ("usd" in key or "cost" in key):
        return money(value)
    if isinstance(value, dict):
        items = cast(dict[str, Any], value).items()
        return "{" + ", ".join(f"{k}: {_rendered(v, k)}" for k, v in items) + "}"
    return json.dumps(value, ensure_ascii=False)


def money(usd: float) -> str:
    """`6e-05` as `$0.00006`: every digit Kyma sent, no exponent, no trailing zeros."""
    digits = f"{usd:.10f}".rstrip("0").rstrip(".")
    return f"${digits or '0'}"


def _heading(text: str) -> None:
    _say(f"\n== {text}")


def _say(text: str) -> None:
    print(text, flush=True)
