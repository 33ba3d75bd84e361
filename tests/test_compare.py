"""The `compare` tool: parallel streams, one deadline, per-model failures, a whole-call cap."""

import json
from pathlib import Path
from typing import Any

import pytest

from kyma_mcp.emulator import EmulatorHandle
from kyma_mcp.settings import Settings
from kyma_mcp.store import open_store
from tests.conftest import BOTH_ERAS, ConnectFactory
from tests.results import error_text, structured, text_of

pytestmark = pytest.mark.anyio

CHAT = "/v1/chat/completions"


def _sections(result: Any) -> dict[str, dict[str, Any]]:
    return {section["model"]: section for section in structured(result)["sections"]}


@BOTH_ERAS
async def test_a_short_deadline_still_waits_for_each_models_slow_first_token(
    connect: ConnectFactory, emulator: EmulatorHandle
) -> None:
    emulator.state.switches.first_byte_delay_ms = 150  # with a fixed 0.5 s margin, a 0.6 s deadline left 0.1 s

    async with connect(tool_timeout_seconds=0.6) as client:
        result = await client.call_tool(
            "compare", {"prompt": "Name a prime.", "models": ["qwen-3.6-plus", "deepseek-r1"]}
        )

    sections = _sections(result)
    assert [section["status"] for section in sections.values()] == ["finished", "finished"], sections


async def test_one_unknown_and_one_slow_model_do_not_spoil_the_others(
    connect: ConnectFactory, emulator: EmulatorHandle
) -> None:
    emulator.state.switches.slow_models = ["deepseek-r1"]
    emulator.state.switches.slow_token_interval_ms = 100  # 24 words ≈ 2.4 s, past the 1.5 s deadline
    lines: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        lines.append(message or "")

    async with connect(tool_timeout_seconds=1.5) as client:
        result = await client.call_tool(
            "compare",
            {"prompt": "Name a prime.", "models": ["qwen-3.6-plus", "no-such-model", "deepseek-r1"]},
            progress_callback=on_progress,
        )

    sections = _sections(result)
    assert list(sections) == ["qwen-3.6-plus", "no-such-model", "deepseek-r1"]
    assert sections["qwen-3.6-plus"]["status"] == "finished"
    assert sections["qwen-3.6-plus"]["answer"]["reply"].startswith("Echo from qwen-3.6-plus")
    assert sections["no-such-model"]["status"] == "failed"
    assert sections["no-such-model"]["error"].startswith("[model_not_found]")
    slow = sections["deepseek-r1"]
    assert slow["status"] == "interrupted"
    assert slow["answer"]["finish_reason"] == "interrupted"
    assert 0 < len(slow["answer"]["reply"].split()) < 24
    data = structured(result)
    assert data["total_cost_usd"] == pytest.approx(
        sections["qwen-3.6-plus"]["answer"]["usage"]["cost_usd"] + (slow["answer"]["usage"]["cost_usd"] or 0)
    )
    assert "finished qwen-3.6-plus; failed no-such-model; interrupted deepseek-r1" in data["comparison"]
    text = text_of(result)
    assert "## no-such-model · failed\n[model_not_found]" in text
    assert any("qwen-3.6-plus" in line and "deepseek-r1" in line for line in lines)


async def test_a_whole_call_cap_is_split_across_the_models(connect: ConnectFactory, emulator: EmulatorHandle) -> None:
    models = ["qwen-3.6-plus", "kimi-k2.6", "glm-4.7-flash"]
    async with connect() as client:
        estimate = await client.call_tool("compare", {"prompt": "hi [[words=3000]]", "models": models, "dry_run": True})
        uncapped = structured(estimate)["total_cost_usd"]
        cap = round(uncapped / 4, 6)
        result = await client.call_tool(
            "compare", {"prompt": "hi [[words=3000]]", "models": models, "max_cost_usd": cap}
        )

    assert emulator.state.requests[CHAT] == 3  # the dry run sent nothing
    sections = _sections(result)
    assert all(s["status"] == "finished" for s in sections.values())
    assert all("max_tokens lowered from 4,096" in s["answer"]["notes"][0] for s in sections.values())
    assert structured(result)["total_cost_usd"] <= cap
    assert emulator.state.total_charged <= cap


async def test_a_cap_too_small_for_one_model_refuses_it_alone(connect: ConnectFactory) -> None:
    async with connect(allow_unpriced=False) as client:
        result = await client.call_tool(
            "compare", {"prompt": "hi", "models": ["qwen-3.6-plus", "mystery-model"], "max_cost_usd": 0.01}
        )

    sections = _sections(result)
    assert sections["qwen-3.6-plus"]["status"] == "finished"
    assert sections["mystery-model"]["status"] == "refused"
    assert sections["mystery-model"]["error"].startswith("[budget_exceeded] mystery-model has no price")


async def test_when_every_model_fails_the_call_fails_with_each_word(connect: ConnectFactory) -> None:
    async with connect() as client:
        result = await client.call_tool("compare", {"prompt": "hi", "models": ["nope-one", "nope-two"]})

    text = error_text(result)
    assert text.startswith("[model_not_found] No model answered")
    assert "nope-one: [model_not_found]" in text
    assert "nope-two: [model_not_found]" in text


async def test_default_models_come_from_the_recommender(connect: ConnectFactory) -> None:
    async with connect() as client:
        result = await client.call_tool("compare", {"prompt": "Refactor this Python module and add unit tests"})

    sections = structured(result)["sections"]
    assert 2 <= len(sections) <= 3
    assert all(s["status"] == "finished" for s in sections)


async def test_a_judge_model_sums_up_and_is_costed(connect: ConnectFactory, emulator: EmulatorHandle) -> None:
    async with connect() as client:
        result = await client.call_tool(
            "compare", {"prompt": "hi", "models": ["qwen-3.6-plus", "glm-4.7-flash"], "judge_model": "kimi-k2.6"}
        )

    data = structured(result)
    assert data["judge"]["model_served"] == "kimi-k2.6"
    assert emulator.state.requests[CHAT] == 3
    assert data["total_cost_usd"] == pytest.approx(emulator.state.total_charged)
    assert "## Judge (kimi-k2.6)" in text_of(result)


async def test_a_thread_is_compared_on_without_being_appended_to(
    connect: ConnectFactory, emulator: EmulatorHandle, tmp_path: Path
) -> None:
    store_url = f"sqlite://{tmp_path / 'store.sqlite3'}"
    async with connect(store_url=store_url) as client:
        first = await client.call_tool("chat", {"prompt": "Remember the word saffron."})
        thread = structured(first)["conversation_id"]
        result = await client.call_tool(
            "compare",
            {"prompt": "Which word?", "models": ["qwen-3.6-plus", "glm-4.7-flash"], "conversation_id": thread},
        )

    store = await open_store(Settings.model_validate({"store_url": store_url}))
    turns = await store.turns(thread)
    await store.aclose()
    assert len(turns) == 1
    sections = structured(result)["sections"]
    assert all(s["status"] == "finished" for s in sections)
    assert all(s["answer"]["usage"]["prompt_tokens"] > structured(first)["usage"]["prompt_tokens"] for s in sections)
    assert "nothing was added to it" in text_of(result)


async def test_compare_passes_tools_and_tool_choice_to_every_model_like_chat(connect: ConnectFactory) -> None:
    weather = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
    models = ["qwen-3.6-plus", "kimi-k2.6"]
    async with connect() as client:
        result = await client.call_tool(
            "compare",
            {
                "prompt": "weather in Hanoi?",
                "models": models,
                "tools": json.dumps([weather]),
                "tool_choice": "get_weather",
            },
        )
        bad = await client.call_tool("compare", {"prompt": "hi", "models": models, "tools": '{"not": "a list"}'})

    sections = structured(result)["sections"]
    assert [s["answer"]["finish_reason"] for s in sections] == ["tool_calls", "tool_calls"]
    assert all(s["answer"]["tool_calls"][0]["function"]["name"] == "get_weather" for s in sections)
    assert text_of(result).count("- get_weather (id ") == 2  # each model's section shows its calls
    assert error_text(bad).startswith("[invalid_request] `tools` must be a JSON array")
