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

import asyncio
import io
import json
import os
import stat
import sys
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from typing import TYPE_CHECKING, Protocol, cast

import anyio
from mcp.server import MCPServer
from mcp.server.stdio import stdio_server

if TYPE_CHECKING:
    from kyma_mcp.store.behind import WriteBehind

RESPONSE_PREFIX = '{"jsonrpc":"2.0","id":'
"""How the SDK writes every JSON-RPC message with an id (`model_dump_json`, fields in order)."""
_ID_DECODER = json.JSONDecoder()


class LineSource(Protocol):
    def __aiter__(self) -> AsyncIterator[str]: ...


class LineSink(Protocol):
    async def write(self, line: str) -> object: ...

    async def flush(self) -> None: ...


class Answers:
    """stdout for `stdio_server`: writes each line and counts the responses among them, calling
    `on_response` after each (the store's records waiting for their reply: `store/behind.py`)."""

    def __init__(self, file: LineSink, on_response: Callable[[], object] | None = None) -> None:
        self._file = file
        self._on_response = on_response
        self.answered = 0
        self.changed = anyio.Event()

    async def write(self, line: str) -> None:
        await self._file.write(line)
        if is_response(line):
            self.answered += 1
            self.changed.set()
            self.changed = anyio.Event()
            if self._on_response is not None:
                self._on_response()

    async def flush(self) -> None:
        await self._file.flush()


class Lines:
    """stdin for `stdio_server`: its lines, and at EOF a wait until every request read is answered."""

    def __init__(self, file: LineSource, answers: Answers, *, drain_seconds: float) -> None:
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


async def serve_stdio(server: MCPServer, *, drain_seconds: float, behind: WriteBehind | None = None) -> None:
    """Serve `server` on this process's stdin and stdout until stdin closes and every request is answered.

    With `behind`, end-of-call records are written once their reply is out: the host is this process's
    only client, and it reads the store through this process (`store/behind.py`).
    """
    if behind is not None:
        behind.enabled = True
    async with claimed_stdio() as (wire_in, wire_out):
        stdout = Answers(wire_out, behind.reply_sent if behind is not None else None)
        stdin = Lines(wire_in, stdout, drain_seconds=drain_seconds)
        # stdio_server reads `async for line in stdin` and calls only `write` and `flush` on stdout.
        streams = stdio_server(cast(anyio.AsyncFile[str], stdin), cast(anyio.AsyncFile[str], stdout))
        async with streams as (read_stream, write_stream):
            lowlevel = server._lowlevel_server  # pyright: ignore[reportPrivateUsage]  # as MCPServer.run_stdio_async
            await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())


class PipeLines:
    """stdin's lines read on the event loop (no worker thread per line), from a pipe or socket."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader

    async def __aiter__(self) -> AsyncIterator[str]:
        while line := await self._reader.readline():
            yield line.decode("utf-8", errors="replace")


class PipeWriter:
    """stdout written on the event loop (no worker thread per line), to a pipe or socket."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer

    async def write(self, line: str) -> None:
        self._writer.write(line.encode())

    async def flush(self) -> None:
        await self._writer.drain()


class ThreadWriter:
    """stdout written by worker threads, as the SDK does it."""

    def __init__(self, file: anyio.AsyncFile[str]) -> None:
        self._file = file

    async def write(self, line: str) -> None:
        await self._file.write(line)

    async def flush(self) -> None:
        await self._file.flush()


class _UnownedText(io.TextIOWrapper):
    """UTF-8 text over a wire descriptor that closing never closes (a worker thread may still be blocked
    reading it, as in the SDK's own wrapper)."""

    def close(self) -> None:
        with suppress(ValueError):
            self.detach()


@asynccontextmanager
async def claimed_stdio() -> AsyncGenerator[tuple[LineSource, LineSink]]:
    """The wire's stdin and stdout; meanwhile fd 0 reads /dev/null and fd 1 writes to stderr, and both are
    restored at the end.

    On POSIX a pipe or socket is read and written on the event loop itself (`PipeLines`, `PipeWriter`):
    the SDK's default hops to a worker thread for every line in and out. Anything else (a terminal, a
    file, stdout sharing stderr's pipe, Windows) goes through worker threads as in the SDK: stdin read
    unbuffered (a raw read holds no lock that closing would wait on), stdout buffered and flushed per line.
    """
    private_in, private_out = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    try:
        os.dup2(null, 0)
        os.dup2(2, 1)
    finally:
        os.close(null)
    nonblocking: list[int] = []
    try:
        async with AsyncExitStack() as stack:
            loop = asyncio.get_running_loop()
            source: LineSource
            sink: LineSink
            if _loop_can_use(private_in):
                reader = asyncio.StreamReader(limit=MAX_LINE_BYTES)
                file_in = io.FileIO(private_in, "rb", closefd=False)  # the transport owns it
                await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), file_in)
                nonblocking.append(private_in)
                source = PipeLines(reader)
            else:
                text_in = _UnownedText(io.FileIO(private_in, "rb", closefd=False), encoding="utf-8", errors="replace")
                source = anyio.wrap_file(text_in)
            if _loop_can_use(private_out) and not _same_file(private_out, 2):
                file_out = io.FileIO(private_out, "wb", closefd=False)  # the transport owns it
                transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, file_out)
                nonblocking.append(private_out)
                writer = asyncio.StreamWriter(transport, protocol, None, loop)
                stack.push_async_callback(_drained, writer)
                sink = PipeWriter(writer)
            else:
                text_out = _UnownedText(
                    io.BufferedWriter(io.FileIO(private_out, "wb", closefd=False)), encoding="utf-8"
                )
                stack.callback(_flushed, text_out)
                sink = ThreadWriter(anyio.wrap_file(text_out))
            yield source, sink
    finally:
        for fd in nonblocking:  # the descriptions outlive us (the host's pipe): leave them as we found them
            with suppress(OSError):
                os.set_blocking(fd, True)
        with suppress(OSError):
            os.dup2(private_in, 0)
        with suppress(OSError):
            os.dup2(private_out, 1)


MAX_LINE_BYTES = 1 << 30
"""The longest line read from a pipe (the SDK's own reader has no bound; a JSON-RPC line is one message)."""


def _loop_can_use(fd: int) -> bool:
    """Whether the event loop can read or write `fd` itself: a pipe or a socket, on POSIX."""
    if sys.platform == "win32":
        return False
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def _same_file(fd: int, other: int) -> bool:
    """Whether two descriptors are the same pipe (`2>&1`): stdout must not turn stderr non-blocking."""
    try:
        one, two = os.fstat(fd), os.fstat(other)
    except OSError:
        return True
    return (one.st_dev, one.st_ino) == (two.st_dev, two.st_ino)


async def _drained(writer: asyncio.StreamWriter) -> None:
    with suppress(OSError, RuntimeError):
        await writer.drain()
    writer.transport.abort() if writer.transport.is_closing() else writer.close()


def _flushed(text: io.TextIOWrapper) -> None:
    with suppress(OSError, ValueError):
        text.flush()
