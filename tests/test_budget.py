"""Budgets across calls: reserved before sending, settled with Kyma's cost, kept in the store's ledger
(SQLite and PostgreSQL: the `store_url` fixture)."""

from datetime import UTC, datetime

import anyio
import pytest
from mcp.types import CallToolResult

from kyma_mcp.budget import period_of
from kyma_mcp.emulator import EmulatorHandle
from kyma_mcp.settings import Settings
from tests.conftest import ConnectFactory
from tests.results import error_text, structured

pytestmark = pytest.mark.anyio

CHAT = "/v1/chat/completions"
LONG = {"prompt": "hi [[words=900]]", "model": "qwen-3.6-plus", "max_tokens": 1000}
LONG_ESTIMATE = (10 * 0.68 + 1000 * 4.05) / 1e6
"""A 900-word reply costs most of its estimate, so a budget of 1.5 estimates allows exactly one."""


FULL = {"prompt": "hi [[words=3000]]", "model": "qwen-3.6-plus", "max_tokens": 1000}
"""A reply cut at its 1,000 tokens costs its estimate but for the input the estimate over-counts, so a
budget of 10.5 estimates allows exactly 10 calls, however many settle before the others reserve."""


async def test_twenty_concurrent_calls_against_a_budget_for_ten(
    connect: ConnectFactory, emulator: EmulatorHandle, store_url: str
) -> None:
    async with connect() as client:
        estimate = structured(await client.call_tool("chat", {**FULL, "dry_run": True}))["estimate"]["cost_usd"]
    budget = estimate * 10 + estimate / 2
    results: list[CallToolResult] = []
    async with connect(budget_usd=budget, store_url=store_url) as client:

        async def one() -> None:
            results.append(await client.call_tool("chat", FULL))

        async with anyio.create_task_group() as group:
            for _ in range(20):
                group.start_soon(one)

    refused = [r for r in results if r.is_error]
    assert len(refused) == 10
    assert all(error_text(r).startswith("[budget_exceeded] This call (estimated $0.00") for r in refused)
    assert all("would cross the budget" in error_text(r) for r in refused)
    assert emulator.state.requests[CHAT] == 10
    assert emulator.state.total_charged <= budget


async def test_the_budget_survives_a_restart_and_names_spend_reset_and_remaining(
    connect: ConnectFactory, emulator: EmulatorHandle, store_url: str
) -> None:
    settings = {"budget_usd": LONG_ESTIMATE * 1.5, "store_url": store_url}
    async with connect(**settings) as client:
        first = await client.call_tool("chat", LONG)
    async with connect(**settings) as client:  # a new server process over the same store
        second = await client.call_tool("chat", LONG)

    charged = structured(first)["usage"]["cost_usd"]
    text = error_text(second)
    assert "would cross the budget of $0.0061 per day (KYMA_BUDGET_USD)" in text
    assert f"spent ${charged:.4f} this period" in text  # settled with Kyma's cost, not the estimate
    assert "remaining; the period resets" in text
    assert "UTC" in text
    assert emulator.state.requests[CHAT] == 1


async def test_without_a_store_the_budget_is_per_process(connect: ConnectFactory, emulator: EmulatorHandle) -> None:
    async with connect(budget_usd=LONG_ESTIMATE * 1.5, store="off") as client:
        assert not (await client.call_tool("chat", LONG)).is_error
        assert (await client.call_tool("chat", LONG)).is_error
    async with connect(budget_usd=LONG_ESTIMATE * 1.5, store="off") as client:
        assert not (await client.call_tool("chat", LONG)).is_error
    assert emulator.state.requests[CHAT] == 2


@pytest.mark.parametrize(
    ("kind", "at", "key", "resets"),
    [
        ("day", datetime(2026, 12, 31, 23, 59, tzinfo=UTC), "day:2026-12-31", datetime(2027, 1, 1, tzinfo=UTC)),
        ("day", datetime(2027, 1, 1, 0, 0, tzinfo=UTC), "day:2027-01-01", datetime(2027, 1, 2, tzinfo=UTC)),
        ("week", datetime(2026, 12, 4, 12, tzinfo=UTC), "week:2026-11-30", datetime(2026, 12, 7, tzinfo=UTC)),
        ("month", datetime(2026, 12, 4, 12, tzinfo=UTC), "month:2026-12", datetime(2027, 1, 1, tzinfo=UTC)),
        ("month", datetime(2027, 1, 1, 0, 0, tzinfo=UTC), "month:2027-01", datetime(2027, 2, 1, tzinfo=UTC)),
    ],
)
def test_a_period_is_the_utc_calendar_day_week_or_month_and_resets_at_its_end(
    kind: str, at: datetime, key: str, resets: datetime
) -> None:
    settings = Settings.model_validate({"budget_period": kind})
    assert period_of(settings, at) == (key, resets)
    assert period_of(settings, at) == (key, resets)  # worked out once a day: the same again
