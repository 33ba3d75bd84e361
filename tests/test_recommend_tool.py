"""`recommend_model` end to end: in-memory MCP client (both eras) → kyma-mcp → emulator, and offline."""

from __future__ import annotations

import pytest
from mcp import Client

from kyma_mcp.emulator import EmulatorHandle
from kyma_mcp.server import build_server
from kyma_mcp.settings import Settings
from tests.conftest import BOTH_ERAS, ConnectFactory
from tests.results import structured, text_of

pytestmark = pytest.mark.anyio


async def test_it_recommends_from_the_live_catalog_with_ready_arguments(connect: ConnectFactory) -> None:
    async with connect() as client:
        result = await client.call_tool(
            "recommend_model", {"task": "An agent that reads UI screenshots and calls browser tools"}
        )

    data = structured(result)
    assert data["source"] == "live"
    assert data["pick"]["model"] == "kimi-k2.6"
    assert data["pick"]["chat"] == {"model": "kimi-k2.6"}
    assert data["cheaper"]["model"] == "gemma-4-31b"
    assert data["understood"]["needs"] == ["tools", "vision"]
    assert text_of(result).startswith(
        "Pick: kimi-k2.6. Kyma's guide picks it for agents that see images and call tools"
    )
    assert '  chat arguments: {"model": "kimi-k2.6"}' in text_of(result)


async def test_the_picks_chat_arguments_work_in_a_chat_call(connect: ConnectFactory) -> None:
    async with connect() as client:
        recommendation = structured(
            await client.call_tool("recommend_model", {"task": "Write a 40k-token technical report"})
        )
        arguments = recommendation["pick"]["chat"]
        reply = structured(await client.call_tool("chat", {**arguments, "prompt": "Outline the report."}))

    assert arguments == {"model": "glm-5.1", "max_tokens": 40_000}
    assert reply["model_served"] == "glm-5.1"


async def test_constraints_and_priority_arrive(connect: ConnectFactory) -> None:
    async with connect() as client:
        data = structured(
            await client.call_tool(
                "recommend_model",
                {"task": "Summarize reports", "needs": ["long_context"], "min_output": 20_000, "priority": "cheapest"},
            )
        )

    assert data["pick"]["model"] == "deepseek-v4-flash"
    assert data["understood"]["min_output"] == 20_000
    assert data["cheaper"] is None


async def test_it_explains_when_nothing_fits(connect: ConnectFactory) -> None:
    async with connect() as client:
        result = await client.call_tool("recommend_model", {"task": "Read this chart", "needs": ["vision", "caching"]})

    data = structured(result)
    assert data["pick"] is None
    assert text_of(result).startswith("No model meets every constraint: no chat model has caching + vision together")


async def test_bad_arguments_are_invalid_requests(connect: ConnectFactory) -> None:
    async with connect() as client:
        result = await client.call_tool("recommend_model", {"task": "x", "priority": "cheap", "needs": ["teleport"]})

    assert result.is_error
    assert text_of(result).startswith("[invalid_request] Bad arguments for recommend_model:")


async def test_it_works_with_no_key_and_no_network(era: str) -> None:
    server = build_server(Settings(base_url="http://127.0.0.1:9/v1", max_retries=0, result_facts=True))
    async with Client(server) if era == "auto" else Client(server, mode="legacy") as client:
        data = structured(await client.call_tool("recommend_model", {"task": "Design a logo for a bakery"}))

    assert data["source"] == "bundled"
    assert data["pick"]["model"] == "ideogram-v3"
    assert data["pick"]["generate_image"] == {"model": "ideogram-v3"}


@BOTH_ERAS
async def test_it_is_advertised_as_read_only(connect: ConnectFactory, emulator: EmulatorHandle) -> None:
    async with connect() as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}

    for name in ("recommend_model", "get_limits"):
        annotations = tools[name].annotations
        assert annotations is not None
        assert annotations.read_only_hint is True
        assert len((tools[name].description or "").strip().splitlines()) == 1
    assert tools["recommend_model"].output_schema is None  # text first: its value is its sentences
    assert tools["get_limits"].output_schema is not None
    assert emulator.state.requests["/v1/chat/completions"] == 0
