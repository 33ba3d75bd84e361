"""What a model reads of each tool's result in a host that shows structured content instead of text.

Claude Code, Codex, fast-agent and pydantic-ai hand their model a result's structured content when it
has any, and its text only otherwise; Codex also drops the image previews then. So for every tool this
checks the facts the model must read (the reply and its notes, the pick and its reason, the next step)
in `host_view`: the structured content as JSON if present, else the text. Each test records the bytes
of every channel (`pytest -rP` or the junit XML shows them).
"""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.types import CallToolResult, ImageContent

from kyma_mcp.emulator import EmulatorHandle
from kyma_mcp.server import build_server
from kyma_mcp.server.context import RESULT_META
from tests.conftest import BOTH_ERAS, ConnectFactory, emulator_settings
from tests.results import structured, text_of

pytestmark = pytest.mark.anyio

TEXT_FIRST = ("chat", "list_models", "recommend_model", "generate_image", "get_image_job")
"""Tools whose value is what they say: no structured content, no output schema; facts in `_meta`."""
DATA_TOOLS = ("compare", "get_limits")
"""Tools whose structured content programs read: it carries the model-facing sentences too."""

Recorder = Callable[[str, object], None]


def host_view(result: CallToolResult) -> str:
    """What a structured-content host shows its model: the structured content, else the text."""
    if result.structured_content is not None:
        return json.dumps(result.structured_content, ensure_ascii=False)
    return text_of(result)


def record_channels(record_property: Recorder, result: CallToolResult) -> dict[str, int]:
    """The bytes of each channel of `result`, recorded on the test."""
    sizes = {
        "text": len(text_of(result).encode()),
        "structuredContent": len(json.dumps(result.structured_content).encode()) if result.structured_content else 0,
        "_meta": len(json.dumps(result.meta).encode()) if result.meta else 0,
        "images": sum(len(block.data) for block in result.content if isinstance(block, ImageContent)),
    }
    for channel, size in sizes.items():
        record_property(f"{channel}_bytes", size)
    print(f"channel bytes: {sizes}")  # noqa: T201 - shown by `pytest -rP`
    return sizes


def assert_text_first(result: CallToolResult) -> None:
    assert not result.is_error, text_of(result)
    assert result.structured_content is None
    assert result.meta is not None
    assert RESULT_META in result.meta


async def test_only_the_data_tools_advertise_an_output_schema(connect: ConnectFactory) -> None:
    async with connect() as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}

    assert sorted(tools) == sorted(TEXT_FIRST + DATA_TOOLS)
    assert [name for name in TEXT_FIRST if tools[name].output_schema is not None] == []
    assert [name for name in DATA_TOOLS if tools[name].output_schema is None] == []


async def test_chat_shows_the_reply_its_notes_and_the_thread(
    connect: ConnectFactory, record_property: Recorder
) -> None:
    async with connect() as client:
        result = await client.call_tool("chat", {"prompt": "[[words=50]] long please", "max_tokens": 5})

    assert_text_first(result)
    view, data = host_view(result), structured(result)
    assert data["reply"] in view
    assert "Call again with a larger max_tokens" in view  # the length note: the next step
    assert f"conversation_id: {data['conversation_id']}" in view
    assert "reply" not in (result.meta or {})[RESULT_META]  # the reply travels once
    record_channels(record_property, result)


async def test_list_models_shows_one_line_per_model_and_the_next_page(
    connect: ConnectFactory, record_property: Recorder
) -> None:
    async with connect() as client:
        result = await client.call_tool("list_models", {"kind": "chat", "limit": 3})

    assert_text_first(result)
    view, data = host_view(result), structured(result)
    assert all(f"{row['id']} · ctx" in view for row in data["models"])
    assert f"More: call list_models with offset={data['next_offset']}." in view
    sizes = record_channels(record_property, result)
    assert sizes["text"] < sizes["_meta"]  # the lines the model reads are smaller than the rows


async def test_recommend_model_shows_the_pick_its_reason_and_what_was_understood(
    connect: ConnectFactory, record_property: Recorder
) -> None:
    async with connect() as client:
        result = await client.call_tool("recommend_model", {"task": "summarise a 300-page PDF"})

    assert_text_first(result)
    view, pick = host_view(result), structured(result)["pick"]
    assert f"Pick: {pick['model']}. {pick['reason']}" in view
    assert f'chat arguments: {{"model": "{pick["model"]}"}}' in view
    assert "Understood: chat task" in view
    assert "300 pages ≈ 150,000 input tokens" in view
    record_channels(record_property, result)


async def test_a_finished_image_shows_its_preview_and_file(
    emulator: EmulatorHandle, tmp_path: Path, record_property: Recorder
) -> None:
    async with Client(build_server(emulator_settings(emulator, output_dir=tmp_path))) as client:
        result = await client.call_tool("generate_image", {"prompt": "a red fox"})
        again = await client.call_tool("get_image_job", {"job_id": structured(result)["job_id"]})

    for delivered in (result, again):
        assert_text_first(delivered)  # Codex keeps the previews only without structured content
        data = structured(delivered)
        assert [block.mime_type for block in delivered.content if isinstance(block, ImageContent)] == ["image/jpeg"]
        assert data["job_id"] in host_view(delivered)
        assert data["images"][0]["file"] in host_view(delivered)
    record_channels(record_property, result)


async def test_a_running_image_job_shows_the_next_step(
    emulator: EmulatorHandle, tmp_path: Path, record_property: Recorder
) -> None:
    emulator.switches.image_delay_seconds = 1.8
    settings = emulator_settings(emulator, output_dir=tmp_path, tool_timeout_seconds=0.8)
    async with Client(build_server(settings)) as client:
        result = await client.call_tool("generate_image", {"prompt": "a slow sunrise"})

    assert_text_first(result)
    job_id = structured(result)["job_id"]
    assert f'call get_image_job with job_id="{job_id}" to keep waiting' in host_view(result)
    record_channels(record_property, result)


async def test_compare_shows_every_answer_and_the_comparison(
    connect: ConnectFactory, record_property: Recorder
) -> None:
    async with connect() as client:
        result = await client.call_tool("compare", {"prompt": "Say hi", "models": ["qwen-3.6-plus", "kimi-k2.5"]})

    view, data = host_view(result), structured(result)
    assert result.structured_content is not None
    for section in data["sections"]:
        assert json.dumps(section["answer"]["reply"], ensure_ascii=False) in view
    assert json.dumps(data["comparison"], ensure_ascii=False) in view
    assert "Comparison: " + data["comparison"] in text_of(result)
    record_channels(record_property, result)


async def test_get_limits_shows_the_tier_the_balance_and_the_tally(
    connect: ConnectFactory, record_property: Recorder
) -> None:
    async with connect() as client:
        await client.call_tool("list_models", {})
        result = await client.call_tool("get_limits", {})

    view = host_view(result)
    data: dict[str, Any] = structured(result)
    assert '"tier": 0' in view
    assert f'"balance_usd": {data["balance_usd"]}' in view
    assert '"list_models": 1' in view
    record_channels(record_property, result)


SHORT_CHAT_OVERHEAD_BYTES = 300
"""A short chat's JSON-RPC `result` is at most its reply and this much: the SDK's own fields (isError,
resultType, the 2026-era serverInfo stamp) are ~160 B, the rest is the thread id."""


@BOTH_ERAS  # the wire result differs by era (the 2026 era stamps serverInfo)
async def test_a_short_chat_result_is_its_reply_and_at_most_300_bytes(
    emulator: EmulatorHandle, era: str, record_property: Recorder
) -> None:
    server = build_server(emulator_settings(emulator, result_facts=False))
    async with Client(server) if era == "auto" else Client(server, mode="legacy") as client:
        result = await client.call_tool("chat", {"prompt": "Say hi"})

    wire = result.model_dump(mode="json", by_alias=True, exclude_none=True)
    size = len(json.dumps(wire, separators=(",", ":"), ensure_ascii=False).encode())
    reply = reply_text(result)
    overhead = size - len(json.dumps(reply, ensure_ascii=False).encode())
    record_property("result_bytes", size)
    record_property("overhead_bytes", overhead)
    print(f"short chat: {size} B for a {size - overhead} B reply (+{overhead} B)")  # noqa: T201 - pytest -rP
    assert result.structured_content is None
    assert result.meta is None or RESULT_META not in result.meta
    assert text_of(result).count(reply) == 1
    assert overhead <= SHORT_CHAT_OVERHEAD_BYTES, wire


def reply_text(result: CallToolResult) -> str:
    return text_of(result).split("\n\n---\n", 1)[0]
