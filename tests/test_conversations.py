"""Threads on `chat`, against SQLite and a real PostgreSQL: continued, switched, trimmed, serialised,
shared by processes, and kept out of logs; a broken store leaves stateless chat working."""

from __future__ import annotations

import logging
import sqlite3
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters

from kyma_mcp.emulator import EmulatorHandle
from kyma_mcp.server import build_server
from kyma_mcp.settings import Settings
from kyma_mcp.store import open_store
from kyma_mcp.store import sqlite as sqlite_backend
from tests.conftest import BOTH_ERAS, FAST_TIMING, TEST_KEY, ConnectFactory, emulator_settings
from tests.results import error_text, structured, text_of

pytestmark = pytest.mark.anyio


def words(text: str) -> int:
    return len(text.split())


def stdio_server(emulator: EmulatorHandle, store_url: str, data_home: Path, **extra: str) -> Client:
    env = extra | {
        "KYMA_API_KEY": TEST_KEY,
        "KYMA_BASE_URL": emulator.base_url,
        "KYMA_STORE_URL": store_url,
        "KYMA_RESULT_FACTS": "1",
        "XDG_DATA_HOME": str(data_home),
    }
    return Client(StdioServerParameters(command=sys.executable, args=["-m", "kyma_mcp"], env=env))


@pytest.mark.slow
async def test_a_thread_continues_in_a_new_server_process_and_sends_its_history(
    emulator: EmulatorHandle, store_url: str, tmp_path: Path
) -> None:
    async with stdio_server(emulator, store_url, tmp_path) as client:
        first = structured(await client.call_tool("chat", {"prompt": "name three rivers", "system": "be brief"}))
    conversation_id = first["conversation_id"]
    assert len(conversation_id) >= 12
    async with stdio_server(emulator, store_url, tmp_path) as client:
        result = await client.call_tool("chat", {"prompt": "and one more", "conversation_id": conversation_id})
    second = structured(result)
    assert second["conversation_id"] == conversation_id
    assert f"conversation_id: {conversation_id}" in text_of(result)
    # The emulator counts one token per word plus 4 per message: system, turn 1 (user, reply), the new prompt.
    sent = words("be brief") + words("name three rivers") + words(first["reply"]) + words("and one more")
    assert second["usage"]["prompt_tokens"] == sent + 4 * 4


async def test_the_model_can_change_between_turns_and_each_turn_records_its_own(
    connect: ConnectFactory, store_url: str
) -> None:
    async with connect(store_url=store_url) as client:
        first = structured(await client.call_tool("chat", {"prompt": "draft a plan", "model": "qwen-3.6-plus"}))
        second = structured(
            await client.call_tool(
                "chat", {"prompt": "critique it", "model": "deepseek-r1", "conversation_id": first["conversation_id"]}
            )
        )
    assert second["model_served"] == "deepseek-r1"
    assert second["usage"]["prompt_tokens"] > first["usage"]["prompt_tokens"]
    store = await open_store(Settings.model_validate({"store_url": store_url}))
    turns = await store.turns(first["conversation_id"])
    conversation = await store.conversation(first["conversation_id"])
    await store.aclose()
    assert [(t.model_requested, t.outcome.model_served, t.status) for t in turns] == [
        ("qwen-3.6-plus", "qwen-3.6-plus", "complete"),
        ("deepseek-r1", "deepseek-r1", "complete"),
    ]
    assert [t.outcome.completion_tokens for t in turns] == [first["usage"]["completion_tokens"], 24]
    assert all(t.outcome.latency_ms is not None and t.outcome.finish_reason == "stop" for t in turns)
    assert conversation is not None
    assert conversation.models == ("qwen-3.6-plus", "deepseek-r1")
    assert conversation.turns == 2
    assert conversation.cost_micros > 0


async def test_history_is_trimmed_to_a_small_context_model_with_a_note(connect: ConnectFactory, store_url: str) -> None:
    long_prompt = "word " * 26_000  # 26k tokens: with 8k kept for the reply, no room in a 32k window
    async with connect(store_url=store_url) as client:
        first = structured(await client.call_tool("chat", {"prompt": long_prompt, "model": "kimi-k2.6"}))
        thread = first["conversation_id"]
        small = structured(
            await client.call_tool(
                "chat", {"prompt": "summarise", "model": "qwen-3-32b", "conversation_id": thread, "max_tokens": 8000}
            )
        )
        roomy = structured(
            await client.call_tool("chat", {"prompt": "again", "model": "kimi-k2.6", "conversation_id": thread})
        )
    assert small["usage"]["prompt_tokens"] == words("summarise") + 4
    (note,) = small["notes"]
    assert note.startswith("1 earliest turn of this conversation were not sent, to fit qwen-3-32b's 32,768-token")
    assert f"kyma://conversations/{thread}" in note
    assert roomy["notes"] == []
    assert roomy["usage"]["prompt_tokens"] > 26_000


@BOTH_ERAS
async def test_concurrent_turns_on_one_thread_run_one_after_the_other(
    emulator: EmulatorHandle, connect: ConnectFactory, store_url: str
) -> None:
    async with connect(store_url=store_url) as client:
        thread = structured(await client.call_tool("chat", {"prompt": "start"}))["conversation_id"]
        emulator.switches.gather_chats = 2  # the first turn is held at the gateway until the second has waited
        results: dict[str, dict[str, Any]] = {}
        waits: list[str] = []
        waited = anyio.Event()

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            if message and "waiting for the previous turn" in message:
                waits.append(message)
                waited.set()

        async def turn(prompt: str) -> None:
            result = await client.call_tool(
                "chat", {"prompt": prompt, "conversation_id": thread}, progress_callback=on_progress
            )
            results[prompt] = structured(result)

        async with anyio.create_task_group() as group:
            group.start_soon(turn, "first of two")
            with anyio.fail_after(10):
                while emulator.state.requests["/v1/chat/completions"] < 2:  # noqa: ASYNC110 - the emulator thread counts; the first turn is at the gateway
                    await anyio.sleep(0.01)
                group.start_soon(turn, "second of two")
                await waited.wait()  # had the second turn not waited, the gateway would have let both go
            emulator.switches.gather_chats = 0
    assert waits, "the second call reported that it waited"
    assert results["second of two"]["usage"]["prompt_tokens"] > results["first of two"]["usage"]["prompt_tokens"]
    store = await open_store(Settings.model_validate({"store_url": store_url}))
    turns = await store.turns(thread)
    await store.aclose()
    assert [t.seq for t in turns] == [1, 2, 3]
    assert [t.status for t in turns] == ["complete"] * 3


@pytest.mark.slow
async def test_two_server_processes_share_one_store_without_losing_a_turn(
    emulator: EmulatorHandle, store_url: str, tmp_path: Path
) -> None:
    """One SQLite file or one PostgreSQL database, two processes, 200 turns: none lost."""
    url = store_url
    async with stdio_server(emulator, url, tmp_path) as client:
        thread = structured(await client.call_tool("chat", {"prompt": "turn 0"}))["conversation_id"]

    async def writer(name: str) -> None:
        # Tier 4's rate limits, so that client-side pacing does not hold 200 quick calls back.
        async with stdio_server(emulator, url, tmp_path, KYMA_TIER="4") as client:
            for index in range(100):
                # Half the turns on the shared thread (its lease crosses processes), half on new threads.
                arguments = {"prompt": f"{name} {index}"} | ({"conversation_id": thread} if index % 2 else {})
                structured(await client.call_tool("chat", arguments))

    async with anyio.create_task_group() as group:
        group.start_soon(writer, "a")
        group.start_soon(writer, "b")
    store = await open_store(Settings.model_validate({"store_url": url}))
    shared = await store.turns(thread)
    everything, total = await store.conversations(limit=500)
    await store.aclose()
    assert [t.seq for t in shared] == list(range(1, 102))
    assert all(t.status == "complete" for t in shared)
    assert total == 1 + 100
    assert sum(c.turns for c in everything) == 201


async def test_a_failed_turn_is_stored_as_failed_and_never_resent(
    emulator: EmulatorHandle, connect: ConnectFactory, store_url: str
) -> None:
    async with connect(store_url=store_url, max_retries=0) as client:
        thread = structured(await client.call_tool("chat", {"prompt": "one two"}))["conversation_id"]
        emulator.switches.update({"fail_next": [500]})
        failed = await client.call_tool("chat", {"prompt": "lost words here", "conversation_id": thread})
        after = structured(await client.call_tool("chat", {"prompt": "three", "conversation_id": thread}))
    assert error_text(failed).startswith("[upstream_unavailable]")
    store = await open_store(Settings.model_validate({"store_url": store_url}))
    turns = await store.turns(thread)
    await store.aclose()
    assert [(t.status, t.outcome.error_word) for t in turns] == [
        ("complete", None),
        ("failed", "upstream_unavailable"),
        ("complete", None),
    ]
    first_reply = turns[0].outcome.reply
    assert after["usage"]["prompt_tokens"] == words("one two") + words(first_reply) + words("three") + 3 * 4


@BOTH_ERAS
async def test_a_turn_cancelled_mid_reply_keeps_what_arrived_and_is_never_resent(
    emulator: EmulatorHandle, connect: ConnectFactory, store_url: str
) -> None:
    async with connect(store_url=store_url) as client:
        thread = structured(await client.call_tool("chat", {"prompt": "one two"}))["conversation_id"]
        emulator.switches.update({"token_interval_ms": 50})  # 200 words: 10 s, cancelled after a fraction

        with anyio.fail_after(20), anyio.CancelScope() as cancelled:

            async def on_progress(progress: float, total: float | None, message: str | None) -> None:
                if message and "characters from" in message and int(message.split()[0]) >= 40:  # the client gives up
                    cancelled.cancel()

            arguments = {"prompt": "[[words=200]] a long answer", "conversation_id": thread}
            await client.call_tool("chat", arguments, progress_callback=on_progress)
        assert cancelled.cancelled_caught
        emulator.switches.update({"token_interval_ms": 0})
        store = await open_store(Settings.model_validate({"store_url": store_url}))
        turns = await store.turns(thread)
        for _ in range(500):  # the server records the turn once the cancellation reaches it
            if turns[-1].status != "pending":
                break
            await anyio.sleep(0.02)
            turns = await store.turns(thread)
        after = structured(await client.call_tool("chat", {"prompt": "three", "conversation_id": thread}))
        page = await client.read_resource(f"kyma://conversations/{thread}")
        await store.aclose()
    cut = turns[1]
    assert (cut.status, cut.outcome.finish_reason) == ("interrupted", "cancelled")
    assert cut.outcome.reply.startswith("Echo from qwen-3.6-plus")
    assert 0 < words(cut.outcome.reply) < 200
    # Never resent: the next turn's request holds turn 1 and the new prompt, not the cut reply.
    assert after["usage"]["prompt_tokens"] == words("one two") + words(turns[0].outcome.reply) + words("three") + 3 * 4
    transcript = "".join(getattr(content, "text", "") for content in page.contents)
    (heading,) = [line for line in transcript.splitlines() if line.startswith("## Turn 2 ")]
    assert "· interrupted ·" in heading
    assert heading.endswith("finish: cancelled")
    assert cut.outcome.reply in transcript


async def test_a_first_turn_is_written_with_its_thread_when_it_ends_also_when_cancelled(
    emulator: EmulatorHandle, connect: ConnectFactory, store_url: str
) -> None:
    """A new thread is written once, with its first turn, when that turn ends: nothing before (nobody
    knows its id yet), and a first turn the client cancelled mid-reply is still kept, interrupted."""
    emulator.switches.update({"token_interval_ms": 50})
    store = await open_store(Settings.model_validate({"store_url": store_url}))
    async with connect(store_url=store_url) as client:
        with anyio.fail_after(20), anyio.CancelScope() as cancelled:

            async def on_progress(progress: float, total: float | None, message: str | None) -> None:
                if message and "characters from" in message:  # tokens have arrived: the client gives up
                    assert (await store.conversations(limit=5))[1] == 0  # in flight: not written yet
                    cancelled.cancel()

            await client.call_tool("chat", {"prompt": "[[words=200]] a long answer"}, progress_callback=on_progress)
        assert cancelled.cancelled_caught
        emulator.switches.update({"token_interval_ms": 0})
        threads, _ = await store.conversations(limit=5)
        for _ in range(500):  # the server writes the turn once the cancellation reaches it
            if threads:
                break
            await anyio.sleep(0.02)
            threads, _ = await store.conversations(limit=5)
        served = structured(await client.call_tool("chat", {"prompt": "one two"}))
    [cut] = await store.turns(threads[0].id)
    [complete] = await store.turns(served["conversation_id"])
    conversation = await store.conversation(served["conversation_id"])
    await store.aclose()

    assert (cut.seq, cut.status, cut.outcome.finish_reason) == (1, "interrupted", "cancelled")
    assert 0 < words(cut.outcome.reply) < 200
    assert threads[0].turns == 0  # an interrupted turn is not counted
    assert (complete.seq, complete.status, complete.outcome.reply) == (1, "complete", served["reply"])
    assert conversation is not None
    assert (conversation.turns, conversation.models) == (1, (served["model_served"],))
    assert complete.outcome.cost_micros is not None
    assert conversation.cost_micros == complete.outcome.cost_micros > 0


async def test_a_thread_argument_misuse_is_invalid_request(connect: ConnectFactory) -> None:
    async with connect() as client:
        both = await client.call_tool(
            "chat", {"messages": [{"role": "user", "content": "hi"}], "conversation_id": "abcdefghijkl"}
        )
        unknown = await client.call_tool("chat", {"prompt": "hi", "conversation_id": "abcdefghijkl"})
    assert error_text(both).startswith("[invalid_request] Pass `messages` or `conversation_id`, not both")
    assert error_text(unknown).startswith("[invalid_request] No conversation 'abcdefghijkl'")
    assert "kyma://conversations" in error_text(unknown)


async def test_replacing_the_system_message_applies_to_later_turns(connect: ConnectFactory) -> None:
    async with connect() as client:
        first = structured(await client.call_tool("chat", {"prompt": "hi", "system": "one two three four"}))
        thread = first["conversation_id"]
        kept = structured(await client.call_tool("chat", {"prompt": "hi", "conversation_id": thread}))
        replaced = structured(
            await client.call_tool("chat", {"prompt": "hi", "conversation_id": thread, "system": "x"})
        )
    history_of_two = kept["usage"]["prompt_tokens"] - words("one two three four")
    assert replaced["usage"]["prompt_tokens"] - words("x") == history_of_two + words(kept["reply"]) + words("hi") + 8


async def test_a_corrupt_store_file_keeps_stateless_chat_working(connect: ConnectFactory, tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"
    path.write_bytes(b"not sqlite at all " * 200)
    async with connect(store_url=f"sqlite://{path}") as client:
        stateless = await client.call_tool("chat", {"prompt": "still there?"})
        threaded = await client.call_tool("chat", {"prompt": "hi", "conversation_id": "abcdefghijkl"})
    data = structured(stateless)
    assert data["conversation_id"] is None
    assert data["reply"].startswith("Echo from")
    assert "not kept in a thread: [store_unavailable]" in data["notes"][0]
    assert error_text(threaded).startswith("[store_unavailable]")
    assert "not a readable SQLite database" in error_text(threaded)


async def test_a_locked_store_answers_its_word_and_stateless_chat_keeps_working(
    connect: ConnectFactory, tmp_path: Path
) -> None:
    path = tmp_path / "store.sqlite3"
    brief = FAST_TIMING.model_copy(update={"store_busy_seconds": 0.3})  # a locked write waits this long, then gives up
    async with connect(store_url=f"sqlite://{path}", timing=brief) as client:
        first = structured(await client.call_tool("chat", {"prompt": "one two"}))
        thread = first["conversation_id"]
        holder = sqlite3.connect(path, isolation_level=None)  # another program, holding the write lock
        holder.execute("BEGIN EXCLUSIVE")
        try:
            locked = await client.call_tool("chat", {"prompt": "more", "conversation_id": thread})
            stateless = structured(await client.call_tool("chat", {"prompt": "still there?"}))
        finally:
            holder.rollback()
            holder.close()
        again = structured(await client.call_tool("chat", {"prompt": "three", "conversation_id": thread}))
    assert error_text(locked).startswith(f"[store_unavailable] kyma-mcp's store ({path}) cannot be used: the database")
    assert "locked by another program for over 0.3 s" in error_text(locked)
    assert "Close the program holding it" in error_text(locked)
    assert_delivered_outside_a_thread(stateless, "locked")
    # Once the lock is gone the thread goes on, the refused turn never written.
    assert again["usage"]["prompt_tokens"] == words("one two") + words(first["reply"]) + words("three") + 3 * 4


def assert_delivered_outside_a_thread(result: dict[str, Any], why: str) -> None:
    """A chat without conversation_id whose store is unusable: the reply, no thread, and one note saying why."""
    assert result["reply"].startswith("Echo from")
    assert result["conversation_id"] is None
    (note,) = result["notes"]
    assert note.startswith("This reply is not kept in a thread: [store_unavailable]")
    assert why in note


async def test_a_full_disk_answers_its_word_and_stateless_chat_keeps_working(
    connect: ConnectFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk fills up under a running server: SQLite's own size cap (`max_page_count`) on the server's
    connection makes every write that needs a new page fail with SQLITE_FULL, as a full disk does."""
    opened: list[sqlite3.Connection] = []
    connect_for_real = sqlite_backend._connect  # pyright: ignore[reportPrivateUsage]

    def watched(target: Path | None, busy_seconds: float) -> sqlite3.Connection:
        connection = connect_for_real(target, busy_seconds)
        opened.append(connection)
        return connection

    monkeypatch.setattr(sqlite_backend, "_connect", watched)
    path = tmp_path / "store.sqlite3"
    big = "word " * 20_000  # 100 kB: needs new pages wherever it goes
    async with connect(store_url=f"sqlite://{path}") as client:
        first = structured(await client.call_tool("chat", {"prompt": "one two"}))
        thread = first["conversation_id"]
        (connection,) = opened
        (pages,) = connection.execute("PRAGMA page_count").fetchone()
        connection.execute(f"PRAGMA max_page_count = {pages}")  # the disk is full from here on
        full = await client.call_tool("chat", {"prompt": big, "conversation_id": thread})
        stateless = structured(await client.call_tool("chat", {"prompt": big}))
        connection.execute("PRAGMA max_page_count = 1073741823")  # space freed
        again = structured(await client.call_tool("chat", {"prompt": "three", "conversation_id": thread}))
        (pages,) = connection.execute("PRAGMA page_count").fetchone()
        connection.execute(f"PRAGMA max_page_count = {pages + 2}")  # room for the turn, not for its long reply
        unkept = structured(await client.call_tool("chat", {"prompt": "[[words=8000]] go", "conversation_id": thread}))
        connection.execute("PRAGMA max_page_count = 1073741823")
        last = structured(await client.call_tool("chat", {"prompt": "four", "conversation_id": thread}))
    store = await open_store(Settings.model_validate({"store_url": f"sqlite://{path}"}))
    turns = await store.turns(thread)
    await store.aclose()
    assert error_text(full).startswith(
        f"[store_unavailable] kyma-mcp's store ({path}) cannot be used: the disk is full"
    )
    assert "Free space on that disk" in error_text(full)
    assert "Calls without conversation_id still work" in error_text(full)
    assert_delivered_outside_a_thread(stateless, "the disk is full")
    assert again["usage"]["prompt_tokens"] == words("one two") + words(first["reply"]) + words("three") + 3 * 4
    # A reply that no longer fits is still delivered (it is paid for); its turn is kept as failed, without it.
    assert words(unkept["reply"]) > 1000
    assert unkept["conversation_id"] == thread
    assert unkept["notes"][-1].startswith("This reply is not kept in the thread: [store_unavailable]")
    assert [(t.status, t.outcome.error_word) for t in turns] == [
        ("complete", None),
        ("complete", None),
        ("failed", "store_unavailable"),
        ("complete", None),
    ]
    assert turns[2].outcome.completion_tokens == unkept["usage"]["completion_tokens"]
    assert (
        last["usage"]["prompt_tokens"]
        == again["usage"]["prompt_tokens"] + words(again["reply"]) + words("four") + 2 * 4
    )


async def test_store_off_keeps_threads_in_memory_and_writes_no_file(
    connect: ConnectFactory, tmp_path: Path, private_data_home: Path
) -> None:
    async with connect(store="off") as client:
        thread = structured(await client.call_tool("chat", {"prompt": "private"}))["conversation_id"]
        again = structured(await client.call_tool("chat", {"prompt": "more", "conversation_id": thread}))
    assert again["conversation_id"] == thread
    assert on_disk(tmp_path) == []
    assert on_disk(private_data_home) == []


def on_disk(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file()]


async def test_conversation_content_never_reaches_the_logs(
    emulator: EmulatorHandle, caplog: pytest.LogCaptureFixture, store_url: str
) -> None:
    secret = "zebra-papaya-7781"
    caplog.set_level(logging.DEBUG)
    server = build_server(emulator_settings(emulator, store_url=store_url, max_retries=0))
    async with Client(server) as client:
        thread = structured(await client.call_tool("chat", {"prompt": f"remember {secret}"}))["conversation_id"]
        emulator.switches.update({"fail_next": [500]})
        await client.call_tool("chat", {"prompt": f"again {secret}", "conversation_id": thread})
    assert secret not in caplog.text
