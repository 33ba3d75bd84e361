"""The store's interface, run against SQLite and a real PostgreSQL (the same tests for both)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest
from mcp import Client

from kyma_mcp.emulator import EmulatorHandle
from kyma_mcp.errors import StoreUnavailableError
from kyma_mcp.server import build_server
from kyma_mcp.settings import ConfigError, Settings
from kyma_mcp.store import Store, StoreHandle, default_path, open_store
from kyma_mcp.store.records import Conversation, ImageJob, NewTurn, TurnOutcome, TurnStatus
from kyma_mcp.store.schema import SCHEMA_VERSION
from tests.conftest import TEST_KEY

pytestmark = pytest.mark.anyio


def settings_for(url: str, **overrides: object) -> Settings:
    return Settings.model_validate({"store_url": url} | overrides)


def thread(conversation_id: str = "c1", system: str | None = None) -> Conversation:
    return Conversation(id=conversation_id, title="hello", system=system, created_at=0, updated_at=0)


def user_turn(text: str, model: str = "qwen-3.6-plus", at: float | None = None) -> NewTurn:
    return NewTurn(
        messages_json=json.dumps([{"role": "user", "content": text}]),
        model_requested=model,
        created_at=time.time() if at is None else at,
    )


def file_modes(folder: Path) -> dict[str, int]:
    """Every file under `folder` (recursively) and its permission bits."""
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.rglob("*") if p.is_file()}


async def test_schema_is_created_once_and_reopening_keeps_data(store_url: str) -> None:
    store = await open_store(settings_for(store_url))
    await store.begin_turn(
        thread(), user_turn("hi"), create=True, owner="o", lease_until=time.time() + 60, replace_system=False
    )
    await store.aclose()
    again = await open_store(settings_for(store_url))
    assert await again.migrate() == SCHEMA_VERSION
    conversation = await again.conversation("c1")
    assert conversation is not None
    assert conversation.title == "hello"
    await again.aclose()


async def test_a_turn_is_pending_until_finished_and_totals_follow(store_url: str) -> None:
    store = await open_store(settings_for(store_url))
    began = await store.begin_turn(
        thread(system="be brief"),
        user_turn("hi"),
        create=True,
        owner="o",
        lease_until=time.time() + 60,
        replace_system=False,
    )
    assert began == (1, [])
    assert [t.status for t in await store.turns("c1")] == ["pending"]
    outcome = TurnOutcome(
        status="complete",
        reply="hello!",
        model_served="qwen-3.6-plus",
        prompt_tokens=12,
        completion_tokens=3,
        cost_micros=42,
        latency_ms=100,
        finish_reason="stop",
        prompt_estimate=40,
    )
    await store.finish_turn("c1", 1, outcome, owner="o", now=time.time())
    (turn,) = await store.turns("c1")
    assert turn.outcome == outcome
    conversation = await store.conversation("c1")
    assert conversation is not None
    assert (conversation.turns, conversation.cost_micros, conversation.models, conversation.system) == (
        1,
        42,
        ("qwen-3.6-plus",),
        "be brief",
    )
    second = await store.begin_turn(
        thread(system="be long"),
        user_turn("more", "deepseek-r1"),
        create=False,
        owner="p",
        lease_until=time.time() + 60,
        replace_system=True,
    )
    assert second is not None
    assert second[0] == 2
    assert [t.seq for t in second[1]] == [1]
    conversation = await store.conversation("c1")
    assert conversation is not None
    assert conversation.system == "be long"
    await store.aclose()


@pytest.mark.parametrize("status", ["complete", "interrupted"])
async def test_a_new_thread_written_at_once_is_what_begin_then_finish_would_leave(
    store_url: str, status: TurnStatus
) -> None:
    store = await open_store(settings_for(store_url))
    first = user_turn("hi", at=1000.0)
    outcome = TurnOutcome(
        status=status, reply="hello!", model_served="qwen-3.6-plus", prompt_tokens=12, cost_micros=42, latency_ms=9
    )
    await store.begin_turn(
        thread("a", "be brief"), first, create=True, owner="o", lease_until=2000, replace_system=False
    )
    await store.finish_turn("a", 1, outcome, owner="o", now=1001.0)
    await store.record_thread(thread("b", "be brief"), first, outcome, now=1001.0)

    a, b = await store.conversation("a"), await store.conversation("b")
    assert a is not None
    assert b is not None
    assert replace(b, id="a") == a
    assert [replace(turn, conversation_id="a") for turn in await store.turns("b")] == await store.turns("a")
    began = await store.begin_turn(
        thread("b"), user_turn("more"), create=False, owner="p", lease_until=time.time() + 60, replace_system=False
    )
    assert began is not None  # no lease held: the thread takes its next turn at once
    assert began[0] == 2
    await store.aclose()


async def test_the_lease_keeps_a_second_turn_out_until_released_or_expired(store_url: str) -> None:
    store = await open_store(settings_for(store_url))
    now = time.time()
    await store.begin_turn(
        thread(), user_turn("one"), create=True, owner="a", lease_until=now + 60, replace_system=False
    )
    assert (
        await store.begin_turn(
            thread(), user_turn("two"), create=False, owner="b", lease_until=now + 60, replace_system=False
        )
        is None
    )
    # A lease past its time (its process died): the next turn takes over and marks the orphan interrupted.
    late = user_turn("two", at=now + 61)
    taken = await store.begin_turn(thread(), late, create=False, owner="b", lease_until=now + 120, replace_system=False)
    assert taken is not None
    seq, earlier = taken
    assert seq == 2
    assert [t.status for t in earlier] == ["interrupted"]
    # The dead owner's late finish does not release the new owner's lease.
    await store.finish_turn("c1", 1, TurnOutcome(status="failed"), owner="a", now=now + 62)
    assert (
        await store.begin_turn(
            thread(),
            user_turn("three", at=now + 63),
            create=False,
            owner="c",
            lease_until=now + 90,
            replace_system=False,
        )
        is None
    )
    await store.aclose()


async def test_an_unknown_conversation_is_a_lookup_error(store_url: str) -> None:
    store = await open_store(settings_for(store_url))
    with pytest.raises(LookupError):
        await store.begin_turn(
            thread("nope"), user_turn("x"), create=False, owner="o", lease_until=time.time() + 5, replace_system=False
        )
    await store.aclose()


async def test_listing_is_newest_first_and_paged_and_pruning_keeps_recent(store_url: str) -> None:
    store = await open_store(settings_for(store_url))
    for index in range(5):
        await store.begin_turn(
            thread(f"c{index}"),
            user_turn("x", at=1000.0 + index),
            create=True,
            owner="o",
            lease_until=0,
            replace_system=False,
        )
        await store.finish_turn(f"c{index}", 1, TurnOutcome(status="complete"), owner="o", now=1000.0 + index)
    page, total = await store.conversations(limit=2, offset=1)
    assert total == 5
    assert [c.id for c in page] == ["c3", "c2"]
    assert await store.prune_conversations(updated_before=1002.5) == 3
    assert [c.id for c in (await store.conversations(limit=10))[0]] == ["c4", "c3"]
    assert await store.turns("c0") == []
    assert await store.delete_conversation("c4")
    assert not await store.delete_conversation("c4")
    await store.aclose()


async def test_reservations_respect_the_budget_and_settle(store_url: str) -> None:
    store = await open_store(settings_for(store_url))
    now = time.time()
    assert await store.reserve("r1", period="2026-12", tool="chat", amount_micros=600, budget_micros=1000, now=now)
    assert (await store.period_spend("2026-12")).total_micros == 600
    assert not await store.reserve("r2", period="2026-12", tool="chat", amount_micros=500, budget_micros=1000, now=now)
    assert await store.reserve("r3", period="2027-01", tool="chat", amount_micros=500, budget_micros=1000, now=now)
    assert await store.settle("r1", amount_micros=250, now=now)
    assert not await store.settle("r1", amount_micros=999, now=now)
    spend = await store.period_spend("2026-12")
    assert (spend.settled_micros, spend.reserved_micros) == (250, 0)
    assert await store.reserve("r4", period="2026-12", tool="image", amount_micros=700, budget_micros=1000, now=now)
    assert await store.release("r4", now=now)
    entry = await store.ledger_entry("r1")
    assert entry is not None
    assert (entry.status, entry.settled_micros, entry.reserved_micros) == ("settled", 250, 600)
    assert (await store.period_spend("2026-12")).total_micros == 250
    await store.aclose()


async def test_concurrent_reservations_never_exceed_the_budget(store_url: str) -> None:
    stores = [await open_store(settings_for(store_url)) for _ in range(3)]
    granted: list[str] = []

    async def attempt(store: Store, entry: str) -> None:
        if await store.reserve(entry, period="p", tool="chat", amount_micros=100, budget_micros=1000, now=time.time()):
            granted.append(entry)

    async with anyio.create_task_group() as group:
        for index in range(30):
            group.start_soon(attempt, stores[index % 3], f"e{index}")
    assert len(granted) == 10
    assert (await stores[0].period_spend("p")).total_micros == 1000
    for store in stores:
        await store.aclose()


async def test_the_job_journal_keeps_the_first_record_for_a_key(store_url: str) -> None:
    store = await open_store(settings_for(store_url))
    job = ImageJob(
        idempotency_key="k1", model="flux", prompt_words="a red fox", status="submitting", created_at=1, updated_at=1
    )
    assert await store.record_job(job) == job
    await store.update_job("k1", status="queued", job_id="job-9", now=2)
    retried = await store.record_job(job)
    assert (retried.job_id, retried.status) == ("job-9", "queued")
    await store.update_job("k1", status="succeeded", files=["/x/a.png"], now=3)
    found = await store.job(job_id="job-9")
    assert found is not None
    assert found.files == ("/x/a.png",)
    assert found.prompt_words == "a red fox"
    await store.record_job(
        ImageJob(idempotency_key="k2", model="flux", prompt_words="b", status="submitting", created_at=4, updated_at=4)
    )
    assert [j.idempotency_key for j in await store.recent_jobs(limit=5)] == ["k2", "k1"]
    await store.aclose()


async def test_the_default_file_is_private_in_the_data_folder_and_uses_wal() -> None:
    handle = StoreHandle(Settings())
    await (await handle.get()).conversation("x")
    path = default_path()
    assert path.parent.name == "kyma-mcp"
    assert path.exists()
    assert file_modes(path.parent) == {path.name: 0o600, f"{path.name}-wal": 0o600, f"{path.name}-shm": 0o600}
    await handle.aclose()


async def test_store_off_writes_nothing_to_disk(tmp_path: Path, private_data_home: Path) -> None:
    handle = StoreHandle(Settings(store="off"))
    store = await handle.get()
    await store.begin_turn(thread(), user_turn("secret"), create=True, owner="o", lease_until=0, replace_system=False)
    assert (await store.turns("c1"))[0].messages_json.find("secret") > 0
    await handle.aclose()
    assert not default_path().exists()
    assert file_modes(tmp_path) == {}
    assert file_modes(private_data_home) == {}


async def test_the_memory_store_runs_every_transaction_on_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """No worker thread between BEGIN and COMMIT in memory: nothing there can wait for a lock or a disk."""
    store = await open_store(Settings(store="off"))

    def no_thread(*_: object, **__: object) -> None:
        raise AssertionError("a memory-store transaction hopped to a worker thread")

    monkeypatch.setattr(anyio.to_thread, "run_sync", no_thread)
    now = time.time()
    began = await store.begin_turn(
        thread(), user_turn("hi"), create=True, owner="o", lease_until=now + 60, replace_system=False
    )
    assert began == (1, [])
    outcome = TurnOutcome(status="complete", reply="hello!", cost_micros=5)
    await store.finish_turn("c1", 1, outcome, owner="o", now=now)
    assert [turn.outcome.reply for turn in await store.turns("c1")] == ["hello!"]
    assert await store.reserve("r1", period="p", tool="chat", amount_micros=600, budget_micros=1000, now=now)
    assert not await store.reserve("r2", period="p", tool="chat", amount_micros=500, budget_micros=1000, now=now)
    assert await store.settle("r1", amount_micros=250, now=now)
    assert (await store.period_spend("p", now=now)).settled_micros == 250

    async def failing() -> None:
        async with store.database.transaction(write=True) as tx:
            await tx.execute("DELETE FROM spend_ledger")
            raise RuntimeError

    with pytest.raises(RuntimeError):  # a failing transaction is rolled back, on the loop too
        await failing()
    assert (await store.ledger_entry("r1")) is not None
    monkeypatch.undo()
    await store.aclose()


async def test_a_file_store_reads_on_the_event_loop_and_writes_through_a_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ending a read never checkpoints: reads take no thread hop; a write's BEGIN and COMMIT still do."""
    store = await open_store(settings_for(f"sqlite://{tmp_path / 'store.sqlite3'}"))
    await store.begin_turn(thread(), user_turn("hi"), create=True, owner="o", lease_until=0, replace_system=False)
    hops: list[object] = []
    real = anyio.to_thread.run_sync

    async def counted(function: Callable[..., object], *args: object) -> object:
        hops.append(function)
        return await real(function, *args)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counted)
    assert [turn.status for turn in await store.turns("c1")] == ["pending"]
    assert (await store.period_spend("p")).calls == 0
    assert hops == []
    assert await store.reserve("r1", period="p", tool="chat", amount_micros=1, budget_micros=None, now=time.time())
    assert len(hops) == 1  # the write lock was free: BEGIN IMMEDIATE on the loop, COMMIT on a thread
    monkeypatch.undo()
    await store.aclose()


HOLD_THE_WRITE_LOCK = """
import sqlite3, sys, time
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN IMMEDIATE")
connection.execute("INSERT INTO confirm_tokens (token, fingerprint, expires_at) VALUES ('other', 'f', 0)")
print("holding", flush=True)
time.sleep(float(sys.argv[2]))
connection.execute("COMMIT")
"""


async def test_a_write_waits_on_a_thread_while_another_process_holds_the_write_lock(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"
    store = await open_store(settings_for(f"sqlite://{path}"))
    holder = await anyio.open_process([sys.executable, "-c", HOLD_THE_WRITE_LOCK, str(path), "0.5"])
    assert holder.stdout is not None
    assert (await holder.stdout.receive()).strip() == b"holding"
    with anyio.fail_after(10):  # the lock is held as the write begins: it waits, it does not fail at once
        assert await store.reserve("r1", period="p", tool="chat", amount_micros=1, budget_micros=None, now=0)
        assert await holder.wait() == 0
    await holder.aclose()
    assert await store.redeem_token("other", "f", now=0)  # the other process's write is there too
    assert await store.ledger_entry("r1") is not None
    async with store.database.transaction(write=False) as tx:  # and the busy timeout is the full one again
        assert await tx.fetch("PRAGMA busy_timeout") == [(5000,)]
    await store.aclose()


async def test_concurrent_reservations_on_the_memory_store_never_exceed_the_budget() -> None:
    store = await open_store(Settings(store="off"))
    granted: list[str] = []

    async def attempt(entry: str) -> None:
        await anyio.lowlevel.checkpoint()  # all thirty are in flight before the first reserves
        if await store.reserve(entry, period="p", tool="chat", amount_micros=100, budget_micros=1000, now=time.time()):
            granted.append(entry)

    async with anyio.create_task_group() as group:
        for index in range(30):
            group.start_soon(attempt, f"e{index}")
    assert len(granted) == 10
    assert (await store.period_spend("p")).total_micros == 1000
    await store.aclose()


async def test_a_corrupt_file_is_a_clear_error_and_the_next_open_retries(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"
    path.write_bytes(b"this is not a database, it is a shopping list\n" * 100)
    handle = StoreHandle(settings_for(f"sqlite://{path}"))
    with pytest.raises(StoreUnavailableError) as caught:
        await handle.get()
    assert str(caught.value).startswith("[store_unavailable]")
    assert "not a readable SQLite database" in str(caught.value)
    assert "Move that file aside" in str(caught.value)
    path.unlink()
    assert await (await handle.get()).conversation("x") is None
    await handle.aclose()


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 's.sqlite3'}"
    store = await open_store(settings_for(url))
    async with store.database.transaction(write=True) as tx:
        await tx.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    await store.aclose()
    with pytest.raises(StoreUnavailableError, match="newer than this kyma-mcp"):
        await open_store(settings_for(url))


async def test_an_unreachable_postgres_is_a_clear_error() -> None:
    pytest.importorskip("psycopg")
    with pytest.raises(StoreUnavailableError) as caught:
        await open_store(settings_for("postgresql://nobody:hunter2@127.0.0.1:1/none"))
    assert "PostgreSQL at 127.0.0.1:1/none" in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_store_url_must_name_a_backend() -> None:
    with pytest.raises(ConfigError, match=r"KYMA_STORE_URL=\(hidden\) is invalid: .*postgresql://"):
        Settings.from_env({"KYMA_STORE_URL": "mysql://x"})
    with pytest.raises(ConfigError, match="absolute"):
        Settings.from_env({"KYMA_STORE_URL": "sqlite://relative.db"})
    assert Settings.from_env({"KYMA_STORE": "off"}).store == "off"


STORE_CODE = (
    "sqlite3",
    "psycopg",
    "psycopg_pool",
    "kyma_mcp.store.api",
    "kyma_mcp.store.records",
    "kyma_mcp.store.schema",
    "kyma_mcp.store.sqlite",
    "kyma_mcp.store.postgres",
)


def test_importing_the_server_loads_no_store_code() -> None:
    """Cold start: the store and its code (record classes, sqlite3, psycopg) load on first use, not at import.
    (What else importing the server must leave out is checked with the other start-up costs.)"""
    probe = (
        "import sys, kyma_mcp.server, kyma_mcp.cli\n"
        f"print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in {STORE_CODE!r} or m in {STORE_CODE!r})))"
    )
    # Without coverage.py's variables: measured under `coverage run` (CI), the probe would start coverage,
    # whose data file is SQLite.
    plain = {name: value for name, value in os.environ.items() if not name.startswith("COVERAGE_")}
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True, env=plain
    )

    assert done.stdout.split() == []


async def test_a_server_opens_its_store_on_the_first_call_that_needs_it(
    emulator: EmulatorHandle, private_data_home: Path
) -> None:
    # `emulator`, not the bare session one: a switch an earlier test left (a hang, held chats) would
    # keep this chat waiting out its whole 50 s deadline.
    settings = Settings.model_validate({"api_key": TEST_KEY, "base_url": emulator.base_url})
    async with Client(build_server(settings)) as client:
        listed = await client.call_tool("list_models", {"limit": 1})
        recommended = await client.call_tool("recommend_model", {"task": "summarise a contract"})
        before = file_modes(private_data_home)
        chatted = await client.call_tool("chat", {"prompt": "hello"})
        after = file_modes(private_data_home)

    assert [r.is_error for r in (listed, recommended, chatted)] == [False, False, False]
    assert before == {}
    assert "store.sqlite3" in after
