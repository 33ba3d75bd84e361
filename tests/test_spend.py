"""Per-call caps and dry runs: estimates from the catalog's prices, checked before anything is sent."""

from typing import Any

import pytest

from kyma_mcp.catalog import ModelInfo, bundled_models, find
from kyma_mcp.emulator import EmulatorHandle
from kyma_mcp.errors import BudgetExceededError
from kyma_mcp.spend import fit_chat, fit_images, quote_chat, quote_images
from kyma_mcp.usage import estimate_message_tokens
from tests.conftest import ConnectFactory
from tests.results import error_text, structured, text_of

CHAT = "/v1/chat/completions"
QWEN = find(bundled_models(), "qwen-3.6-plus")
assert QWEN is not None


def _fit(cap: float, messages: list[dict[str, Any]], model: ModelInfo = QWEN, **kw: Any) -> Any:
    quote = quote_chat(model.id, model, messages, None, "bundled")
    return fit_chat(
        quote,
        model,
        cap,
        requested_max_tokens=None,
        catalog=bundled_models(),
        needs_vision=False,
        allow_unpriced=kw.get("allow_unpriced", False),
    )


def test_the_estimate_prices_input_and_the_default_output_at_catalog_prices() -> None:
    messages = [{"role": "user", "content": "x" * 300}]
    quote = quote_chat("best", QWEN, messages, None, "live")

    assert quote.model == "qwen-3.6-plus"
    assert quote.input_tokens == estimate_message_tokens(messages) == 104
    assert quote.output_tokens == 4096
    assert quote.cost_usd == pytest.approx((104 * 0.655 + 4096 * 3.93) / 1e6)
    assert quote.price_source == "catalog, live"


def test_a_cap_lowers_max_tokens_to_what_it_pays_for() -> None:
    plan = _fit(0.004, [{"role": "user", "content": "hi"}])

    assert plan.max_tokens == 1016  # (0.004 - 5 input tokens at $0.655) / $3.93 per 1M output
    assert plan.quote.cost_usd <= 0.004
    assert "max_tokens lowered from 4,096 to 1,016" in plan.notes[0]


def test_a_cap_below_a_useful_reply_is_refused_with_what_would_fit() -> None:
    with pytest.raises(BudgetExceededError) as refused:
        _fit(0.0005, [{"role": "user", "content": "hi"}])

    text = str(refused.value)
    assert text.startswith("[budget_exceeded] This call's estimate is over max_cost_usd $0.0005: qwen-3.6-plus: ")
    assert "≈ $0.0161 (catalog, bundled). Nothing was sent." in text
    assert "Within the cap: max_tokens=126" in text


def test_a_refusal_names_cheaper_models_that_fit() -> None:
    with pytest.raises(BudgetExceededError) as refused:
        _fit(0.004, [{"role": "user", "content": "x" * 30_000}])  # 10,004 input tokens ≈ $0.0068 before output

    text = str(refused.value)
    assert text.endswith(
        "Within the cap: llama-3.3-70b ($0.0031), or glm-4.7-flash ($0.0030), or qwen-3-32b ($0.0026); "
        "or raise max_cost_usd."
    )


def test_an_unpriced_model_with_a_cap_is_refused_unless_allowed() -> None:
    unpriced = ModelInfo(id="new-model", name="New", kind="chat", max_output_tokens=8192)
    with pytest.raises(BudgetExceededError, match=r"new-model has no price.*KYMA_ALLOW_UNPRICED=1"):
        _fit(1.0, [{"role": "user", "content": "hi"}], unpriced)

    assert _fit(1.0, [{"role": "user", "content": "hi"}], unpriced, allow_unpriced=True).max_tokens is None


def test_images_cost_their_price_times_n() -> None:
    flux = find(bundled_models(), "flux-1.1-ultra")
    quote = quote_images("flux-1.1-ultra", flux, 3, "bundled")
    assert quote.cost_usd == pytest.approx(0.243)

    with pytest.raises(BudgetExceededError) as refused:
        fit_images(quote, 0.2, catalog=bundled_models(), allow_unpriced=False)
    assert "n=2 ($0.1620)" in str(refused.value)
    assert "recraft-v3 ($0.1620 for 3)" in str(refused.value)


@pytest.mark.anyio
async def test_chat_under_a_cap_sends_the_lowered_max_tokens(connect: ConnectFactory, emulator: EmulatorHandle) -> None:
    async with connect() as client:
        result = await client.call_tool(
            "chat", {"prompt": "hi [[words=2000]]", "model": "qwen-3.6-plus", "max_cost_usd": 0.004}
        )

    data = structured(result)
    assert data["usage"]["completion_tokens"] < 2000
    assert data["finish_reason"] == "length"
    assert data["usage"]["cost_usd"] <= 0.004
    assert "max_tokens lowered from 4,096 to" in data["notes"][0]


@pytest.mark.anyio
async def test_chat_over_its_cap_is_refused_before_sending(connect: ConnectFactory, emulator: EmulatorHandle) -> None:
    async with connect() as client:
        result = await client.call_tool("chat", {"prompt": "hi", "model": "qwen-3.6-plus", "max_cost_usd": 0.0005})

    assert error_text(result).startswith("[budget_exceeded] This call's estimate is over max_cost_usd $0.0005")
    assert emulator.state.requests[CHAT] == 0
    assert emulator.state.total_charged == 0


@pytest.mark.anyio
async def test_a_model_missing_from_the_catalog_with_a_cap_is_refused_unless_unpriced_allowed(
    connect: ConnectFactory, emulator: EmulatorHandle
) -> None:
    arguments = {"prompt": "hi", "model": "mystery-model", "max_cost_usd": 1}
    async with connect() as client:
        refused = await client.call_tool("chat", arguments)
    async with connect(allow_unpriced=True) as client:
        sent = await client.call_tool("chat", arguments)

    assert "mystery-model has no price in the catalog (not in the catalog)" in error_text(refused)
    assert error_text(sent).startswith("[model_not_found]")  # sent to Kyma, which does not serve it
    assert emulator.state.requests[CHAT] == 1


@pytest.mark.anyio
async def test_dry_runs_estimate_without_spending(connect: ConnectFactory, emulator: EmulatorHandle) -> None:
    async with connect() as client:
        chat = await client.call_tool("chat", {"prompt": "hi", "model": "best", "dry_run": True})
        image = await client.call_tool("generate_image", {"prompt": "a fox", "n": 2, "dry_run": True})

    estimate = structured(chat)["estimate"]
    assert estimate["model"] == "qwen-3.6-plus"
    assert estimate["output_tokens"] == 4096
    assert estimate["price_source"].startswith("catalog, ")
    assert structured(chat)["finish_reason"] == "dry_run"
    assert text_of(chat).startswith("Dry run, nothing sent. Estimate: qwen-3.6-plus: ~5 input + 4,096 output")
    assert structured(image)["status"] == "dry_run"
    assert structured(image)["estimated_cost_usd"] == pytest.approx(0.108)  # 2 x recraft-v4, the default
    assert emulator.state.requests[CHAT] == 0
    assert emulator.state.requests["/v1/images/generations"] == 0
    assert emulator.state.total_charged == 0


@pytest.mark.anyio
async def test_an_image_job_over_its_cap_is_refused(connect: ConnectFactory, emulator: EmulatorHandle) -> None:
    async with connect() as client:
        result = await client.call_tool("generate_image", {"prompt": "a fox", "n": 4, "max_cost_usd": 0.1})

    assert error_text(result).startswith("[budget_exceeded] This image job's estimate is over max_cost_usd $0.1000")
    assert emulator.state.requests["/v1/images/generations"] == 0
