"""The client's readers against recorded real shapes (`tests/fixtures/kyma/`, each naming its source)."""

import json
from datetime import date
from pathlib import Path
from typing import Any

from kyma_mcp.catalog import normalise_all
from kyma_mcp.chat import ReplyBuilder
from kyma_mcp.images.jobs import Job
from kyma_mcp.kyma.tiers import account_limits, bundled_tiers
from kyma_mcp.limits import shape_limits
from kyma_mcp.usage import SessionUsage

FIXTURES = Path(__file__).parent / "fixtures" / "kyma"


def fixture(name: str) -> dict[str, Any]:
    body = json.loads((FIXTURES / name).read_text("utf-8"))
    assert body.pop("_source")  # every recorded shape names where it comes from
    return body


def test_both_documented_limits_bodies_give_the_tier_by_rpm_limit() -> None:
    for name in ("auth_limits_rate_limits_page.json", "auth_limits_error_guide.json"):
        body = fixture(name)
        pacer = account_limits(None, body)
        shown = shape_limits(
            tiers={"tiers": bundled_tiers()},
            bundled_tiers=bundled_tiers(),
            account=body,
            balance=None,
            capabilities=None,
            usage=SessionUsage(),
            configured_tier=None,
            has_key=True,
        )
        assert (pacer.tier, pacer.rpm, pacer.per_model_rpm) == (3, 200, 150)
        assert (shown.tier, shown.tier_from) == (3, "rpm_limit")


def test_the_documented_job_bodies_read_as_pending_then_succeeded() -> None:
    submitted = Job.parse(fixture("image_job_submitted.json"))
    done = Job.parse(fixture("image_job_succeeded.json"))

    assert (submitted.state, submitted.estimated_cost, submitted.finished) == ("running", 0.081, False)
    assert (done.state, done.charged, done.finished) == ("succeeded", 0.081, True)
    assert done.urls == ("https://cdn.kymaapi.com/jobs/f3a9c8b2e1d0a4b6c7d8e9f0/0.png",)


def test_the_documented_tool_calling_reply_reads_as_a_tool_call() -> None:
    reply = fixture("tool_calling_reply.json")
    message = reply["choices"][0]["message"]
    builder = ReplyBuilder()
    builder.add(
        {
            "choices": [
                {
                    "delta": {
                        "role": "assistant",
                        "tool_calls": [{"index": 0, **call} for call in message["tool_calls"]],
                    },
                    "finish_reason": reply["choices"][0]["finish_reason"],
                }
            ]
        }
    )

    assert builder.finish_reason == "tool_calls"
    assert builder.tool_calls == message["tool_calls"]


def test_the_documented_pricing_catalog_and_models_list_read() -> None:
    models = fixture("models_list.json")
    pricing = fixture("pricing_catalog.json")
    by_id = {m.id: m for m in normalise_all(models["data"], pricing)}

    assert by_id["qwen-3.6-plus"].kind == "chat"
    assert by_id["qwen-3.6-plus"].has("vision")
    assert (by_id["qwen-3.6-plus"].input_usd_per_1m, by_id["qwen-3.6-plus"].output_usd_per_1m) == (0.655, 3.93)
    assert by_id["gemini-2.5-flash"].retiring(date(2026, 10, 10))
    assert (by_id["recraft-v4"].kind, by_id["recraft-v4"].image_usd) == ("image", 0.054)
    assert (by_id["veo-3"].kind, by_id["veo-3"].second_usd) == ("video", 0.54)
    assert by_id["whisper-v3-turbo"].kind == "audio"
