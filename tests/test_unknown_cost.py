"""A cost the gateway did not report is unknown, never $0: in a thread's turns and total (the
conversation resources, the `kyma-mcp conversations` command), in the spend ledger (`kyma://spend`,
`get_limits`), and against a budget, where it counts at its estimate. Against the emulator's plain
`openai` dialect (no `usage.cost`) over loopback, on SQLite and PostgreSQL; and the schema's v5 → v6
migration with existing rows."""

from __future__ import annotations

import json
import time
from pathlib import Path

import anyio
import pytest
from mcp import Client
from mcp.types import TextResourceContents

from kyma_mcp.cli import main as cli_main
from kyma_mcp.emulator import EmulatorHandle
from kyma_mcp.server import build_server
from kyma_mcp.settings import Settings
from kyma_mcp.store import Store, open_store
from kyma_mcp.store.database import Database
from kyma_mcp.store.records import Conversation, NewTurn, TurnOutcome
from kyma_mcp.store.schema import MIGRATIONS, SCHEMA_VERSION
from tests.conftest import ConnectFactory, emulator_settings
from tests.results import error_text, structured, text_of

pytestmark = pytest.mark.anyio

CHAT = "/v1/chat/completions"
PROMPT = {"prompt": "hi", "model": "qwen-3.6-plus", "max_tokens": 1000}


async def read_text(client: Client, uri: str) -> str:
    result = await client.read_resource(uri)
    [contents] = result.contents
    assert isinstance(contents, TextResourceContents)
    return contents.text


async def test_a_thread_on_a_gateway_that_reports_no_cost_is_of_unknown_cost(
    connect: ConnectFactory, emulator: EmulatorHandle, store_url: str
) -> None:
    emulator.switches.dialect = "openai"  # a plain OpenAI-compatible server: no usage.cost, no prices
    async with connect(store_url=store_url) as client:
        first = structured(await client.call_tool("chat", {"prompt": "first question"}))
        thread = first["conversation_id"]
        second = structured(await client.call_tool("chat", {"prompt": "and then?", "conversation_id": thread}))
        listing = json.loads(await read_text(client, "kyma://conversations"))
        transcript = await read_text(client, f"kyma://conversations/{thread}")
        spend = json.loads(await read_text(client, "kyma://spend"))
        limits = await client.call_tool("get_limits", {})

    assert first["usage"]["cost_usd"] is None
    assert second["usage"]["cost_usd"] is None
    assert first["usage"]["completion_tokens"] > 0  # the gateway did count tokens: only the cost is missing
    [summary] = listing["conversations"]
    assert (summary["cost_usd"], summary["unknown_cost_turns"], summary["cost"]) == (None, 2, "unknown")
    assert " · unknown · updated " in transcript.splitlines()[2]  # the header's total
    assert transcript.count(" · cost unknown · ") == 2  # each turn's line
    assert "$0.000000" not in transcript
    assert (spend["spent_usd"], spend["unknown_cost_calls"], spend["calls"]) == (0, 2, 2)
    assert [(call["status"], call["cost_usd"]) for call in spend["recent"]] == [("settled", None)] * 2
    text = text_of(limits)
    assert "Spend this day: unknown over 2 calls (the gateway reported no cost for them, or they were cancelled)" in (
        text
    )
    assert structured(limits)["spend"]["unknown_cost_calls"] == 2


async def test_a_thread_with_some_costs_reported_says_what_it_knows(
    connect: ConnectFactory, emulator: EmulatorHandle, store_url: str
) -> None:
    async with connect(store_url=store_url) as client:
        first = structured(await client.call_tool("chat", PROMPT))  # Kyma reports this one's cost
        thread = first["conversation_id"]
        emulator.switches.dialect = "openai"  # the next answer carries none
        await client.call_tool("chat", {"prompt": "more", "conversation_id": thread})
        await client.call_tool("chat", {"prompt": "and more", "conversation_id": thread})
        listing = json.loads(await read_text(client, "kyma://conversations"))
        transcript = await read_text(client, f"kyma://conversations/{thread}")
        spend = json.loads(await read_text(client, "kyma://spend"))

    known = round(first["usage"]["cost_usd"] * 1e6) / 1e6
    [summary] = listing["conversations"]
    assert summary["cost_usd"] == pytest.approx(known)
    assert summary["unknown_cost_turns"] == 2
    assert summary["cost"] == f"${known:.6f} + 2 turns of unknown cost"
    assert f" · ${known:.6f} + 2 turns of unknown cost · " in transcript
    assert spend["spent_usd"] == pytest.approx(known)
    assert spend["unknown_cost_calls"] == 2


async def test_under_a_budget_an_unreported_charge_counts_at_its_estimate_never_zero(
    connect: ConnectFactory, emulator: EmulatorHandle, store_url: str
) -> None:
    async with connect(store_url=store_url) as client:
        estimate = structured(await client.call_tool("chat", {**PROMPT, "dry_run": True}))["estimate"]["cost_usd"]
    budget = estimate * 1.5  # room for one call at its estimate, not two
    async with connect(budget_usd=budget, store_url=store_url) as client:
        await client.call_tool("chat", {**PROMPT, "dry_run": True})  # the catalog's live prices, read from Kyma
        emulator.switches.dialect = "openai"  # then a gateway that reports no cost
        served = await client.call_tool("chat", PROMPT)
        limits = await client.call_tool("get_limits", {})
        refused = await client.call_tool("chat", PROMPT)

    assert structured(served)["usage"]["cost_usd"] is None
    spend = structured(limits)["spend"]
    held = round(estimate * 1e6) / 1e6
    assert (spend["spent_usd"], spend["unknown_cost_calls"]) == (0, 1)
    assert spend["unknown_estimated_usd"] == pytest.approx(held)
    assert spend["remaining_usd"] == pytest.approx(budget - held)
    assert "they count at their estimates" in text_of(limits)
    text = error_text(refused)
    assert "would cross the budget" in text
    assert "1 call of unknown cost counted at their estimates" in text
    assert emulator.state.requests[CHAT] == 1  # the second call was never sent


async def chat_twice(emulator: EmulatorHandle, store_url: str) -> str:
    async with Client(build_server(emulator_settings(emulator, store_url=store_url))) as client:
        thread = structured(await client.call_tool("chat", {"prompt": "unpriced"}))["conversation_id"]
        await client.call_tool("chat", {"prompt": "again", "conversation_id": thread})
        return thread


def test_the_conversations_command_lists_an_unknown_total(
    emulator: EmulatorHandle, store_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    emulator.switches.dialect = "openai"
    thread = anyio.run(chat_twice, emulator, store_url)
    monkeypatch.setenv("KYMA_STORE_URL", store_url)
    assert cli_main(["conversations", "list"]) == 0
    [line] = [line for line in capsys.readouterr().out.splitlines() if line.startswith(thread)]
    assert "  2 turns  unknown  " in line
    assert "$0.0000" not in line
    assert cli_main(["conversations", "export", thread, "--format", "json"]) == 0
    exported = json.loads(capsys.readouterr().out)
    assert [turn["cost_usd"] for turn in exported["turns"]] == [None, None]
    assert (exported["cost_usd"], exported["cost"]) == (None, "unknown")


async def test_the_store_counts_turns_of_unknown_cost_including_those_a_dead_process_left(store_url: str) -> None:
    store = await open_store(Settings.model_validate({"store_url": store_url}))
    now = time.time()
    thread = Conversation(id="t1", title="t", system=None, created_at=now, updated_at=now)

    def turn(at: float) -> NewTurn:
        return NewTurn(messages_json="[]", model_requested="m", created_at=at)

    await store.record_thread(thread, turn(now), TurnOutcome(status="complete", cost_micros=700), now=now)
    for seq, outcome in (
        (2, TurnOutcome(status="complete")),  # no cost reported
        (3, TurnOutcome(status="failed", error_word="invalid_request", cost_micros=0)),  # refused: nothing charged
    ):
        began = await store.begin_turn(
            thread, turn(now + seq), create=False, owner="o", lease_until=now + 60, replace_system=False
        )
        assert began is not None
        assert began[0] == seq
        await store.finish_turn("t1", seq, outcome, owner="o", now=now + seq)
    # A process takes the lease, records turn 4 as pending, and dies; the next turn finds it.
    await store.begin_turn(thread, turn(now + 4), create=False, owner="dead", lease_until=now - 1, replace_system=False)
    began = await store.begin_turn(
        thread, turn(now + 5), create=False, owner="o", lease_until=now + 60, replace_system=False
    )
    assert began is not None
    assert began[0] == 5

    conversation = await store.conversation("t1")
    turns = await store.turns("t1")
    await store.aclose()
    assert conversation is not None
    assert (conversation.cost_micros, conversation.unknown_cost_turns) == (700, 2)  # turn 2, and the dead turn 4
    assert [t.outcome.cost_micros for t in turns] == [700, None, 0, None, None]
    assert [t.status for t in turns] == ["complete", "complete", "failed", "interrupted", "pending"]


async def raw_database(url: str) -> Database:
    if url.startswith("sqlite://"):
        from kyma_mcp.store.sqlite import SQLiteDatabase

        return await SQLiteDatabase.open(Path(url.removeprefix("sqlite://")))
    from kyma_mcp.store.postgres import PostgresDatabase

    return await PostgresDatabase.open(url)


async def test_a_version_5_store_migrates_forward_keeping_its_threads(store_url: str) -> None:
    database = await raw_database(store_url)
    async with database.transaction(write=True) as tx:
        await tx.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        for statements in MIGRATIONS[:5]:
            for statement in statements:
                await tx.execute(statement)
        await tx.execute("INSERT INTO schema_version (version) VALUES (5)")
        await tx.execute(
            "INSERT INTO conversations (id, title, created_at, updated_at, turns, cost_micros, models) "
            "VALUES ('old', 'an old thread', 1.0, 2.0, 2, 900, '[\"qwen-3.6-plus\"]')"
        )
        for seq, cost in ((1, 400), (2, 500)):
            await tx.execute(
                "INSERT INTO turns (conversation_id, seq, status, messages, model_requested, model_served, reply, "
                "prompt_tokens, completion_tokens, cost_micros, latency_ms, finish_reason, prompt_estimate, "
                "created_at, updated_at) VALUES ('old', ?, 'complete', '[]', 'qwen-3.6-plus', 'qwen-3.6-plus', "
                "'a reply', 10, 20, ?, 30, 'stop', 12, ?, ?)",
                (seq, cost, float(seq), float(seq)),
            )
    await database.aclose()

    store = Store(await raw_database(store_url))
    assert await store.migrate() == 5  # the version found
    assert SCHEMA_VERSION >= 6
    old = await store.conversation("old")
    turns = await store.turns("old")
    assert old is not None
    assert (old.turns, old.cost_micros, old.unknown_cost_turns, old.models) == (2, 900, 0, ("qwen-3.6-plus",))
    assert [(t.seq, t.outcome.cost_micros, t.outcome.reply, t.outcome.prompt_estimate) for t in turns] == [
        (1, 400, "a reply", 12),
        (2, 500, "a reply", 12),
    ]
    began = await store.begin_turn(
        Conversation(id="old", title="", system=None, created_at=0, updated_at=0),
        NewTurn(messages_json="[]", model_requested="m", created_at=3.0),
        create=False,
        owner="o",
        lease_until=time.time() + 60,
        replace_system=False,
    )
    assert began is not None
    assert began[0] == 3
    await store.finish_turn("old", 3, TurnOutcome(status="complete"), owner="o", now=4.0)  # a cost unknown
    after = await store.conversation("old")
    assert after is not None
    assert (after.cost_micros, after.unknown_cost_turns) == (900, 1)
    assert [t.outcome.cost_micros for t in await store.turns("old")] == [400, 500, None]
    # The rebuilt table still belongs to its thread: deleting the thread deletes its turns (ON DELETE CASCADE).
    async with store.database.transaction(write=True) as tx:
        await tx.execute("DELETE FROM conversations WHERE id = 'old'")
    assert await store.turns("old") == []
    await store.aclose()
