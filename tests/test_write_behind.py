"""End-of-call records written after the reply (`store/behind.py`), as stdio does it: the reply does not
wait for them, the next call reads them, shutdown writes them, and one that fails is told, not lost."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from mcp import Client

from kyma_mcp.budget import period_of
from kyma_mcp.emulator import EmulatorHandle
from kyma_mcp.errors import store_error
from kyma_mcp.server import build_server
from kyma_mcp.server.app import KymaServer
from kyma_mcp.settings import Settings
from kyma_mcp.store import open_store
from kyma_mcp.store import sqlite as sqlite_backend
from kyma_mcp.store.behind import MAX_UNSAVED, REPLY_WAIT_SECONDS, WriteBehind
from tests.conftest import FAST_TIMING, emulator_settings
from tests.results import error_text, structured, text_of

pytestmark = pytest.mark.anyio


def words(text: str) -> int:
    return len(text.split())


def deferring_server(emulator: EmulatorHandle, **overrides: Any) -> KymaServer:
    """A server whose records wait for their reply, as over stdio. The in-memory client writes no stdout
    line, so each record starts after `REPLY_WAIT_SECONDS` instead of at its reply."""
    server = build_server(emulator_settings(emulator, **overrides))
    assert isinstance(server, KymaServer)
    assert server.behind is not None
    server.behind.enabled = True
    return server


# --- WriteBehind itself ----------------------------------------------------------------------------


async def test_off_it_writes_at_once_and_raises_what_fails() -> None:
    behind = WriteBehind()
    written: list[str] = []

    async def write() -> None:
        written.append("now")

    async def fail() -> None:
        raise store_error("here", "it broke")

    await behind.later(write)
    assert written == ["now"]
    assert not behind.pending
    with pytest.raises(Exception, match=r"store \(here\) cannot be used: it broke"):
        await behind.later(fail, thread="t1")
    assert behind.unsaved("t1") is None  # raised to the caller, who says so in its reply


async def test_on_it_writes_in_order_once_a_reply_is_sent() -> None:
    behind = WriteBehind()
    behind.enabled = True
    written: list[int] = []

    def writer(n: int) -> Any:
        async def write() -> None:
            written.append(n)

        return write

    await behind.later(writer(1))
    await behind.later(writer(2))
    await anyio.lowlevel.checkpoint()  # the writer task starts, and waits for a reply
    assert behind.pending
    assert written == []
    behind.reply_sent()
    await behind.landed()
    assert written == [1, 2]
    assert not behind.pending


async def test_a_reply_that_never_comes_holds_a_record_back_only_briefly() -> None:
    behind = WriteBehind()
    behind.enabled = True
    written: list[float] = []
    started = anyio.current_time()

    async def write() -> None:
        written.append(anyio.current_time() - started)

    await behind.later(write)
    with anyio.fail_after(5):
        await behind.landed()
    (after,) = written
    assert after >= REPLY_WAIT_SECONDS * 0.9


async def test_a_failed_record_is_logged_and_told_once_for_its_thread(caplog: pytest.LogCaptureFixture) -> None:
    behind = WriteBehind()
    behind.enabled = True

    async def fail() -> None:
        raise store_error("here", "the disk is full")

    with caplog.at_level(logging.WARNING, logger="kyma_mcp.store.behind"):
        await behind.later(fail, thread="t1", failed="a turn")
        behind.reply_sent()
        await behind.landed()
    assert "a turn was not written: [store_unavailable]" in caplog.text
    reason = behind.unsaved("t1")
    assert reason is not None
    assert "the disk is full" in reason
    assert behind.unsaved("t1") is None


async def test_only_the_newest_failed_threads_are_remembered() -> None:
    behind = WriteBehind()
    behind.enabled = True

    async def fail() -> None:
        raise store_error("here", "locked")

    for n in range(MAX_UNSAVED + 5):
        await behind.later(fail, thread=f"t{n}")
    behind.reply_sent()
    await behind.landed()
    assert behind.unsaved("t0") is None
    assert behind.unsaved(f"t{MAX_UNSAVED + 4}") is not None
    assert behind.unsaved("t5") is not None


# --- through the server ------------------------------------------------------------------------------


async def test_the_next_call_reads_the_records_its_predecessor_left_behind(
    emulator: EmulatorHandle, store_url: str
) -> None:
    server = deferring_server(emulator, store_url=store_url)
    async with Client(server) as client:
        first = structured(await client.call_tool("chat", {"prompt": "one two"}))
        thread = first["conversation_id"]
        assert thread is not None
        again = structured(await client.call_tool("chat", {"prompt": "three", "conversation_id": thread}))
        spend = text_of(await client.call_tool("get_limits", {}))
    assert again["conversation_id"] == thread
    # The first turn was in the thread when the second began: its history went to the model.
    assert again["usage"]["prompt_tokens"] == words("one two") + words(first["reply"]) + words("three") + 3 * 4
    assert "over 2 calls" in spend


async def test_a_reply_goes_out_while_its_records_wait_and_shutdown_writes_them(
    emulator: EmulatorHandle, tmp_path: Path
) -> None:
    path = tmp_path / "store.sqlite3"
    server = deferring_server(emulator, store_url=f"sqlite://{path}")
    holder = sqlite3.connect(path, isolation_level=None)  # another program, about to hold the write lock
    try:
        async with Client(server) as client:
            await client.call_tool("chat", {"prompt": "open the store"})
            assert server.behind is not None
            await server.behind.landed()  # its records, before the lock is taken
            holder.execute("BEGIN EXCLUSIVE")
            with anyio.fail_after(3):  # the store waits 5 s for the lock (`store_busy_seconds`)
                answered = structured(await client.call_tool("chat", {"prompt": "while it is locked"}))
            assert server.behind.pending  # its records are still waiting for the lock
            holder.rollback()
    finally:
        holder.close()
    # The reply said nothing of a problem, and its thread was written before the server stopped.
    assert answered["notes"] == []
    thread = answered["conversation_id"]
    settings = Settings.model_validate({"store_url": f"sqlite://{path}"})
    store = await open_store(settings)
    try:
        turns = await store.turns(thread)
        ledger = await store.period_entries(period_of(settings)[0], limit=10)
    finally:
        await store.aclose()
    assert [turn.outcome.reply for turn in turns] == [answered["reply"]]
    assert [(entry.tool, entry.status) for entry in ledger] == [("chat", "settled")] * 2


async def test_a_new_thread_whose_record_failed_says_so_on_its_next_call(
    emulator: EmulatorHandle, tmp_path: Path
) -> None:
    path = tmp_path / "store.sqlite3"
    brief = FAST_TIMING.model_copy(update={"store_busy_seconds": 0.2})
    server = deferring_server(emulator, store_url=f"sqlite://{path}", timing=brief)
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        async with Client(server) as client:
            await client.call_tool("chat", {"prompt": "open the store"})
            assert server.behind is not None
            await server.behind.landed()
            holder.execute("BEGIN EXCLUSIVE")
            lost = structured(await client.call_tool("chat", {"prompt": "a reply to lose"}))
            with anyio.fail_after(5):
                await server.behind.landed()  # the record gave up on the lock
            holder.rollback()
            told = await client.call_tool("chat", {"prompt": "more", "conversation_id": lost["conversation_id"]})
            later = await client.call_tool("chat", {"prompt": "more", "conversation_id": lost["conversation_id"]})
    finally:
        holder.close()
    assert lost["reply"].startswith("Echo from")
    assert error_text(told).startswith(f"[store_unavailable] Conversation '{lost['conversation_id']}' was not kept")
    assert "locked by another program" in error_text(told)
    assert "call chat without conversation_id" in error_text(told)
    assert error_text(later).startswith("[invalid_request] No conversation")  # told once


async def test_a_turn_whose_record_failed_is_told_on_the_threads_next_reply(
    emulator: EmulatorHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reply no longer fits on the disk (SQLite's `max_page_count`, as in test_conversations): the
    turn is kept as failed without it, and the thread's next reply says the previous one is not in it."""
    opened: list[sqlite3.Connection] = []
    connect_for_real = sqlite_backend._connect  # pyright: ignore[reportPrivateUsage]

    def watched(target: Path | None, busy_seconds: float) -> sqlite3.Connection:
        connection = connect_for_real(target, busy_seconds)
        opened.append(connection)
        return connection

    monkeypatch.setattr(sqlite_backend, "_connect", watched)
    path = tmp_path / "store.sqlite3"
    server = deferring_server(emulator, store_url=f"sqlite://{path}")
    async with Client(server) as client:
        first = structured(await client.call_tool("chat", {"prompt": "one two"}))
        thread = first["conversation_id"]
        assert server.behind is not None
        await server.behind.landed()
        (connection,) = opened
        (pages,) = connection.execute("PRAGMA page_count").fetchone()
        connection.execute(f"PRAGMA max_page_count = {pages + 2}")  # room for the turn, not for its long reply
        unkept = structured(await client.call_tool("chat", {"prompt": "[[words=8000]] go", "conversation_id": thread}))
        await server.behind.landed()
        connection.execute("PRAGMA max_page_count = 1073741823")
        after = structured(await client.call_tool("chat", {"prompt": "four", "conversation_id": thread}))
    assert words(unkept["reply"]) > 1000
    assert not any("not kept" in note for note in unkept["notes"])  # it was written after the reply went out
    assert after["conversation_id"] == thread
    (note,) = after["notes"]
    assert note.startswith("The previous reply in this thread is not kept in it: [store_unavailable]")
    assert "the disk is full" in note
