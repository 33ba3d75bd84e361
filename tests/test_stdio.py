"""The real process over stdio: stdout carries nothing but JSON-RPC, and stdin closing ends it fast."""

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncGenerator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.abc import Process

from kyma_mcp.emulator import EmulatorHandle
from kyma_mcp.server.stdio import is_response
from tests.conftest import TEST_KEY

pytestmark = pytest.mark.anyio


class StdioPeer:
    """A minimal JSON-RPC client that keeps every byte the server writes to stdout."""

    def __init__(self, process: Process) -> None:
        self.process = process
        self.lines: list[bytes] = []
        self._buffer = b""

    async def send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send(json.dumps(message).encode() + b"\n")

    async def initialize(self) -> dict[str, Any]:
        """The legacy handshake, as a desktop host does it; returns the server's answer."""
        params = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "test", "version": "0"}}
        await self.send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params})
        answer = (await self.response(1))["result"]
        await self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return answer

    async def send_tool_call(self, request_id: int, name: str, arguments: dict[str, Any]) -> None:
        params = {"name": name, "arguments": arguments}
        await self.send({"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params})

    async def response(self, request_id: int) -> dict[str, Any]:
        while True:
            message = json.loads(await self._line())
            if message.get("id") == request_id and "method" not in message:
                return message

    async def _line(self) -> bytes:
        assert self.process.stdout is not None
        while b"\n" not in self._buffer:
            self._buffer += await self.process.stdout.receive()
        line, self._buffer = self._buffer.split(b"\n", 1)
        self.lines.append(line)
        return line

    async def drain(self) -> None:
        assert self.process.stdout is not None
        async for chunk in self.process.stdout:
            self._buffer += chunk
        self.lines += [line for line in self._buffer.split(b"\n") if line]


@asynccontextmanager
async def stdio_server(env: Mapping[str, str]) -> AsyncGenerator[StdioPeer]:
    """`python -m kyma_mcp` over stdio, past the handshake; on leaving, stdin closes as a host stops it,
    and the process must exit within 10 s."""
    process = await anyio.open_process([sys.executable, "-m", "kyma_mcp"], env=env)
    peer = StdioPeer(process)
    try:
        with anyio.fail_after(30):
            await peer.initialize()
        yield peer
    finally:
        assert process.stdin is not None
        await process.stdin.aclose()
        with anyio.fail_after(10):
            await process.wait()
        await process.aclose()


async def test_stdout_is_pure_json_rpc_and_stdin_eof_exits_within_5_s(emulator: EmulatorHandle) -> None:
    emulator.switches.token_interval_ms = 5
    env = {**os.environ, "KYMA_BASE_URL": emulator.base_url, "KYMA_API_KEY": TEST_KEY, "KYMA_LOG_LEVEL": "DEBUG"}
    process = await anyio.open_process([sys.executable, "-m", "kyma_mcp"], env=env)
    peer = StdioPeer(process)
    try:
        with anyio.fail_after(30):
            assert (await peer.initialize())["serverInfo"]["name"] == "kyma"
            await peer.send({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
            tools = (await peer.response(2))["result"]["tools"]
            await peer.send(
                {
                    "jsonrpc": "2.0",
                    "id": 3,
                    "method": "tools/call",
                    "params": {"name": "chat", "arguments": {"prompt": "hello"}, "_meta": {"progressToken": "p1"}},
                }
            )
            reply = (await peer.response(3))["result"]
            await peer.send({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "list_models"}})
            await peer.response(4)

        assert process.stdin is not None
        closed_at = time.monotonic()
        await process.stdin.aclose()
        with anyio.fail_after(5):
            await peer.drain()
            code = await process.wait()
        exit_seconds = time.monotonic() - closed_at
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    assert code == 0
    assert exit_seconds < 5
    assert {"chat", "list_models"} <= {tool["name"] for tool in tools}
    assert not reply.get("isError")
    assert "structuredContent" not in reply  # chat is text first
    assert reply["content"][0]["text"].startswith("Echo from")
    messages = [json.loads(line) for line in peer.lines]
    assert all(message["jsonrpc"] == "2.0" for message in messages)
    assert any(message.get("method") == "notifications/progress" for message in messages)


async def test_sigterm_exits_cleanly_within_5_s_leaving_no_children(emulator: EmulatorHandle) -> None:
    env = {**os.environ, "KYMA_BASE_URL": emulator.base_url, "KYMA_API_KEY": TEST_KEY}
    process = await anyio.open_process([sys.executable, "-m", "kyma_mcp"], env=env)
    peer = StdioPeer(process)
    try:
        with anyio.fail_after(30):
            await peer.initialize()
        children = anyio.Path(f"/proc/{process.pid}/task/{process.pid}/children")
        if await children.exists():  # Linux: the server starts no processes of its own
            assert (await children.read_text()).strip() == ""

        process.terminate()
        with anyio.fail_after(5):
            code = await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    assert code == 0


DISCOVER_META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientInfo": {"name": "pipe", "version": "0"},
    "io.modelcontextprotocol/clientCapabilities": {},
}


@pytest.mark.parametrize("era", ["modern", "legacy"])
async def test_requests_piped_from_a_file_are_all_answered_before_the_exit(
    emulator: EmulatorHandle, era: str, tmp_path: Path
) -> None:
    """`printf '…' | kyma-mcp`: stdin ends right after the last request; each one read is still answered.

    The chat takes 300 ms upstream, so it is still running when stdin's EOF arrives (the SDK alone
    answered it "Connection closed").
    """
    emulator.switches.latency_ms = 300
    chat = {"name": "chat", "arguments": {"prompt": "hello"}}
    if era == "modern":
        lines = [
            {"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {"_meta": DISCOVER_META}},
            {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {"_meta": DISCOVER_META}},
            {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {**chat, "_meta": DISCOVER_META}},
        ]
    else:
        hello = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "pipe", "version": "0"}}
        lines = [
            {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": hello},
            {"jsonrpc": "2.0", "method": "notifications/initialized"},
            {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
            {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": chat},
        ]
    requests = tmp_path / "requests.jsonl"
    requests.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    env = {**os.environ, "KYMA_BASE_URL": emulator.base_url, "KYMA_API_KEY": TEST_KEY, "KYMA_STORE": "off"}

    with requests.open("rb") as stdin:  # a file, as `kyma-mcp < requests.jsonl`; EOF comes at once
        done = await anyio.run_process(
            [sys.executable, "-m", "kyma_mcp"], stdin=stdin, env=env, cwd=tmp_path, check=False
        )

    answers = {message["id"]: message for message in map(json.loads, done.stdout.splitlines())}
    assert done.returncode == 0, done.stderr.decode()
    assert sorted(answers) == [1, 2, 3]
    assert all("result" in answer for answer in answers.values()), answers
    assert {tool["name"] for tool in answers[2]["result"]["tools"]} >= {"chat", "list_models"}
    assert answers[3]["result"]["content"][0]["text"].startswith("Echo from")


async def test_stdout_and_stderr_on_one_pipe_still_carry_every_answer(emulator: EmulatorHandle) -> None:
    """`kyma-mcp 2>&1 | …`: stdout shares stderr's pipe, so it is written by worker threads (a
    non-blocking pipe would break stderr's writes); the answers arrive between the log lines."""
    env = {**os.environ, "KYMA_BASE_URL": emulator.base_url, "KYMA_API_KEY": "", "KYMA_STORE": "off"}
    hello = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "pipe", "version": "0"}}
    lines = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": hello},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
    ]
    done = await anyio.run_process(
        [sys.executable, "-m", "kyma_mcp"],
        input="".join(json.dumps(line) + "\n" for line in lines).encode(),
        stderr=subprocess.STDOUT,
        env=env,
        check=False,
    )

    output = done.stdout.decode().splitlines()
    answers = {message["id"]: message for message in map(json.loads, filter(lambda line: line.startswith("{"), output))}
    assert done.returncode == 0
    assert any("KYMA_API_KEY is not set" in line for line in output)  # stderr's line, on the same pipe
    assert sorted(answers) == [1, 2]
    assert "tools" in answers[2]["result"]


@pytest.mark.parametrize(
    ("line", "response"),
    [
        ('{"jsonrpc":"2.0","id":1,"result":{}}', True),
        ('{"jsonrpc":"2.0","id":"a,\\"b","error":{"code":1}}', True),
        ('{"jsonrpc":"2.0","id":3,"method":"elicitation/create","params":{}}', False),
        ('{"jsonrpc":"2.0","method":"notifications/progress","params":{"result":1}}', False),
    ],
)
def test_responses_are_told_from_the_servers_own_requests_and_notifications(line: str, response: bool) -> None:
    assert is_response(line) is response


async def test_a_reply_is_not_held_up_by_its_records_which_are_written_before_the_exit(
    emulator: EmulatorHandle, tmp_path: Path
) -> None:
    """Over stdio a chat's thread and spend-ledger records are written after its reply (`store/behind.py`):
    with the store's write lock held by another program, the reply still comes back at once, and the
    records are in the file once the lock is gone and the server has exited."""
    path = tmp_path / "store.sqlite3"
    env = {
        **os.environ,
        "KYMA_BASE_URL": emulator.base_url,
        "KYMA_API_KEY": TEST_KEY,
        "KYMA_STORE_URL": f"sqlite://{path}",
        "KYMA_RESULT_FACTS": "1",
    }
    holder = sqlite3.connect(path, isolation_level=None, timeout=10)  # another program
    try:
        async with stdio_server(env) as peer:
            with anyio.fail_after(30):
                await peer.send_tool_call(2, "chat", {"prompt": "open the store"})
                await peer.response(2)
                while ledger_rows(holder) < 1:  # noqa: ASYNC110 - another process writes it, just after its reply
                    await anyio.sleep(0.02)
            holder.execute("BEGIN EXCLUSIVE")
            with anyio.fail_after(3):  # a write waits 5 s for the lock before it gives up
                await peer.send_tool_call(3, "chat", {"prompt": "while the store is locked"})
                answer = (await peer.response(3))["result"]
            holder.rollback()
    finally:
        holder.close()
    text = answer["content"][0]["text"]
    assert text.startswith("Echo from")
    assert "not kept" not in text
    thread = answer["_meta"]["kyma-mcp/result"]["conversation_id"]
    with sqlite3.connect(path) as check:
        turns = check.execute("SELECT count(*) FROM turns WHERE conversation_id = ?", (thread,)).fetchone()
        assert turns == (1,)
        assert ledger_rows(check) == 2


def ledger_rows(connection: sqlite3.Connection) -> int:
    try:
        (count,) = connection.execute("SELECT count(*) FROM spend_ledger").fetchone()
    except sqlite3.OperationalError:  # not made yet
        return 0
    return int(count)
