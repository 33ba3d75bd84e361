"""A minimal MCP client speaking raw JSON-RPC over a server's stdin/stdout.

Raw, not the SDK's `Client`, so the clock stops the moment a line arrives, the answer's bytes
are the wire's own, and the server's pid is at hand for its memory. It speaks the 2026-07-28
protocol the way the SDK client and Claude Code do: `server/discover`, then plain requests
carrying the protocol version in `_meta`.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import AsyncGenerator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import anyio
import anyio.abc
from anyio.streams.buffered import BufferedByteReceiveStream

PROTOCOL_VERSION = "2026-07-28"
_META = {
    "io.modelcontextprotocol/protocolVersion": PROTOCOL_VERSION,
    "io.modelcontextprotocol/clientInfo": {"name": "kyma-bench", "version": "1"},
    "io.modelcontextprotocol/clientCapabilities": {},
}
_MAX_LINE_BYTES = 64 * 1024 * 1024
_EXIT_TIMEOUT_SECONDS = 10.0
_ANSWER_TIMEOUT_SECONDS = 120.0
"""A server that answers nothing for this long is stuck: the benchmark breaks instead of hanging."""

JSONObject = dict[str, Any]
ProgressHandler = Callable[[JSONObject, float], None]
"""Called with a progress notification's params and the `time.monotonic()` it arrived at."""


class ServerError(Exception):
    """The server answered with a JSON-RPC error, a tool error, or went away."""


@dataclass(frozen=True)
class Answer:
    result: JSONObject
    wire_bytes: int
    """Bytes of the whole JSON-RPC line, newline excluded."""
    received_at: float
    """`time.monotonic()` when the line was read (one clock for every process on Linux and macOS)."""


@dataclass
class _Pending:
    done: anyio.Event = field(default_factory=anyio.Event)
    message: JSONObject | None = None
    wire_bytes: int = 0
    received_at: float = 0.0


@dataclass(frozen=True)
class ServerCommand:
    """How to launch one MCP server over stdio."""

    label: str
    argv: tuple[str, ...]
    env: Mapping[str, str]
    behind_launcher: bool = False
    """The spawned process is a launcher (uvx) that runs the server as its child, so its pid says little."""
    cwd: str | None = None
    """The folder to start it in (None: this one). `python -m` puts its folder first on `sys.path`, so a
    server started in a checkout runs that checkout's code, whichever interpreter it is."""


class StdioServer:
    """A running stdio MCP server and the requests in flight to it."""

    def __init__(self, process: anyio.abc.Process) -> None:
        self._process = process
        self._pending: dict[int, _Pending] = {}
        self._progress: dict[int, ProgressHandler] = {}
        self._next_id = 0
        self._send_lock = anyio.Lock()
        self._stdin_open = True

    @classmethod
    @asynccontextmanager
    async def launched(cls, command: ServerCommand, *, stderr: BinaryIO | int | None) -> AsyncGenerator[StdioServer]:
        """Spawn the server; on exit close its stdin and make sure it is gone."""
        process = await anyio.open_process(
            list(command.argv),
            env=dict(command.env),
            cwd=command.cwd,
            stderr=stderr if stderr is not None else subprocess.DEVNULL,
        )
        server = cls(process)
        try:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(server._read_lines)
                try:
                    yield server
                finally:
                    await server._stop()
                    tasks.cancel_scope.cancel()
        finally:
            await process.aclose()

    @property
    def pid(self) -> int:
        return self._process.pid

    def rss_mib(self) -> float:
        """Resident memory of the server process, from /proc (Linux).

        Raises:
            OSError: no /proc entry (not Linux, or the process is gone).
        """
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise OSError(f"no VmRSS for pid {self.pid}")

    def cpu_ms(self) -> float:
        """CPU time the server process has used so far (see `cpu_seconds`)."""
        return cpu_seconds(self.pid) * 1000

    async def handshake(self) -> Answer:
        """`server/discover`, as a 2026-07-28 host opens a connection."""
        return await self.request("server/discover")

    async def request(
        self, method: str, params: JSONObject | None = None, *, on_progress: ProgressHandler | None = None
    ) -> Answer:
        """Send one request and wait for its answer.

        Raises:
            ServerError: a JSON-RPC error, or the server closed stdout first.
            TimeoutError: no answer within 120 s.
        """
        self._next_id += 1
        request_id = self._next_id
        meta = {**_META, "progressToken": request_id} if on_progress else _META
        pending = self._pending[request_id] = _Pending()
        if on_progress:
            self._progress[request_id] = on_progress
        try:
            await self._send(
                {"jsonrpc": "2.0", "id": request_id, "method": method, "params": {**(params or {}), "_meta": meta}}
            )
            with anyio.fail_after(_ANSWER_TIMEOUT_SECONDS):
                await pending.done.wait()
        finally:
            self._pending.pop(request_id, None)
            self._progress.pop(request_id, None)
        answer = pending.message
        if answer is None:
            raise ServerError(f"the server closed its output before answering {method}")
        if "error" in answer:
            raise ServerError(f"{method}: {answer['error']}")
        return Answer(answer["result"], pending.wire_bytes, pending.received_at)

    async def call_tool(
        self, name: str, arguments: JSONObject, *, on_progress: ProgressHandler | None = None
    ) -> Answer:
        """Call a tool.

        Raises:
            ServerError: the call failed, including a tool result with `isError`.
        """
        answer = await self.request("tools/call", {"name": name, "arguments": arguments}, on_progress=on_progress)
        if answer.result.get("isError"):
            raise ServerError(f"{name} failed: {json.dumps(answer.result.get('content'))[:500]}")
        return answer

    async def exit_seconds(self) -> float:
        """Close stdin, as a host does, and time how long the server takes to exit.

        Raises:
            TimeoutError: it did not exit within 10 s.
        """
        started = time.monotonic()
        await self._close_stdin()
        with anyio.fail_after(_EXIT_TIMEOUT_SECONDS):
            await self._process.wait()
        return time.monotonic() - started

    async def _send(self, message: JSONObject) -> None:
        stdin = self._process.stdin
        if stdin is None:
            raise ServerError("the server has no stdin")
        async with self._send_lock:
            await stdin.send(json.dumps(message, separators=(",", ":")).encode() + b"\n")

    async def _read_lines(self) -> None:
        stdout = self._process.stdout
        if stdout is None:
            raise ServerError("the server has no stdout")
        lines = BufferedByteReceiveStream(stdout)
        try:
            while True:
                line = await lines.receive_until(b"\n", _MAX_LINE_BYTES)
                now = time.monotonic()
                self._dispatch(json.loads(line), len(line), now)
        except (anyio.EndOfStream, anyio.IncompleteRead, anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass
        finally:
            for pending in self._pending.values():
                pending.done.set()

    def _dispatch(self, message: JSONObject, wire_bytes: int, now: float) -> None:
        if message.get("method") == "notifications/progress":
            params = message.get("params", {})
            handler = self._progress.get(params.get("progressToken"))
            if handler is not None:
                handler(params, now)
            return
        pending = self._pending.get(message.get("id", -1))
        if pending is not None:
            pending.message, pending.wire_bytes, pending.received_at = message, wire_bytes, now
            pending.done.set()

    async def _close_stdin(self) -> None:
        if self._stdin_open and self._process.stdin is not None:
            self._stdin_open = False
            await self._process.stdin.aclose()

    async def _stop(self) -> None:
        with anyio.CancelScope(shield=True):
            await self._close_stdin()
            with anyio.move_on_after(_EXIT_TIMEOUT_SECONDS):
                await self._process.wait()
                return
            self._process.kill()
            await self._process.wait()


def python_env(overrides: Mapping[str, str]) -> dict[str, str]:
    """This process's environment as a user's desktop would have it, plus `overrides`.

    Leaves out the user's KYMA_* settings, and PYTHONDONTWRITEBYTECODE (set on CI machines, never
    by a desktop host), so every server runs from compiled bytecode after its first launch. Sets
    PYTHONSAFEPATH: `python -m kyma_mcp` then runs the kyma-mcp installed in that interpreter's
    environment, not the checkout in the current folder (which `-m` would put first on `sys.path`,
    so that a benchmark run from one checkout would time that checkout under every `--kyma` label).
    """
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("KYMA_") and name != "PYTHONDONTWRITEBYTECODE"
    }
    return env | {"PYTHONSAFEPATH": "1"} | dict(overrides)


def cpu_seconds(pid: int) -> float:
    """CPU time a process's live threads have used, from /proc/<pid>/task/*/schedstat (Linux, ns precision).

    Unlike wall time it barely moves when other jobs load the machine, so it shows what a server
    itself spends. Threads that already exited are not counted.

    Raises:
        OSError: no /proc entry (not Linux, or the process is gone).
    """
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except FileNotFoundError:  # the thread ended while we looked
            continue
    return total / 1e9
