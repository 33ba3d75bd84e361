"""`list_models`: live rows with limits and prices, filters, paging, the cache and the offline snapshot."""

from typing import Any

import pytest

from kyma_mcp.catalog import bundled_models
from kyma_mcp.emulator import EmulatorHandle
from tests.conftest import ConnectFactory
from tests.results import structured, text_of

pytestmark = pytest.mark.anyio


async def test_rows_carry_limits_prices_and_capabilities(connect: ConnectFactory) -> None:
    async with connect() as client:
        result = await client.call_tool("list_models", {})

    body = structured(result)
    rows = {row["id"]: row for row in body["models"]}
    assert body["source"] == "live"
    assert body["total"] == len(bundled_models())
    assert body["next_offset"] is None
    assert rows["glm-5.1"]["max_output_tokens"] == 65_536
    assert rows["gemini-2.5-flash"]["context_window"] == 1_048_576
    assert rows["qwen-3.6-plus"]["input_usd_per_1m"] == 0.655
    assert rows["recraft-v3"]["image_usd"] == 0.054
    assert rows["recraft-v3"]["kind"] == "image"
    assert "glm-5.1 · ctx 203,000 · out 65,536 · $1.89/$5.94 per 1M in/out" in text_of(result)


async def test_filters_narrow_the_list(connect: ConnectFactory) -> None:
    async with connect() as client:
        vision = await client.call_tool("list_models", {"capability": "vision", "kind": "chat"})
        images = await client.call_tool("list_models", {"kind": "image"})
        roomy = await client.call_tool("list_models", {"min_context": 1_000_000, "min_output": 10_000})
        search = await client.call_tool("list_models", {"search": "Kimi"})

    assert {r["id"] for r in structured(vision)["models"]} == {
        "gemma-4-31b",
        "kimi-k2.5",
        "kimi-k2.6",
        "gemini-2.5-flash",
        "gemini-3-flash",
        "qwen-3.6-plus",
    }
    image_ids = {r["id"] for r in structured(images)["models"]}
    assert len(image_ids) == 16
    assert {"recraft-v4", "flux-2-pro", "gpt-image-2", "flux-1.1-ultra", "recraft-v3"} <= image_ids
    assert {r["id"] for r in structured(roomy)["models"]} == {"deepseek-v4-flash", "deepseek-v4-pro"}
    assert {r["id"] for r in structured(search)["models"]} == {"kimi-k2.5", "kimi-k2.6"}


async def test_pages_follow_next_offset(connect: ConnectFactory) -> None:
    seen: list[str] = []
    offset: int | None = 0
    async with connect() as client:
        while offset is not None:
            page = structured(await client.call_tool("list_models", {"limit": 5, "offset": offset}))
            seen += [row["id"] for row in page["models"]]
            offset = page["next_offset"]
            assert len(page["models"]) <= 5

    assert seen == sorted(m.id for m in bundled_models())


async def test_repeat_calls_are_served_from_the_cache(connect: ConnectFactory, emulator: EmulatorHandle) -> None:
    async with connect() as client:
        first = structured(await client.call_tool("list_models", {}))
        second = structured(await client.call_tool("list_models", {}))

    assert (first["source"], second["source"]) == ("live", "cached")
    assert emulator.state.requests["/v1/models"] == 1


async def test_an_unreachable_kyma_falls_back_to_the_bundled_snapshot(connect: ConnectFactory) -> None:
    async with connect(base_url="http://127.0.0.1:9/v1") as client:
        result = structured(await client.call_tool("list_models", {"kind": "chat"}))

    assert result["source"] == "bundled"
    assert result["total"] == len([m for m in bundled_models() if m.kind == "chat"])


@pytest.mark.parametrize(
    "arguments",
    [
        {"capability": "telepathy"},
        {"limit": 0},
        {"limit": 1000},
        {"offset": -1},
        {"kind": "sculpture"},
        {"min_context": 0},
    ],
)
async def test_bad_filters_are_invalid_request(connect: ConnectFactory, arguments: dict[str, Any]) -> None:
    async with connect() as client:
        result = await client.call_tool("list_models", arguments)

    assert result.is_error
    assert text_of(result).startswith("[invalid_request]")
