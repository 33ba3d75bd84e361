"""Serving over stdio: every request read before stdin closes is answered before the server exits.

The SDK's `stdio_server()` ends its read stream at stdin's EOF, and the serving loop then cancels the
requests still running: with requests piped from a file (`printf '…\\n…\\n' | kyma-mcp`,
`kyma-mcp < requests.jsonl`) the first was answered and the rest came back "Connection closed" or not
at all. `serve_stdio` hands `stdio_server(stdin, stdout)` (its public parameters) two objects of its
own: `Lines` passes stdin's lines on and, at EOF, holds the end back until every request it passed on
has been answered on stdout (`Answers` counts the responses), or until a deadline, so a request that is
never answered cannot keep the process alive.

Passing streams skips the SDK's claim of fd 0 and 1, so `claimed_stdio` does the same: while serving,
fd 0 reads the null device and fd 1 writes to stderr (stray output from a library cannot corrupt the
wire), and the wire goes through private duplicates.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import AsyncIterator, Generator
from contextlib import contextmanager, suppress
from typing import cast

import anyio
from mcp.server import MCPServer
from mcp.server.stdio import stdio_server

RESPONSE_PREFIX = '{"jsonrpc":"2.0","id":'
"""How the SDK writes every JSON-RPC message with an id (`model_dump_json`, fields in order)."""
_ID_DECODER = json.JSONDecoder()


class Answers:
    """stdout for `stdio_server`: writes each line and counts the responses among them."""

    def __init__(self, file: anyio.AsyncFile[str]) -> None:
        self._file = file
        self.answered = 0
        self.changed = anyio.Event()

    async def write(self, line: str) -> None:
        await self._file.write(line)
        if is_response(line):
            self.answered += 1
            self.changed.set()
            self.changed = anyio.Event()

    async def flush(self) -> None:
        await self._file.flush()


class Lines:
    """stdin for `stdio_server`: its lines, and at EOF a wait until every request read is answered."""

    def __init__(self, file: anyio.AsyncFile[str], answers: Answers, *, drain_seconds: float) -> None:
        self._file = file
        self._answers = answers
        self._drain_seconds = drain_seconds
        self.requests = 0

    async def __aiter__(self) -> AsyncIterator[str]:
        async for line in self._file:
            if is_request(line):
                self.requests += 1
            yield line
        with anyio.move_on_after(self._drain_seconds):
            while self._answers.answered < self.requests:
                await self._answers.changed.wait()


def is_request(line: str) -> bool:
    """Whether a line from the client is a request (it has an id and a method), which gets an answer.

    A cheap look, not a parse: a notification that only mentions both words in its text counts too,
    which costs at most the drain deadline at EOF, never a lost answer.
    """
    return '"id"' in line and '"method"' in line


def is_response(line: str) -> bool:
    """Whether a line the SDK writes is a response (`{"jsonrpc":"2.0","id":…,"result"|"error":…}`), not
    a notification or a request of the server's own (`…"id":…,"method":…`)."""
    if not line.startswith(RESPONSE_PREFIX):
        return False
    try:
        _, end = _ID_DECODER.raw_decode(line, len(RESPONSE_PREFIX))
    except ValueError:
        return False
    return line.startswith((',"result"', ',"error"'), end)


async def serve_stdio(server: MCPServer, *, drain_seconds: float) -> None:
    """Serve `server` on this process's stdin and stdout until stdin closes and every request is answered."""
    with claimed_stdio() as (wire_in, wire_out):
        stdout = Answers(anyio.wrap_file(wire_out))
        stdin = Lines(anyio.wrap_file(wire_in), stdout, drain_seconds=drain_seconds)
        # stdio_server reads `async for line in stdin` and calls only `write` and `flush` on stdout.
        streams = stdio_server(cast(anyio.AsyncFile[str], stdin), cast(anyio.AsyncFile[str], stdout))
        async with streams as (read_stream, write_stream):
            lowlevel = server._lowlevel_server  # pyright: ignore[reportPrivateUsage]  # as MCPServer.run_stdio_async
            await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())


class _UnownedText(io.TextIOWrapper):
    """UTF-8 text over a wire descriptor that closing never closes (a worker thread may still be blocked
    reading it, as in the SDK's own wrapper)."""

    def close(self) -> None:
        with suppress(ValueError):
            self.detach()


@contextmanager
def claimed_stdio() -> Generator[tuple[io.TextIOWrapper, io.TextIOWrapper]]:
    """The wire's stdin and stdout as private text files; meanwhile fd 0 reads /dev/null and fd 1 writes
    to stderr, and both are restored at the end.

    stdin is read unbuffered (a raw read holds no lock that closing would wait on while a worker thread
    blocks in it); stdout is buffered, so a partial pipe write is completed, and flushed after each line.
    """
    private_in, private_out = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    try:
        os.dup2(null, 0)
        os.dup2(2, 1)
    finally:
        os.close(null)
    wire_in = _UnownedText(io.FileIO(private_in, "rb", closefd=False), encoding="utf-8", errors="replace")
    wire_out = _UnownedText(io.BufferedWriter(io.FileIO(private_out, "wb", closefd=False)), encoding="utf-8")
    try:
        yield wire_in, wire_out
    finally:
        with suppress(OSError, ValueError):
            wire_out.flush()
        with suppress(OSError):
            os.dup2(private_in, 0)
        with suppress(OSError):
            os.dup2(private_out, 1)
