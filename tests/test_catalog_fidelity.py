"""The catalog reads what real gateways send: Kyma's documented shapes, /v1/pricing, kinds, aliases, retirements.

The gateway is the judge: pre-checks refuse only on its live list, never on the bundled snapshot.
"""

from datetime import date
from typing import Any

import pytest

from kyma_mcp.catalog import (
    Catalog,
    CatalogView,
    bundled_document,
    bundled_models,
    models_text,
    normalise,
    normalise_all,
    page,
    retirement_note,
    select,
)
from kyma_mcp.chat import check_vision
from kyma_mcp.emulator import EmulatorHandle
from kyma_mcp.errors import AuthInvalidError, InvalidRequestError, ModelNotFoundError
from kyma_mcp.images.jobs import ImageRequest, check_request
from kyma_mcp.recommend.profile import GUIDE
from kyma_mcp.recommend.ranking import recommend
from kyma_mcp.settings import Settings
from kyma_mcp.snapshot import build_snapshot
from tests.conftest import TEST_KEY, ConnectFactory

IMAGE_MESSAGE = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://a.example/x.png"}}]}]


def test_prices_are_read_from_the_documented_models_fields() -> None:
    chat = normalise(
        {"id": "m", "output_modalities": ["text"], "pricing": {"mode": "per-token", "input": 0.655, "output": 3.93}}
    )
    image = normalise({"id": "i", "pricing": {"mode": "per-image", "per_image_usd": 0.054}})
    video = normalise({"id": "v", "pricing": {"mode": "per-second", "per_second_usd": 0.54}})
    older = normalise({"id": "o", "pricing": {"input_per_1m": 0.1, "output_per_1m": 0.2}})

    assert chat is not None
    assert (chat.kind, chat.input_usd_per_1m, chat.output_usd_per_1m) == ("chat", 0.655, 3.93)
    assert image is not None
    assert (image.kind, image.image_usd) == ("image", 0.054)
    assert video is not None
    assert (video.kind, video.second_usd) == ("video", 0.54)
    assert older is not None
    assert (older.kind, older.input_usd_per_1m) == ("chat", 0.1)


def test_the_pricing_catalog_wins_over_models() -> None:
    pricing = {
        "object": "pricing.catalog",
        "text": [{"id": "m", "input_per_1m": 0.5, "output_per_1m": 1.5}],
        "media": [{"id": "veo-3", "modality": "video", "pricing_mode": "per-second", "usd_per_call": 0.54}],
    }
    models = normalise_all([{"id": "m", "pricing": {"input": 9, "output": 9}}, {"id": "veo-3"}], pricing)
    by_id = {m.id: m for m in models}

    assert (by_id["m"].input_usd_per_1m, by_id["m"].output_usd_per_1m) == (0.5, 1.5)
    assert (by_id["veo-3"].kind, by_id["veo-3"].second_usd) == ("video", 0.54)


@pytest.mark.parametrize(
    ("entry", "kind"),
    [
        (
            {"id": "whisper", "pricing": {"mode": "per-minute", "per_minute_usd": 0.01}, "output_modalities": ["text"]},
            "audio",
        ),
        ({"id": "tts", "output_modalities": ["audio"]}, "audio"),
        ({"id": "kling", "capability": "video_generate"}, "video"),
        ({"id": "plain", "object": "model", "owned_by": "someone"}, "unknown"),
        ({"id": "recraft", "capability": "image_generate"}, "image"),
    ],
)
def test_kinds_come_from_the_entry_and_are_never_chat_by_default(entry: dict[str, Any], kind: str) -> None:
    model = normalise(entry)

    assert model is not None
    assert model.kind == kind
    assert select([model], kind="chat") == []
    assert recommend("Summarize this text", [model]).pick is None


def test_vision_is_read_from_input_modalities() -> None:
    model = normalise({"id": "qwen-3.6-plus", "input_modalities": ["text", "image"], "output_modalities": ["text"]})

    assert model is not None
    assert model.has("vision")


@pytest.mark.anyio
async def test_live_aliases_win_over_the_bundled_ones() -> None:
    async def fetch() -> dict[str, Any]:
        return {"data": [{"id": "new-best", "output_modalities": ["text"]}], "aliases": {"best": "new-best"}}

    view = await Catalog(fetch).view()
    found = view.find("best")

    assert found is not None
    assert found.id == "new-best"


def test_retiring_models_are_never_recommended_and_calls_get_a_successor() -> None:
    today = date(2026, 10, 10)
    old = normalise({"id": "gemini-2.5-flash", "context_window": 1_048_576, "retires_on": "2026-10-20"})
    new = normalise({"id": "gemini-3-flash", "context_window": 1_048_576})
    assert old is not None
    assert new is not None

    assert old.retiring(today)
    assert not old.retiring(date(2026, 9, 1))
    assert not old.offered(today)
    assert retirement_note(old, [old, new], today) == (
        "gemini-2.5-flash retires on 2026-10-20 (Kyma's catalog). Use gemini-3-flash instead."
    )
    assert retirement_note(new, [old, new], today) is None


def test_legacy_models_name_the_successor_kyma_names() -> None:
    legacy = normalise(
        {"id": "flux-1.1-ultra", "capability": "image_generate", "best_for": "Legacy. Use flux-2-pro instead."}
    )
    successor = normalise({"id": "flux-2-pro", "capability": "image_generate"})
    assert legacy is not None
    assert successor is not None

    assert legacy.legacy
    assert not legacy.offered()
    assert (
        retirement_note(legacy, [legacy, successor])
        == "flux-1.1-ultra is legacy (Kyma's catalog). Use flux-2-pro instead."
    )


def test_a_bundled_list_says_it_is_kymas_snapshot_not_this_gateways() -> None:
    failure = "[auth_invalid] Kyma answered 401: key required."
    rows, result = page(list(bundled_models()), limit=2, offset=0, source="bundled", failure=failure)
    text = models_text(rows, result)

    assert "source: bundled" in text
    assert result.note is not None
    assert "Kyma's own model list" in result.note
    assert "not this gateway's" in result.note
    assert "401: key required" in result.note


@pytest.mark.anyio
async def test_a_refused_catalog_is_remembered_as_the_reason() -> None:
    async def fetch() -> dict[str, Any]:
        raise AuthInvalidError("Kyma answered 401: key required.")

    view = await Catalog(fetch).view()

    assert view.source == "bundled"
    assert not view.live
    assert view.failure is not None
    assert "401" in view.failure


@pytest.mark.parametrize("model", ["recraft-v4", "flux-2-pro", "gpt-image-2", "brand-new-image-model"])
def test_generate_image_sends_models_the_snapshot_does_not_know(model: str) -> None:
    bundled = CatalogView(bundled_models(), "bundled")
    live = CatalogView(bundled_models(), "live")

    assert check_request(bundled, ImageRequest("x", model)) == model
    assert check_request(live, ImageRequest("x", model)) == model  # not listed: the gateway decides


def test_generate_image_refuses_only_on_the_live_list() -> None:
    live = CatalogView(bundled_models(), "live")
    bundled = CatalogView(bundled_models(), "bundled")

    with pytest.raises(ModelNotFoundError, match="is a chat model"):
        check_request(live, ImageRequest("x", "qwen-3.6-plus"))
    assert check_request(bundled, ImageRequest("x", "qwen-3.6-plus")) == "qwen-3.6-plus"


def test_the_vision_precheck_never_refuses_on_the_snapshot() -> None:
    text_only = normalise({"id": "qwen-3.6-plus", "input_modalities": ["text"], "output_modalities": ["text"]})
    assert text_only is not None

    check_vision("qwen-3.6-plus", IMAGE_MESSAGE, CatalogView([text_only], "bundled"))
    with pytest.raises(InvalidRequestError, match="gateway's model list"):
        check_vision("qwen-3.6-plus", IMAGE_MESSAGE, CatalogView([text_only], "live"))


@pytest.mark.anyio
async def test_the_key_is_sent_on_models_when_one_is_set(connect: ConnectFactory, emulator: EmulatorHandle) -> None:
    async with connect() as client:
        await client.call_tool("list_models", {"limit": 1})

    assert emulator.state.last_authorization == f"Bearer {TEST_KEY}"


def test_the_snapshot_records_when_and_from_what_it_was_built() -> None:
    snapshot = bundled_document()["snapshot"]
    models = {m.id: m for m in bundled_models()}

    assert snapshot["taken"] == "2026-09-04"
    assert any("models.dev" in source for source in snapshot["sources"])
    assert models["qwen-3.6-plus"].has("vision")
    assert models["qwen-3.6-plus"].input_usd_per_1m == 0.655
    assert len([m for m in models.values() if m.kind == "image"]) == 16
    assert models["flux-1.1-ultra"].legacy
    assert models["flux-1.1-ultra"].successor == "flux-2-pro"
    assert Settings().default_image_model == "recraft-v4"


def test_the_rebuild_script_merges_pricing_into_the_live_entries() -> None:
    models = {"data": [{"id": "m", "pricing": {"input": 9}}, {"id": "v"}], "aliases": {"best": "m"}}
    pricing = {
        "text": [{"id": "m", "input_per_1m": 0.5, "output_per_1m": 1.5}],
        "media": [{"id": "v", "modality": "video", "pricing_mode": "per-second", "usd_per_call": 0.54}],
    }
    document = build_snapshot(models, pricing, "https://gw.example/v1", "2026-12-03")
    rebuilt = {m.id: m for m in normalise_all(document["data"])}

    assert (rebuilt["m"].input_usd_per_1m, rebuilt["m"].output_usd_per_1m) == (0.5, 1.5)
    assert (rebuilt["v"].kind, rebuilt["v"].second_usd) == ("video", 0.54)
    assert document["aliases"] == {"best": "m"}
    assert document["snapshot"]["sources"] == ["https://gw.example/v1/models", "https://gw.example/v1/pricing"]


def test_legacy_and_retired_models_are_never_the_guides_pick() -> None:
    for row in GUIDE:
        pick = recommend(row.example, bundled_models()).pick
        assert pick is not None
        assert pick.model not in {"flux-1.1-ultra", "recraft-v3", "gemini-2.5-flash"}
