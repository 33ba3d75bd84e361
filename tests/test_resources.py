"""The resources `kyma://models`, `kyma://models/{model_id}` and `kyma://guide` through the in-memory client."""

from __future__ import annotations

import json
from typing import Any

import pytest
from mcp import Client, MCPError
from mcp.types import TextResourceContents

from kyma_mcp.catalog import bundled_models
from kyma_mcp.emulator import EmulatorHandle
from kyma_mcp.recommend.profile import GUIDE
from kyma_mcp.recommend.ranking import recommend
from kyma_mcp.server import build_server
from kyma_mcp.settings import Settings
from tests.conftest import BOTH_ERAS, ConnectFactory
from tests.results import structured

pytestmark = pytest.mark.anyio

INVALID_PARAMS = -32602


async def read(client: Client, uri: str) -> TextResourceContents:
    result = await client.read_resource(uri)
    [contents] = result.contents
    assert isinstance(contents, TextResourceContents)
    return contents


def read_json(contents: TextResourceContents) -> dict[str, Any]:
    assert contents.mime_type == "application/json"
    return json.loads(contents.text)


@BOTH_ERAS
async def test_the_resources_are_listed(connect: ConnectFactory) -> None:
    async with connect() as client:
        resources = {str(r.uri): r for r in (await client.list_resources()).resources}
        templates = {t.uri_template: t for t in (await client.list_resource_templates()).resource_templates}

    assert set(resources) == {"kyma://models", "kyma://guide", "kyma://conversations", "kyma://spend"}
    assert resources["kyma://guide"].mime_type == "text/markdown"
    assert set(templates) == {
        "kyma://models/{model_id}",
        "kyma://conversations{?offset}",
        "kyma://conversations/{conversation_id}{?offset}",
    }
    assert all(r.description for r in [*resources.values(), *templates.values()])


@BOTH_ERAS
async def test_models_is_the_live_catalog(connect: ConnectFactory, emulator: EmulatorHandle) -> None:
    async with connect(api_key=None) as client:
        document = read_json(await read(client, "kyma://models"))

    assert document["source"] == "live"
    assert {m["id"] for m in document["models"]} == {m.id for m in bundled_models()}
    glm = next(m for m in document["models"] if m["id"] == "glm-5.1")
    assert (glm["context_window"], glm["max_output_tokens"], glm["output_usd_per_1m"]) == (203_000, 65_536, 5.94)
    flux = next(m for m in document["models"] if m["id"] == "flux-1.1-ultra")
    assert "context_window" not in flux
    assert flux["image_usd"] == 0.081
    assert emulator.state.requests["/v1/models"] == 1


@BOTH_ERAS
async def test_one_model_by_id_or_alias(connect: ConnectFactory) -> None:
    async with connect() as client:
        kimi = read_json(await read(client, "kyma://models/kimi-k2.6"))
        vision = read_json(await read(client, "kyma://models/vision"))

    assert kimi["id"] == "kimi-k2.6"
    assert set(kimi["capabilities"]) >= {"vision", "tools"}
    assert kimi["source"] == "live"
    assert vision["id"] == "gemma-4-31b"


@BOTH_ERAS
async def test_an_unknown_model_is_a_resource_not_found_error(connect: ConnectFactory) -> None:
    async with connect() as client:
        with pytest.raises(MCPError) as raised:
            await client.read_resource("kyma://models/no-such-model")

    assert raised.value.error.code == INVALID_PARAMS
    assert "Kyma does not serve model 'no-such-model'. Read kyma://models" in raised.value.error.message


@BOTH_ERAS
async def test_the_guide_shows_what_recommend_model_picks(connect: ConnectFactory) -> None:
    async with connect() as client:
        guide = await read(client, "kyma://guide")
        picks = {row.job: structured(await client.call_tool("recommend_model", {"task": row.example})) for row in GUIDE}

    assert guide.mime_type == "text/markdown"
    assert guide.text.startswith("# Which Kyma model for which job")
    assert "checked against the live catalog" in guide.text or "checked against the cached catalog" in guide.text
    for row in GUIDE:
        pick = picks[row.job]
        assert pick is not None
        assert f"| {row.job} | **{pick['pick']['model']}** (" in guide.text
        assert pick["pick"]["model"] == row.models[0]


@BOTH_ERAS
async def test_offline_the_resources_serve_the_bundled_snapshot(era: str) -> None:
    server = build_server(Settings(base_url="http://127.0.0.1:9/v1", max_retries=0))
    async with Client(server) if era == "auto" else Client(server, mode="legacy") as client:
        document = read_json(await read(client, "kyma://models"))
        guide = await read(client, "kyma://guide")

    assert document["source"] == "bundled"
    assert "checked against the bundled catalog" in guide.text
    row = GUIDE[0]
    pick = recommend(row.example, bundled_models()).pick
    assert pick is not None
    assert f"| {row.job} | **{pick.model}** (" in guide.text
