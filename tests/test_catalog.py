"""The catalog: normalising /models, filters and paging, the cache and the bundled fallback."""

import json
from importlib import resources
from typing import Any

import pytest

from kyma_mcp.catalog import Catalog, ModelRow, aliases, bundled_models, find, models_text, normalise, page, select
from kyma_mcp.errors import UpstreamUnavailableError


def test_bundled_snapshot_holds_the_documented_models() -> None:
    models = {m.id: m for m in bundled_models()}

    assert models["glm-5.1"].max_output_tokens == 65_536
    assert models["gemini-2.5-flash"].context_window == 1_048_576
    assert models["gemma-4-31b"].has("vision")
    assert models["kimi-k2.6"].has("vision")
    assert models["kimi-k2.6"].has("tools")
    assert models["flux-kontext-pro"].has("image_edit")
    assert models["ideogram-v3"].image_usd == 0.108
    assert models["qwen-3.6-plus"].input_usd_per_1m == 0.655
    assert models["qwen-3.6-plus"].has("vision")
    assert models["gemini-2.5-flash"].retires_on == "2026-10-20"
    assert len([m for m in models.values() if m.kind == "image"]) == 16


def test_bundled_file_is_package_data() -> None:
    raw = json.loads((resources.files("kyma_mcp") / "data" / "catalog.json").read_text("utf-8"))
    assert len(raw["data"]) == len(bundled_models())


def test_aliases_resolve_in_find() -> None:
    assert aliases()["best"] == "qwen-3.6-plus"
    found = find(bundled_models(), "reasoning")
    assert found is not None
    assert found.id == "deepseek-r1"
    assert find(bundled_models(), "no-such-model") is None


@pytest.mark.parametrize(
    "entry",
    [{}, {"id": ""}, {"id": 7}, {"name": "nameless"}],
)
def test_unusable_entries_are_dropped(entry: dict[str, Any]) -> None:
    assert normalise(entry) is None


def test_sparse_entries_still_normalise() -> None:
    model = normalise({"id": "new-model", "context_length": 300_000, "supports_tools": True})

    assert model is not None
    assert (model.kind, model.name, model.context_window) == ("chat", "new-model", 300_000)
    assert set(model.capabilities) == {"tools", "long_context"}


def test_filters_combine() -> None:
    models = bundled_models()

    vision_tools = select(models, capability="vision", search="kimi")
    assert {m.id for m in vision_tools} == {"kimi-k2.5", "kimi-k2.6"}
    assert all(m.kind == "image" for m in select(models, kind="image"))
    assert {m.id for m in select(models, min_output=60_000)} == {"glm-4.7-flash", "glm-5.1", "deepseek-v4-pro"}
    assert all((m.context_window or 0) >= 1_000_000 for m in select(models, min_context=1_000_000))
    assert select(models, search="zzz-nothing") == []


def test_rows_are_compact_and_complete() -> None:
    row = ModelRow.of(next(m for m in bundled_models() if m.id == "deepseek-r1"))

    assert row.model_dump()["capabilities"] == ["tools", "reasoning"]
    assert row.output_usd_per_1m == 2.957


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.anyio
async def test_catalog_caches_then_refreshes() -> None:
    calls: list[int] = []

    async def fetch() -> dict[str, Any]:
        calls.append(1)
        return {"data": [{"id": f"model-{len(calls)}"}]}

    clock = FakeClock()
    catalog = Catalog(fetch, ttl_seconds=300, clock=clock)

    first = await catalog.view()
    second = await catalog.view()
    clock.now = 301
    third = await catalog.view()

    assert (first.source, second.source, third.source) == ("live", "cached", "live")
    assert [m.id for m in third.models] == ["model-2"]
    assert len(calls) == 2


@pytest.mark.anyio
async def test_catalog_falls_back_to_the_snapshot_and_does_not_hammer_kyma() -> None:
    calls: list[int] = []

    async def fetch() -> dict[str, Any]:
        calls.append(1)
        raise UpstreamUnavailableError("down")

    clock = FakeClock()
    catalog = Catalog(fetch, clock=clock)

    first = await catalog.view()
    second = await catalog.view()
    clock.now = 31
    await catalog.view()

    assert first.source == second.source == "bundled"
    assert len(first.models) == len(bundled_models())
    assert len(calls) == 2


@pytest.mark.anyio
async def test_catalog_keeps_stale_data_over_the_snapshot() -> None:
    state = {"up": True}

    async def fetch() -> dict[str, Any]:
        if not state["up"]:
            raise UpstreamUnavailableError("down")
        return {"data": [{"id": "live-only"}]}

    clock = FakeClock()
    catalog = Catalog(fetch, ttl_seconds=10, clock=clock)
    await catalog.view()
    state["up"] = False
    clock.now = 11

    view = await catalog.view()

    assert view.source == "stale"
    assert view.age_seconds == 11
    assert view.failure is not None
    assert "down" in view.failure
    assert [m.id for m in view.models] == ["live-only"]


@pytest.mark.anyio
async def test_a_stale_list_says_how_old_it_is_and_why() -> None:
    state = {"up": True}

    async def fetch() -> dict[str, Any]:
        if not state["up"]:
            raise UpstreamUnavailableError("Kyma could not be reached")
        return {"data": [{"id": "live-only"}]}

    clock = FakeClock()
    catalog = Catalog(fetch, ttl_seconds=300, clock=clock)
    await catalog.view()
    state["up"] = False
    clock.now = 3600

    view = await catalog.view()
    _, result = page(
        view.models, limit=10, offset=0, source=view.source, failure=view.failure, age_seconds=view.age_seconds
    )

    assert result.source == "stale"
    assert result.note is not None
    assert "from 60 min ago" in result.note
    assert "Kyma could not be reached" in result.note
    assert "(source: stale)" in models_text(view.models, result)
