"""The recommender against the bundled catalog: a table of tasks, the hard constraints, live-catalog drift."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kyma_mcp.catalog import Capability, ModelInfo, bundled_models
from kyma_mcp.recommend.guide import guide_markdown
from kyma_mcp.recommend.profile import GUIDE, GuideRow, understand
from kyma_mcp.recommend.ranking import Option, Priority, Recommendation, recommend

TIER_CAPS = ((0, 200_000), (1, 500_000), (2, 1_000_000), (3, 3_000_000), (4, 10_000_000))
CAPABILITIES: tuple[Capability, ...] = (
    "vision",
    "tools",
    "reasoning",
    "caching",
    "long_context",
    "image_generation",
    "image_edit",
)


@dataclass(frozen=True)
class Case:
    task: str
    picks: frozenset[str]
    needs: tuple[Capability, ...] = ()
    priority: Priority = "balanced"
    min_context: int | None = None
    min_output: int | None = None

    def __str__(self) -> str:
        return f"{self.task[:40]}|{self.priority}|{','.join(self.needs)}"


def case(task: str, *picks: str, **options: object) -> Case:
    return Case(task, frozenset(picks), **options)  # pyright: ignore[reportArgumentType]


TABLE = [
    # a safe general default
    case("Draft a friendly reply to a customer asking about our refund policy", "qwen-3.6-plus"),
    case("Help me write a cover letter for a nursing job", "qwen-3.6-plus"),
    case("Translate this paragraph into French", "qwen-3.6-plus"),
    case("What's a good name for a bakery?", "qwen-3.6-plus"),
    # tool-heavy agents
    case("Run a tool-heavy agent loop that calls our CRM and calendar tools", "kimi-k2.6"),
    case("An autonomous agent that books meetings through function calling", "kimi-k2.6"),
    case("Orchestrate a multi-step workflow with MCP tools", "kimi-k2.6"),
    # hard reasoning
    case("Prove that the square root of 2 is irrational, step by step", "deepseek-r1"),
    case("Solve this olympiad geometry problem", "deepseek-r1"),
    case("Work out the probability of drawing two aces", "deepseek-r1"),
    case("Prove Fermat's little theorem", "deepseek-v4-pro", "deepseek-r1", priority="best"),
    # long documents, sizes read from the task
    case("Summarize a 300-page PDF contract", "gemini-3-flash"),
    case("Analyze this 500K-token log archive", "gemini-3-flash"),
    case("Search across 1,200 pages of meeting notes", "gemini-3-flash"),
    case("Answer questions about our entire codebase", "gemini-3-flash", "deepseek-v4-flash", "qwen-3-coder"),
    case("Analyze this 500K-token log archive", "deepseek-v4-flash", priority="cheapest"),
    case("Summarize a 300-page PDF contract", "glm-4.7-flash", "deepseek-v4-flash", priority="cheapest"),
    # vision
    case("Extract the totals from a photo of a receipt", "gemma-4-31b"),
    case("Describe what's in this image", "gemma-4-31b"),
    case("Read the handwriting on this scanned letter", "gemma-4-31b"),
    case("Explain this architecture diagram", "gemma-4-31b"),
    case("Caption these product photos", "gemma-4-31b", priority="cheapest"),
    # vision + tools
    case("An agent that reads UI screenshots and calls browser tools", "kimi-k2.6"),
    case("Look at the screenshot and click the right button", "kimi-k2.6", needs=("tools",)),
    case("Check these dashboards for anomalies", "kimi-k2.6", needs=("vision", "tools")),
    # long outputs
    case("Write a 40k-token technical report", "glm-5.1"),
    case("Write a 20,000-word novella", "glm-5.1"),
    case("Generate exhaustive documentation for the project", "glm-5.1"),
    case("Draft the chapter", "glm-5.1", min_output=40_000),
    case("Write a 40k-token technical report", "glm-4.7-flash", priority="cheapest"),
    # code
    case("Refactor this Python module and add unit tests", "qwen-3-coder"),
    case("Fix the bug in this TypeScript function", "qwen-3-coder"),
    case("Write a SQL query that finds duplicate customers", "qwen-3-coder"),
    case("Implement a REST endpoint that validates orders", "qwen-3-coder"),
    case("Refactor this Python module", "qwen-3-32b", "llama-3.3-70b", priority="fastest"),
    # lowest latency
    case("A real-time autocomplete that must answer with low latency", "llama-3.3-70b"),
    case("Quick one-line answers for a chat widget", "llama-3.3-70b"),
    case("Summarize an email", "llama-3.3-70b", priority="fastest"),
    # cheap bulk work
    case("Classify support tickets by topic in bulk", "glm-4.7-flash"),
    case("Extract names and dates from 10,000 emails", "glm-4.7-flash"),
    case("Draft a friendly reply to a customer", "gpt-oss-120b", "glm-4.7-flash", priority="cheapest"),
    case("Write a haiku", "qwen-3.6-plus", "deepseek-v4-pro", "kimi-k2.6", priority="best"),
    # images
    case("A cinematic hero shot of a mountain cabin at dawn, 16:9", "flux-2-pro"),
    case("Generate a photorealistic image of a golden retriever on a beach", "flux-2-pro"),
    case("Generate an image of a cat", "flux-2-pro", "recraft-v4"),
    case("Edit this photo to remove the background", "flux-kontext-pro"),
    case("Replace the sky in my photo with a sunset", "flux-kontext-pro"),
    case("Turn the car red", "flux-kontext-pro", needs=("image_edit",)),
    case("Turn this photo into a watercolor painting", "flux-kontext-pro"),
    case("Design a logo with the words 'Blue Fern Bakery'", "ideogram-v3"),
    case("Create a poster announcing our jazz night", "ideogram-v3"),
    case("A flat vector illustration for our onboarding screens", "recraft-v4-vector"),
    case("Make an SVG icon set for a weather app", "recraft-v4-vector"),
    case("Generate an image of a cat", "minimax-image-01", priority="cheapest"),
]


def run(c: Case) -> Recommendation:
    return recommend(
        c.task,
        bundled_models(),
        needs=c.needs,
        priority=c.priority,
        min_context=c.min_context,
        min_output=c.min_output,
        request_caps=TIER_CAPS,
    )


@pytest.mark.parametrize("c", TABLE, ids=str)
def test_table(c: Case) -> None:
    result = run(c)

    assert result.pick is not None, result.text()
    assert result.pick.model in c.picks, result.text()
    assert_meets(result, bundled_models(), c.needs, c.min_context, c.min_output)


def test_table_covers_every_guide_row_and_priority() -> None:
    assert len(TABLE) >= 40
    first_choices = {row.models[0] for row in GUIDE}
    assert first_choices <= {model for c in TABLE for model in c.picks}
    assert {c.priority for c in TABLE} == {"balanced", "cheapest", "fastest", "best"}


@pytest.mark.parametrize("row", GUIDE, ids=lambda row: row.job)
def test_each_guide_rows_example_gets_its_first_choice(row: GuideRow) -> None:
    result = recommend(row.example, bundled_models())

    assert result.pick is not None, result.text()
    assert result.pick.model == row.models[0], result.text()
    assert row.traits <= set(result.understood.traits)


def test_the_guide_shows_what_the_recommender_picks() -> None:
    markdown = guide_markdown(bundled_models(), "bundled")

    for row in GUIDE:
        pick = recommend(row.example, bundled_models()).pick
        assert pick is not None
        assert f"| {row.job} | **{pick.model}** (" in markdown
    assert "## How `recommend_model` decides" in markdown


def test_the_guide_follows_a_catalog_that_lost_a_model() -> None:
    without_gemma = [m for m in bundled_models() if m.id != "gemma-4-31b"]

    markdown = guide_markdown(without_gemma, "live")

    row = next(r for r in GUIDE if r.job == "reading images cheaply")
    pick = recommend(row.example, without_gemma).pick
    assert pick is not None
    assert pick.model != "gemma-4-31b"
    assert f"| {row.job} | **{pick.model}** (" in markdown
    assert "gemma-4-31b (not served)" in markdown
    assert "checked against the live catalog" in markdown


# --- sizes read from the task ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("task", "input_tokens", "output_tokens"),
    [
        ("Summarize a 300-page PDF", 150_000, None),
        ("Analyze a 500K-token input", 500_000, None),
        ("Review these 1.5M tokens of logs", 1_500_000, None),
        ("Write a 40k-token report", None, 40_000),
        ("Summarize a 40k-token report", 40_000, None),
        ("Produce an answer of 12,000 words", None, 16_000),
        ("Give me a 20k token output", None, 20_000),
        ("I need 40K tokens of output for a spec", None, 40_000),
        ("Summarize a 300-page PDF and answer questions about it", 150_000, None),
        ("Write a summary of a 300-page book", 150_000, None),
        ("Translate 8,000 characters", 2_000, None),
        ("What is 2+2?", None, None),
    ],
)
def test_sizes_are_read_from_the_task(task: str, input_tokens: int | None, output_tokens: int | None) -> None:
    profile = understand(task)

    assert (profile.input_tokens, profile.output_tokens) == (input_tokens, output_tokens)


def test_a_stated_context_window_is_a_hard_constraint() -> None:
    result = recommend("Chat with a 200k context window about our docs", bundled_models())

    assert result.understood.min_context == 200_000
    assert result.pick is not None
    assert_meets(result, bundled_models(), (), 200_000, None)


def test_a_500k_token_input_needs_a_1m_window_and_tier_2() -> None:
    result = recommend("Analyze this 500K-token log archive", bundled_models(), request_caps=TIER_CAPS)

    assert result.understood.min_context == 500_000 + 4_096
    by_id = {m.id: m for m in bundled_models()}
    for option in options(result):
        assert by_id[option.model].context_window == 1_048_576
    assert any("Tier 2 or higher" in note for note in result.notes), result.notes


def test_a_40k_token_output_sets_max_tokens_and_rules_out_smaller_caps() -> None:
    result = recommend("Write a 40k-token technical report", bundled_models())

    assert result.pick is not None
    assert result.pick.chat == {"model": "glm-5.1", "max_tokens": 40_000}
    assert {e.model: e.why for e in result.excluded}["deepseek-r1"] == "max output 32,768 < 40,000 needed"


def test_reasons_are_grounded_in_the_catalogs_numbers() -> None:
    result = recommend("Summarize a 300-page PDF contract", bundled_models())

    assert result.pick is not None
    assert result.cheaper is not None
    assert result.stronger is not None
    assert "1,048,576-token context" in result.pick.reason
    assert "$0.68/$4.05 per 1M tokens in/out" in result.pick.reason
    assert result.cheaper.estimated_cost_usd is not None
    assert result.pick.estimated_cost_usd is not None
    assert result.cheaper.estimated_cost_usd < result.pick.estimated_cost_usd
    assert result.cheaper.reason.startswith("About 80% cheaper than gemini-3-flash")
    for option in options(result):
        assert option.reason.count(". ") == 0, option.reason  # one sentence
        assert option.reason.endswith(".")


def test_image_jobs_get_generate_image_arguments() -> None:
    result = recommend("A cinematic hero shot of a mountain cabin at dawn, 16:9", bundled_models())

    assert result.pick is not None
    assert result.pick.chat is None
    assert result.pick.generate_image == {"model": "flux-2-pro", "size": "16:9"}
    assert result.pick.estimated_cost_usd == 0.041


def test_an_edit_pick_says_image_url_is_needed() -> None:
    result = recommend("Edit this photo to remove the background", bundled_models())

    assert result.pick is not None
    assert result.pick.model == "flux-kontext-pro"
    assert any("image_url" in note for note in result.notes)


# --- when nothing fits ----------------------------------------------------------------------


def test_capabilities_no_model_has_together_are_explained() -> None:
    result = recommend("Read the chart", bundled_models(), needs=["vision", "caching"])

    assert result.pick is None
    assert result.cheaper is None
    assert result.stronger is None
    assert "no chat model has caching + vision together" in result.notes[0]
    assert "caching: deepseek-v4-flash, deepseek-v4-pro" in result.notes[0]
    excluded = {e.model: e.why for e in result.excluded}
    assert excluded["gemma-4-31b"] == "no caching"
    assert excluded["deepseek-v4-flash"] == "no vision"


def test_too_large_an_input_or_output_is_explained() -> None:
    too_long = recommend("Review these transcripts: 2 million tokens in total", bundled_models())
    too_much = recommend("Write it all", bundled_models(), min_output=100_000)

    assert too_long.pick is None
    assert "the largest context window is 1,048,576" in too_long.notes[0]
    assert too_much.pick is None
    assert "the largest output is 65,536 tokens (glm-5.1): split the work" in too_much.notes[0]


def test_an_image_task_that_needs_tools_has_no_model() -> None:
    result = recommend("Design a logo", bundled_models(), needs=["tools"])

    assert result.pick is None
    assert result.understood.kind == "image"
    assert "no image model has image_generation + tools together" in result.notes[0]


# --- a live catalog that differs from the guide ---------------------------------------------


def test_a_missing_guide_model_falls_back_to_the_next_one() -> None:
    models = [m for m in bundled_models() if m.id != "kimi-k2.6"]

    result = recommend("Run a tool-heavy agent loop", models)

    assert result.pick is not None
    assert result.pick.model == "kimi-k2.5"


def test_without_the_guides_models_the_catalogs_numbers_decide() -> None:
    rows = [row for row in GUIDE if row.traits & {"agentic", "long_context"}]
    named = {model_id for row in rows for model_id in row.models}
    models = [m for m in bundled_models() if m.id not in named]

    agent = recommend("Run a tool-heavy agent loop", models).pick
    long_doc = recommend("Summarize a 900-page PDF", models).pick

    assert agent is not None
    assert agent.model in {"glm-4.5-air", "minimax-m2.5"}
    assert long_doc is not None
    assert long_doc.model in {"deepseek-v4-flash", "deepseek-v4-pro"}


def test_an_unknown_new_model_can_win_on_numbers() -> None:
    newcomer = ModelInfo(
        id="mega-ctx-9",
        name="Mega Context 9",
        kind="chat",
        context_window=4_000_000,
        max_output_tokens=16_384,
        capabilities=("tools", "long_context"),
        input_usd_per_1m=0.5,
        output_usd_per_1m=2.0,
    )

    result = recommend("Analyze 2 million tokens of logs", [*bundled_models(), newcomer])

    assert result.pick is not None
    assert result.pick.model == "mega-ctx-9"


def test_the_answer_does_not_depend_on_catalog_order() -> None:
    models = list(bundled_models())
    for c in TABLE[::5]:
        forward = recommend(c.task, models, needs=c.needs, priority=c.priority)
        backward = recommend(c.task, models[::-1], needs=c.needs, priority=c.priority)
        assert forward == backward


# --- properties ----------------------------------------------------------------------------


def options(result: Recommendation) -> list[Option]:
    return [o for o in (result.pick, result.cheaper, result.stronger) if o is not None]


def assert_meets(
    result: Recommendation,
    models: list[ModelInfo] | tuple[ModelInfo, ...],
    needs: tuple[Capability, ...] | list[Capability],
    min_context: int | None,
    min_output: int | None,
) -> None:
    """Every option has every needed capability and is big enough, for both the caller's and the task's limits."""
    by_id = {m.id: m for m in models}
    understood = result.understood
    chosen = options(result)
    assert len({o.model for o in chosen}) == len(chosen)
    for option in chosen:
        model = by_id[option.model]
        assert model.kind == understood.kind
        assert set(needs) <= set(understood.needs)
        assert set(understood.needs) <= set(model.capabilities)
        for wanted, have in ((min_context, model.context_window), (understood.min_context, model.context_window)):
            assert wanted is None or (have or 0) >= wanted
        for wanted, have in ((min_output, model.max_output_tokens), (understood.min_output, model.max_output_tokens)):
            assert wanted is None or (have or 0) >= wanted
        arguments = option.chat if model.kind == "chat" else option.generate_image
        assert arguments is not None
        assert arguments["model"] == model.id
        assert arguments.get("max_tokens", 0) <= (model.max_output_tokens or 10**9)


prices = st.none() | st.floats(min_value=0, max_value=500, allow_nan=False)
sizes = st.none() | st.integers(min_value=0, max_value=5_000_000)
model_infos = st.builds(
    ModelInfo,
    id=st.text(alphabet="abcdefghij-.0123456789", min_size=1, max_size=12),
    name=st.text(max_size=20),
    kind=st.sampled_from(["chat", "image"]),
    context_window=sizes,
    max_output_tokens=sizes,
    capabilities=st.lists(st.sampled_from(CAPABILITIES), unique=True).map(tuple),
    input_usd_per_1m=prices,
    output_usd_per_1m=prices,
    image_usd=prices,
    best_for=st.none() | st.text(max_size=60),
)
catalogs = st.one_of(
    st.just(list(bundled_models())),
    st.lists(model_infos, max_size=12, unique_by=lambda m: m.id),
    st.lists(model_infos, max_size=6, unique_by=lambda m: m.id).map(lambda extra: [*bundled_models(), *extra]),
)
task_texts = st.one_of(
    st.text(max_size=300),
    st.sampled_from([c.task for c in TABLE]),
    st.lists(
        st.sampled_from([c.task for c in TABLE] + ["1,000,000 tokens", "80k-token output", "9999999999 pages"])
    ).map(" ".join),
)


@settings(max_examples=200, deadline=None)
@given(
    task=task_texts,
    models=catalogs,
    needs=st.lists(st.sampled_from(CAPABILITIES), unique=True, max_size=3),
    min_context=st.none() | st.integers(min_value=1, max_value=10_000_000),
    min_output=st.none() | st.integers(min_value=1, max_value=200_000),
    priority=st.sampled_from(["balanced", "cheapest", "fastest", "best"]),
)
def test_no_recommendation_breaks_a_hard_constraint(
    task: str,
    models: list[ModelInfo],
    needs: list[Capability],
    min_context: int | None,
    min_output: int | None,
    priority: Priority,
) -> None:
    result = recommend(
        task,
        models,
        needs=needs,
        min_context=min_context,
        min_output=min_output,
        priority=priority,
        request_caps=TIER_CAPS,
    )

    assert_meets(result, models, needs, min_context, min_output)
    assert result.text()
    if result.pick is None:
        assert result.notes
        assert result.notes[0].startswith("No ")
    else:
        picked = next(m for m in models if m.id == result.pick.model)
        if result.cheaper is not None:
            assert result.cheaper.model != picked.id


@settings(max_examples=200, deadline=None)
@given(task=st.text(max_size=2000))
def test_any_text_is_understood_without_crashing(task: str) -> None:
    profile = understand(task)

    assert profile.traits
    assert profile.kind in ("chat", "image")
    assert all(size > 0 for size in (profile.input_tokens, profile.output_tokens) if size is not None)


def test_the_readme_examples_are_real_answers() -> None:
    """The README's "Choosing a model" shows recommend_model's answers verbatim (bundled catalog)."""
    readme = (Path(__file__).parent.parent / "README.md").read_text("utf-8")
    examples = re.findall(r"^recommend_model (\{.*\})\n((?:.+\n)+)", readme, flags=re.MULTILINE)

    assert len(examples) == 3
    for arguments, shown in examples:
        given = json.loads(arguments)
        result = recommend(given.pop("task"), bundled_models(), request_caps=TIER_CAPS, **given)
        assert shown.rstrip("\n").removesuffix("```").rstrip("\n") == result.text().removesuffix("\n(catalog: bundled)")
