"""The tools end to end against the emulator's three dialects: kyma, documented and openai.

A guess only the emulator makes cannot pass alone: `documented` serves only what a source
documents, `openai` is a plain OpenAI-compatible server. `KYMA_TEST_DIALECTS=documented` (a
comma-separated list) runs a quick subset locally; CI runs all three.
"""

import json
import os
from pathlib import Path

import anyio
import pytest

from kyma_mcp.emulator import EmulatorHandle
from tests.conftest import ConnectFactory
from tests.results import structured, text_of

pytestmark = pytest.mark.anyio

DIALECTS = tuple(d.strip() for d in os.environ.get("KYMA_TEST_DIALECTS", "kyma,documented,openai").split(",") if d)
WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}


@pytest.fixture(params=DIALECTS)
def dialect(request: pytest.FixtureRequest, emulator: EmulatorHandle) -> str:
    emulator.switches.dialect = str(request.param)
    emulator.switches.image_delay_seconds = 0.1
    return str(request.param)


async def test_list_models(connect: ConnectFactory, dialect: str) -> None:
    async with connect() as client:
        result = await client.call_tool("list_models", {"limit": 100})

    data = structured(result)
    assert data["source"] == "live"  # the key went along, so even a gateway that wants it answered
    rows = data["models"]
    if dialect == "openai":
        assert rows
        assert all(row["kind"] == "unknown" for row in rows)  # no sign of a kind: never assumed chat
        return
    chat = [row for row in rows if row["kind"] == "chat"]
    assert chat
    assert all(row["input_usd_per_1m"] is not None and row["output_usd_per_1m"] is not None for row in chat)
    assert "price n/a" not in text_of(result).split("· image ·")[0]


async def test_recommend_cheapest_names_a_price(connect: ConnectFactory, dialect: str) -> None:
    async with connect() as client:
        result = await client.call_tool("recommend_model", {"task": "Classify tickets", "priority": "cheapest"})

    data = structured(result)
    if dialect == "openai":
        assert data["pick"] is None  # the gateway's list says nothing about kinds or prices
        return
    assert data["pick"]["estimated_cost_usd"] is not None
    assert "$" in data["pick"]["reason"]


async def test_chat_and_tool_calls(connect: ConnectFactory, dialect: str) -> None:
    async with connect() as client:
        reply = await client.call_tool("chat", {"prompt": "hello there"})
        called = await client.call_tool(
            "chat", {"prompt": "weather?", "tools": json.dumps([WEATHER]), "tool_choice": "required"}
        )

    data = structured(reply)
    assert data["finish_reason"] == "stop"
    assert data["reply"].startswith("Echo from qwen-3.6-plus")
    assert (data["usage"]["cost_usd"] is None) == (dialect == "openai")
    assert data["model_served"] == "qwen-3.6-plus"  # from X-Kyma-Model, or the chunks' own model field
    assert structured(called)["tool_calls"][0]["function"]["name"] == "get_weather"


async def test_generate_image_with_the_default_model(
    connect: ConnectFactory, dialect: str, tmp_path: Path, emulator: EmulatorHandle
) -> None:
    async with connect(output_dir=str(tmp_path)) as client:
        result = await client.call_tool("generate_image", {"prompt": "a fox in the snow"})
        data = structured(result)
        again = None
        if dialect != "openai":  # a synchronous answer has no job to look up
            again = await client.call_tool("get_image_job", {"job_id": data["job_id"]})

    assert data["status"] == "succeeded"
    assert data["model"] == "recraft-v4"
    assert len(data["images"]) == 1
    assert await anyio.Path(data["images"][0]["file"]).is_file()
    assert again is None or structured(again)["images"][0]["file"] == data["images"][0]["file"]
    assert len(emulator.state.jobs) == 1


async def test_get_limits(connect: ConnectFactory, dialect: str) -> None:
    async with connect() as client:
        data = structured(await client.call_tool("get_limits", {}))

    expected = {"kyma": (0, "account"), "documented": (0, "rpm_limit"), "openai": (None, "unknown")}
    assert (data["tier"], data["tier_from"]) == expected[dialect]


@pytest.mark.skipif("openai" not in DIALECTS, reason="KYMA_TEST_DIALECTS leaves openai out")
async def test_a_hundred_calls_to_one_model_on_openai_are_all_sent(
    connect: ConnectFactory, emulator: EmulatorHandle
) -> None:
    emulator.switches.dialect = "openai"
    async with connect() as client:
        results = [
            await client.call_tool("chat", {"prompt": f"call {n}", "model": "qwen-3.6-plus"}) for n in range(100)
        ]

    assert [r for r in results if r.is_error] == []
    assert emulator.state.requests["/v1/chat/completions"] == 100


@pytest.mark.skipif("documented" not in DIALECTS, reason="KYMA_TEST_DIALECTS leaves documented out")
async def test_sixty_calls_on_documented_tier_2_are_all_sent(connect: ConnectFactory, emulator: EmulatorHandle) -> None:
    emulator.switches.dialect = "documented"
    emulator.switches.tier = 2
    emulator.switches.enforce_rate_limits = True
    async with connect() as client:
        results = [await client.call_tool("chat", {"prompt": f"call {n}", "model": "qwen-3.6-plus"}) for n in range(60)]

    assert [r for r in results if r.is_error] == []
    assert emulator.state.requests["/v1/chat/completions"] == 60
