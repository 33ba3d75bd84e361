"""The period's money where an agent can read it: `get_limits` (budget, spent, reserved, remaining,
reset) and `kyma://spend` (each call's model, tokens and cost), from the store's spend ledger, on
SQLite and PostgreSQL; and the ledger's v2 → v3 migration."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.types import TextResourceContents

from kyma_mcp.emulator import EmulatorHandle
from kyma_mcp.settings import Settings
from kyma_mcp.store import Store, open_store, prune
from kyma_mcp.store.database import Database
from kyma_mcp.store.schema import MIGRATIONS, SCHEMA_VERSION
from tests.conftest import ConnectFactory
from tests.results import structured, text_of

pytestmark = pytest.mark.anyio

PROMPT = {"prompt": "hi", "model": "qwen-3.6-plus", "max_tokens": 1000}
MICRO = 1e-6
"""The ledger keeps whole micro-dollars: each call's cost is rounded to one."""


def ledgered(*costs: float) -> float:
    return sum(round(cost / MICRO) for cost in costs) * MICRO


async def read_spend(client: Client) -> dict[str, Any]:
    result = await client.read_resource("kyma://spend")
    [contents] = result.contents
    assert isinstance(contents, TextResourceContents)
    return json.loads(contents.text)


async def test_get_limits_shows_the_budget_spent_remaining_and_reset(
    connect: ConnectFactory, emulator: EmulatorHandle, store_url: str
) -> None:
    async with connect(budget_usd=1.0, store_url=store_url) as client:
        costs = [structured(await client.call_tool("chat", PROMPT))["usage"]["cost_usd"] for _ in range(2)]
        limits = await client.call_tool("get_limits", {})

    spend = structured(limits)["spend"]
    assert spend["budget_usd"] == 1.0
    assert spend["spent_usd"] == pytest.approx(ledgered(*costs))
    assert spend["remaining_usd"] == pytest.approx(1.0 - ledgered(*costs))
    assert (spend["reserved_usd"], spend["largest_reservation_usd"], spend["calls"]) == (0, 0, 2)
    assert spend["period"] == "day"
    assert spend["resets_at"].endswith("T00:00:00Z")
    assert f"Spend this day: ${ledgered(*costs):.4f} over 2 calls; budget $1.00 (KYMA_BUDGET_USD)" in text_of(limits)


async def test_get_limits_shows_the_largest_reservation_of_a_call_in_flight(
    connect: ConnectFactory, emulator: EmulatorHandle, store_url: str
) -> None:
    slow = {**PROMPT, "prompt": "hi [[words=300]]"}
    seen: list[dict[str, Any]] = []
    async with connect(budget_usd=1.0, store_url=store_url) as client:
        estimate = structured(await client.call_tool("chat", {**slow, "dry_run": True}))["estimate"]["cost_usd"]
        emulator.switches.gather_chats = 2  # the one chat is held at the gateway, in flight, until released
        async with anyio.create_task_group() as group:  # its exit may swallow errors: estimate is bound before
            group.start_soon(client.call_tool, "chat", slow)
            with anyio.fail_after(20):
                while not seen or seen[-1]["reserved_usd"] == 0:
                    await anyio.sleep(0.05)
                    seen.append(structured(await client.call_tool("get_limits", {}))["spend"])
            emulator.switches.gather_chats = 0  # released: the chat finishes and the group exits

    held = seen[-1]
    assert held["largest_reservation_usd"] == held["reserved_usd"]
    assert held["reserved_usd"] == pytest.approx(ledgered(estimate))
    assert held["remaining_usd"] == pytest.approx(1.0 - held["reserved_usd"])


async def test_the_spend_resource_lists_each_call_with_model_tokens_and_cost(
    connect: ConnectFactory, emulator: EmulatorHandle, store_url: str, tmp_path: Path
) -> None:
    emulator.switches.image_delay_seconds = 0
    async with connect(store_url=store_url, output_dir=tmp_path) as client:  # no budget: still recorded
        chat = structured(await client.call_tool("chat", PROMPT))
        image = structured(await client.call_tool("generate_image", {"prompt": "a red fox", "n": 2}))
        compared = structured(
            await client.call_tool("compare", {"prompt": "hi", "models": ["qwen-3.6-plus", "deepseek-r1"]})
        )
        listing = await read_spend(client)

    assert listing["budget_usd"] is None
    assert listing["calls"] == 3
    newest, middle, oldest = listing["recent"]
    assert (oldest["tool"], oldest["model"], oldest["status"]) == ("chat", chat["model_served"], "settled")
    assert (oldest["input_tokens"], oldest["output_tokens"]) == (
        chat["usage"]["prompt_tokens"],
        chat["usage"]["completion_tokens"],
    )
    assert oldest["cost_usd"] == pytest.approx(ledgered(chat["usage"]["cost_usd"]))
    assert (middle["tool"], middle["model"], middle["input_tokens"]) == ("generate_image", "recraft-v4", None)
    assert middle["cost_usd"] == pytest.approx(ledgered(image["charged_usd"]))
    assert (newest["tool"], newest["model"]) == ("compare", "qwen-3.6-plus + deepseek-r1")
    assert newest["cost_usd"] == pytest.approx(ledgered(compared["total_cost_usd"]))
    answers = [section["answer"]["usage"] for section in compared["sections"]]
    assert newest["output_tokens"] == sum(usage["completion_tokens"] for usage in answers)
    assert listing["spent_usd"] == pytest.approx(
        ledgered(chat["usage"]["cost_usd"], image["charged_usd"], compared["total_cost_usd"])
    )


async def test_without_a_budget_a_call_is_written_once_it_ends_refused_cancelled_or_served(
    connect: ConnectFactory, emulator: EmulatorHandle, store_url: str
) -> None:
    """Nothing is held without a budget: each call is written when it ends (one write), as reserve and
    settle would have left it: settled with Kyma's cost, released when refused, of unknown cost (with its
    estimate kept) when cancelled."""
    capped = {**PROMPT, "max_cost_usd": 1.0}  # a cap makes an estimate: what a cancelled call is counted at
    async with connect(store_url=store_url) as client:
        estimate = structured(await client.call_tool("chat", {**capped, "dry_run": True}))["estimate"]["cost_usd"]
        served = structured(await client.call_tool("chat", PROMPT))
        refused = await client.call_tool("chat", {**PROMPT, "model": "no-such-model"})
        emulator.switches.gather_chats = 2  # held at the gateway until the client gives up
        in_flight: dict[str, Any] = {}
        with anyio.fail_after(20):
            async with anyio.create_task_group() as group:

                async def cancelled_call() -> None:
                    with anyio.CancelScope() as scope:
                        group.start_soon(cancel_when_held, scope)
                        await client.call_tool("chat", capped)

                async def cancel_when_held(scope: anyio.CancelScope) -> None:
                    for _ in range(2000):  # until the gateway holds it
                        if emulator.state.requests["/v1/chat/completions"] >= 3:
                            break
                        await anyio.sleep(0.01)
                    in_flight.update(await read_spend(client))
                    scope.cancel()

                group.start_soon(cancelled_call)
            listing = await read_spend(client)
            while listing["calls"] < 3:  # the server writes the cancelled call once the cancellation reaches it
                await anyio.sleep(0.02)
                listing = await read_spend(client)
        emulator.switches.gather_chats = 0

    assert refused.is_error
    assert in_flight["calls"] == 2  # the call in flight is not written yet
    cancelled, released, settled = listing["recent"]
    assert (settled["status"], settled["model"], settled["output_tokens"]) == (
        "settled",
        served["model_served"],
        served["usage"]["completion_tokens"],
    )
    assert settled["cost_usd"] == pytest.approx(ledgered(served["usage"]["cost_usd"]))
    assert (released["status"], released["model"], released["cost_usd"]) == ("released", "no-such-model", None)
    assert (cancelled["status"], cancelled["output_tokens"], cancelled["cost_usd"]) == ("settled", None, None)
    assert cancelled["reserved_usd"] == pytest.approx(ledgered(estimate))
    assert listing["reserved_usd"] == 0
    assert listing["spent_usd"] == pytest.approx(ledgered(served["usage"]["cost_usd"]))  # what is known
    assert (listing["unknown_cost_calls"], listing["unknown_estimated_usd"]) == (1, pytest.approx(ledgered(estimate)))


async def raw_database(url: str) -> Database:
    if url.startswith("sqlite://"):
        from kyma_mcp.store.sqlite import SQLiteDatabase

        return await SQLiteDatabase.open(Path(url.removeprefix("sqlite://")))
    from kyma_mcp.store.postgres import PostgresDatabase

    return await PostgresDatabase.open(url)


async def test_a_version_2_ledger_migrates_forward_and_keeps_its_rows(store_url: str) -> None:
    database = await raw_database(store_url)
    async with database.transaction(write=True) as tx:
        await tx.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        for statements in MIGRATIONS[:2]:
            for statement in statements:
                await tx.execute(statement)
        await tx.execute("INSERT INTO schema_version (version) VALUES (2)")
        await tx.execute(
            "INSERT INTO spend_ledger (id, period, tool, status, reserved_micros, settled_micros, created_at, "
            "updated_at) VALUES ('old', 'day:2026-12-04', 'chat', 'settled', 500, 400, 1.0, 2.0)"
        )
    await database.aclose()

    store = Store(await raw_database(store_url))
    assert await store.migrate() == 2  # the version found
    assert SCHEMA_VERSION >= 3
    old = await store.ledger_entry("old")
    assert old is not None
    assert (old.settled_micros, old.model, old.input_tokens, old.output_tokens) == (400, None, None, None)
    now = time.time()
    await store.reserve(
        "new", period="day:2026-12-04", tool="chat", amount_micros=9, budget_micros=None, now=now, model="m"
    )
    await store.settle("new", amount_micros=7, now=now, model="m-served", input_tokens=3, output_tokens=4)
    newest, oldest = await store.period_entries("day:2026-12-04", limit=10)
    assert (newest.model, newest.input_tokens, newest.output_tokens, newest.settled_micros) == ("m-served", 3, 4, 7)
    assert oldest.id == "old"
    spend = await store.period_spend("day:2026-12-04")
    assert (spend.settled_micros, spend.calls) == (407, 2)
    await store.aclose()


async def test_the_largest_reservation_is_the_largest_still_held(store_url: str) -> None:
    store = await open_store(Settings.model_validate({"store_url": store_url}))
    now = time.time()
    for entry, amount in (("a", 100), ("b", 300), ("c", 200)):
        await store.reserve(entry, period="p", tool="chat", amount_micros=amount, budget_micros=None, now=now)
    await store.settle("b", amount_micros=250, now=now)

    spend = await store.period_spend("p")
    assert (spend.settled_micros, spend.reserved_micros, spend.largest_reserved_micros) == (250, 300, 200)
    await store.aclose()


async def test_a_reservation_left_by_a_dead_process_stops_holding_the_budget(store_url: str) -> None:
    store = await open_store(Settings.model_validate({"store_url": store_url}))
    now = time.time()
    await store.reserve(
        "dead", period="p", tool="chat", amount_micros=900, budget_micros=1000, now=now - 120, expires_at=now - 1
    )
    await store.reserve(
        "alive", period="p", tool="chat", amount_micros=50, budget_micros=1000, now=now - 5, expires_at=now + 60
    )

    spend = await store.period_spend("p", now=now)
    assert (spend.reserved_micros, spend.largest_reserved_micros) == (50, 50)
    assert await store.reserve("next", period="p", tool="chat", amount_micros=900, budget_micros=1000, now=now)
    dead = await store.ledger_entry("dead")
    assert dead is not None
    assert dead.status == "expired"
    assert await store.settle("dead", amount_micros=30, now=now)  # a settle that still arrives counts
    assert (await store.period_spend("p", now=now)).settled_micros == 30
    await store.aclose()


async def test_a_crashed_call_blocks_the_budget_only_until_its_reservation_expires(
    connect: ConnectFactory, emulator: EmulatorHandle, store_url: str
) -> None:
    settings = {"budget_usd": 0.01, "store_url": store_url, "tool_timeout_seconds": 30}
    async with connect(**settings) as client:
        first = structured(await client.call_tool("chat", PROMPT))
        limits = structured(await client.call_tool("get_limits", {}))["spend"]
    store = await open_store(Settings.model_validate({"store_url": store_url}))
    [entry] = await store.period_entries(limits["started"], limit=5)
    assert entry.expires_at is not None
    assert entry.expires_at - entry.created_at == pytest.approx(30 + 60)  # its deadline and a minute
    now = time.time()
    # Another process reserved the rest of the budget, then died before settling.
    held = round(0.01 * 1e6) - round(first["usage"]["cost_usd"] / MICRO)
    await store.reserve(
        "crashed", period=limits["started"], tool="chat", amount_micros=held, budget_micros=None, now=now
    )
    async with connect(**settings) as client:
        blocked = await client.call_tool("chat", PROMPT)
        async with store.database.transaction(write=True) as tx:  # its deadline and minute go by
            await tx.execute("UPDATE spend_ledger SET expires_at = ? WHERE id = 'crashed'", (time.time() - 1,))
        freed = await client.call_tool("chat", PROMPT)
    await store.aclose()

    assert "would cross the budget" in text_of(blocked)
    assert structured(freed)["reply"].startswith("Echo from")


async def test_pruning_drops_ledger_entries_past_two_months_and_expired_tokens(store_url: str) -> None:
    settings = Settings.model_validate({"store_url": store_url})
    store = await open_store(settings)
    now = time.time()
    day = 86_400
    for entry, age in (("old", 63 * day), ("recent", 61 * day)):
        await store.reserve(entry, period="p", tool="chat", amount_micros=1, budget_micros=None, now=now - age)
        await store.settle(entry, amount_micros=1, now=now - age)
    await store.issue_token("stale", "call", expires_at=now - 1, now=now - 600)
    await store.issue_token("live", "call", expires_at=now + 600, now=now)

    await prune(store, settings)

    assert await store.ledger_entry("old") is None
    assert await store.ledger_entry("recent") is not None
    assert not await store.redeem_token("stale", "call", now=now - 2)  # gone, though it was still good then
    assert await store.redeem_token("live", "call", now=now)
    await store.aclose()
