"""The benchmark harness (bench/) still runs: every benchmark once, with tiny counts, timing nothing."""

import json
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp import Client

from bench.__main__ import BENCHMARKS, run_benchmarks
from bench.harness import Counts, rotated
from bench.report import to_markdown, write
from bench.stats import Baseline, Figure, Summary, median_at_most, ratio_at_most, ratios_at_most
from kyma_mcp.emulator import EmulatorHandle
from kyma_mcp.kyma.client import KymaClient
from kyma_mcp.server import build_server
from kyma_mcp.settings import Settings
from tests.conftest import emulator_settings
from tests.results import reply_of, text_of

BENCHMARK_GROUPS = {
    "context cost",
    "catalog",
    "cold start",
    "memory",
    "shutdown",
    "per-call overhead",
    "time to first progress",
    "concurrency",
    "threads",
    "compare",
}


@pytest.mark.slow
@pytest.mark.anyio
async def test_every_benchmark_runs_once_and_writes_table_and_json(tmp_path: Path) -> None:
    with anyio.fail_after(120):
        results = await run_benchmarks(list(BENCHMARKS), Counts.tiny(), with_uv=False, out_dir=tmp_path)

    assert results.broken == []
    assert {figure.benchmark for figure in results.figures} == BENCHMARK_GROUPS
    markdown, data = write(results, tmp_path)
    table = markdown.read_text(encoding="utf-8")
    saved = json.loads(data.read_text(encoding="utf-8"))
    assert len(saved["figures"]) == len(results.figures)
    for figure, row in zip(results.figures, saved["figures"], strict=True):
        assert figure.name in table
        assert {"median", "p90", "min", "max", "ratio", "target", "met"} <= row.keys()
        assert row["min"] <= row["median"] <= row["max"]
    assert {tool["name"] for tool in saved["details"]["tools_list"]} >= {"chat", "list_models"}


def test_summary_interpolates_percentiles_between_ranks() -> None:
    summary = Summary.of([5.0, 1.0, 3.0, 2.0, 4.0])

    assert (summary.median, summary.p90, summary.min, summary.max, summary.n) == (3.0, 4.6, 1.0, 5.0, 5)


def test_targets_read_the_ratio_or_the_median() -> None:
    baseline = Baseline("floor", Summary.of([10.0, 10.0, 20.0]))
    figure = Figure("x", "y", "ms", Summary.of([11.0, 11.0, 30.0]), baseline)

    assert figure.ratio == pytest.approx(1.1)
    assert figure.ratio_p90 == pytest.approx(26.2 / 18)
    assert ratio_at_most(1.10).met(figure)
    assert not ratios_at_most(1.10).met(figure)
    assert median_at_most(11.0, "ms").met(figure)
    assert not median_at_most(10.9, "ms").met(figure)


def test_a_figure_without_baseline_has_no_ratio_and_its_ratio_target_is_undecided() -> None:
    figure = Figure("x", "y", "ms", Summary.of([1.0]), target=ratio_at_most(1.2))

    assert figure.ratio is None
    assert figure.met is None
    assert "| - |" in to_markdown_row(figure)


def to_markdown_row(figure: Figure) -> str:
    from bench.report import Results, now

    return to_markdown(Results([figure], [], {}, Counts.tiny(), now()))


def test_rotated_lets_each_item_go_first_in_turn() -> None:
    assert [rotated("abc", turn)[0] for turn in range(4)] == ["a", "b", "c", "a"]


@pytest.mark.anyio
async def test_a_finished_chat_stream_leaves_its_connection_pooled_for_the_next_call(emulator: EmulatorHandle) -> None:
    # Found by the per-call benchmark: closing a stream before its body ended dropped the
    # connection, so every chat call paid a new TCP connection (about a third of its overhead).
    transport = httpx2.AsyncHTTPTransport()
    client = KymaClient(emulator_settings(emulator, tier=4), transport=transport)
    try:
        for _ in range(3):
            async with client.chat_stream(
                {"model": "qwen-3.6-plus", "messages": [{"role": "user", "content": "hi"}]}
            ) as stream:
                assert [chunk async for chunk in stream.chunks()]
        assert len(transport._pool.connections) == 1  # pyright: ignore[reportPrivateUsage]
    finally:
        await client.aclose()


@pytest.mark.anyio
async def test_the_stub_upstream_streams_the_tokens_asked_for_and_kyma_mcp_reads_them() -> None:
    from bench.table16 import stub_upstream

    async with stub_upstream() as base_url:
        settings = Settings.model_validate({"api_key": "ky-bench", "base_url": base_url, "tier": 4, "store": "off"})
        async with Client(build_server(settings)) as client:
            long = await client.call_tool("chat", {"prompt": "[[tokens=300]] count"})
            short = await client.call_tool("chat", {"prompt": "hi"})

    assert reply_of(text_of(long), has_tool_calls=False) == "tok " * 300
    assert reply_of(text_of(short), has_tool_calls=False) == "tok " * 40
