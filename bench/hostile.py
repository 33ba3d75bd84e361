"""`python -m bench.hostile`: a hostile gateway and a hostile client against kyma-mcp, before and after.

Issue 12's attack classes, each against a fresh kyma-mcp process of every target given, in one
run (the targets take turns at going first):

- upstream (a stdio server pointed at `Upstream`, a hostile stub gateway in this process, not
  the emulator): an unterminated SSE `data:` line, valid chunks sent nonstop, a 100 MiB
  `/v1/models`, a reply with 5 MiB `model` and `finish_reason` fields, an `n=1` image job listing
  20 URLs of 50 MB, and an image job listing 30 small PNGs that decode to 80 megapixels each;
- client (an HTTP server): 10,000 sessions opened at the default session cap, 1,100 half-open
  connections (kept at 1,100: one that is dropped is opened again), 3,000 SSE streams.

Per case: the server's peak RSS over its idle RSS (sampled every 20 ms, and the kernel's VmHWM
after it was reset), the call's wall time against its deadline, what the call answered, and
whether a legitimate client is served (after the attack for stdio, during it for HTTP).

A watchdog kills a server whose RSS grows past +2 GiB (reported as "> 2 GiB, killed"), and every
server runs under `ulimit -v` of 6 GiB, so no case can take the machine's memory. HTTP servers
start with the usual soft limit of 1,024 open files (`ulimit -S -n`; the hard limit stays as the
machine has it), as a desktop or a default service would start them.

    python -m bench.hostile --target after=.venv/bin/kyma-mcp --target before=/tmp/old/.venv/bin/kyma-mcp

Writes bench/results/hostile.md and hostile.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import struct
import sys
import tempfile
import time
import zlib
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import anyio
import anyio.abc
import httpx2
from anyio.streams.buffered import BufferedByteReceiveStream
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

from bench.harness import rotated
from bench.wire import JSONObject, ServerCommand, StdioServer, cpu_seconds, python_env

DESCRIPTION = "A hostile gateway and a hostile client against kyma-mcp servers (issue 12's attack classes)."
MiB = 1 << 20
RSS_CAP_MIB = 2048.0
"""A server that grows more than this over idle is killed: the case reports "> 2 GiB"."""
ADDRESS_SPACE_KIB = 6 * 1024 * 1024
"""`ulimit -v` of every server: a hard stop far below the machine's memory, whatever the watchdog sees."""
OPEN_FILES = 1024
"""`ulimit -S -n` of every HTTP server: the usual default soft limit on Linux (the hard limit stays as
this machine has it), under which 1,100 connections exhaust the descriptors of a server that keeps it."""
FLOOD_SECONDS = 60.0
FLOOD_GIVES_UP = 20
"""The SSE flood stops after this many streams in a row got no answer within 2 s."""
SAMPLE_SECONDS = 0.02
STREAM_DEADLINE = 16.0
IMAGE_DEADLINE = 20.0
KEY = "ky-hostile-bench-0123456789"
CHAT_MODEL = "qwen-3.6-plus"
IMAGE_MODEL = "recraft-v4"
JOB_ID = "6745a3c2e4b0f1a2b3c4d5e6"
LEGIT = "legit: say hello"
RESULTS = Path(__file__).with_name("results")


@dataclass(frozen=True)
class Counts:
    """The attack sizes of the issue; `tiny()` for a quick check of the bench itself."""

    models_bytes: int = 100 * MiB
    field_bytes: int = 5 * MiB
    big_files: int = 20
    big_file_bytes: int = 50_000_000
    png_files: int = 30
    png_size: tuple[int, int] = (10_000, 8_000)
    sessions: int = 10_000
    half_open: int = 1_100
    half_open_seconds: float = 25.0
    sse_streams: int = 3_000
    endless_bytes: int = 8 * 1024 * MiB
    """What an "endless" body sends at most, if a client reads that far (none should)."""

    @classmethod
    def tiny(cls) -> Counts:
        return cls(2 * MiB, 64 * 1024, 2, 2 * MiB, 2, (2_000, 2_000), 50, 20, 3.0, 20, 16 * MiB)


@dataclass
class Row:
    case: str
    target: str
    peak_mib: float | None = None
    killed: bool = False
    kept_mib: float | None = None
    """RSS still held a second after the call, over idle (the catalog case)."""
    wall_s: float | None = None
    deadline_s: float | None = None
    outcome: str = ""
    legit: str = ""
    extra: dict[str, Any] = field(default_factory=dict[str, Any])


@dataclass(frozen=True)
class Target:
    label: str
    script: Path
    """The target's `kyma-mcp` console script (so its own venv and code run, whatever the cwd)."""


# --- the hostile gateway ---


def _catalog_entry(model_id: str, kind: str) -> JSONObject:
    if kind == "image":
        return {
            "id": model_id,
            "object": "model",
            "name": model_id,
            "capability": "image_generate",
            "input_modalities": ["text"],
            "output_modalities": ["image"],
            "pricing": {"mode": "per-image", "per_image_usd": 0.054, "currency": "USD"},
        }
    return {
        "id": model_id,
        "object": "model",
        "name": model_id,
        "context_window": 131072,
        "max_output_tokens": 32768,
        "input_modalities": ["text", "image"],
        "output_modalities": ["text"],
        "pricing": {"mode": "per-token", "input": 0.655, "output": 3.93},
    }


CATALOG = json.dumps(
    {"object": "list", "data": [_catalog_entry(CHAT_MODEL, "chat"), _catalog_entry(IMAGE_MODEL, "image")]}
).encode()


def _event(content: str, **fields: Any) -> bytes:
    chunk = {"id": "c1", "object": "chat.completion.chunk", "model": CHAT_MODEL}
    chunk |= {"choices": [{"index": 0, "delta": {"content": content}, "finish_reason": None}]} | fields
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


LEGIT_STREAM = (
    _event("Hello")
    + _event(" there.")
    + b'data: {"id":"c1","object":"chat.completion.chunk","model":"'
    + CHAT_MODEL.encode()
    + b'","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],'
    + b'"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}\n\ndata: [DONE]\n\n'
)


def png_of(width: int, height: int) -> bytes:
    """A black RGB PNG of width x height, made row by row (a 10,000 x 8,000 one is about 240 KB)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    compressor = zlib.compressobj(9)
    row = bytes(1 + width * 3)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


class Upstream:
    """A Kyma-like gateway that answers every chat and image request of the current `case` with an attack.

    Chat prompts containing "legit" are answered normally, whatever the case.
    """

    def __init__(self, counts: Counts) -> None:
        self.counts = counts
        self.case = "none"
        self.url = ""
        self._png: bytes | None = None

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    @classmethod
    @asynccontextmanager
    async def running(cls, counts: Counts) -> AsyncGenerator[Upstream]:
        upstream = cls(counts)
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
        upstream.url = f"http://127.0.0.1:{listener.extra(anyio.abc.SocketAttribute.local_port)}"
        async with listener, anyio.create_task_group() as group:
            group.start_soon(listener.serve, upstream.serve, group)
            yield upstream
            group.cancel_scope.cancel()

    async def serve(self, connection: anyio.abc.SocketStream) -> None:
        async with connection:
            reader = BufferedByteReceiveStream(connection)
            try:
                head = (await reader.receive_until(b"\r\n\r\n", 65_536)).decode("latin-1")
                request_line, *lines = head.split("\r\n")
                headers = {name.strip().lower(): value.strip() for name, _, value in (x.partition(":") for x in lines)}
                length = int(headers.get("content-length") or 0)
                body = await reader.receive_exactly(length) if length else b""
                method, target, _ = request_line.split(" ", 2)
                await self._answer(connection, method, target.split("?", 1)[0], body)
            except (anyio.EndOfStream, anyio.IncompleteRead, anyio.BrokenResourceError, anyio.ClosedResourceError):
                pass  # the client went away: for an endless body, what it should do
            except OSError:
                pass

    async def _answer(self, out: anyio.abc.SocketStream, method: str, path: str, body: bytes) -> None:
        if path == "/v1/auth/limits":
            await _send(out, 200, "application/json", json.dumps({"tier": 4, "rpm_limit": 10_000}).encode())
        elif path == "/v1/models":
            if self.case == "models":
                await _send_endless(out, 200, "application/json", self._huge_catalog())
            else:
                await _send(out, 200, "application/json", CATALOG)
        elif path == "/v1/chat/completions" and method == "POST":
            await self._chat(out, body)
        elif path == "/v1/images/generations" and method == "POST":
            job = {"id": JOB_ID, "status": "queued", "model": IMAGE_MODEL}
            await _send(out, 202, "application/json", json.dumps(job).encode())
        elif path.startswith("/v1/jobs/"):
            await _send(out, 200, "application/json", json.dumps(self._job()).encode())
        elif path.startswith("/files/big-"):
            await _send_endless(
                out, 200, "image/png", _big_file(self.counts.big_file_bytes), self.counts.big_file_bytes
            )
        elif path.startswith("/files/80mp-"):
            if self._png is None:
                self._png = png_of(*self.counts.png_size)
            await _send(out, 200, "image/png", self._png)
        else:
            await _send(out, 404, "application/json", b'{"error":{"message":"no such route"}}')

    async def _chat(self, out: anyio.abc.SocketStream, body: bytes) -> None:
        if b"legit" in body or self.case not in CHAT_ATTACKS:
            await _send(out, 200, "text/event-stream", LEGIT_STREAM)
        elif self.case == "unterminated":
            await _send_endless(out, 200, "text/event-stream", _unterminated(self.counts.endless_bytes))
        elif self.case == "nonstop":
            await _send_endless(out, 200, "text/event-stream", _nonstop(self.counts.endless_bytes))
        else:  # huge fields
            big = "m" * self.counts.field_bytes
            chunk = _event("hello", model=big)
            ending: JSONObject = {"index": 0, "delta": {}, "finish_reason": "f" * len(big)}
            done: JSONObject = {"id": "c1", "model": big, "choices": [ending]}
            stream = chunk + b"data: " + json.dumps(done).encode() + b"\n\ndata: [DONE]\n\n"
            await _send(out, 200, "text/event-stream", stream)

    def _job(self) -> JSONObject:
        if self.case == "big-files":
            urls = [f"{self.url}/files/big-{index}.png" for index in range(self.counts.big_files)]
        else:
            urls = [f"{self.url}/files/80mp-{index}.png" for index in range(self.counts.png_files)]
        return {"id": JOB_ID, "status": "succeeded", "model": IMAGE_MODEL, "output": {"urls": urls}}

    def _huge_catalog(self) -> AsyncGenerator[bytes]:
        return _catalog_parts(self.counts.models_bytes)


CHAT_ATTACKS = ("unterminated", "nonstop", "fields")


async def _send(out: anyio.abc.SocketStream, status: int, kind: str, body: bytes) -> None:
    head = f"HTTP/1.1 {status} X\r\ncontent-type: {kind}\r\ncontent-length: {len(body)}\r\nconnection: close\r\n\r\n"
    await out.send(head.encode() + body)


async def _send_endless(
    out: anyio.abc.SocketStream, status: int, kind: str, parts: AsyncGenerator[bytes], length: int | None = None
) -> None:
    """A body sent as fast as the client reads it, until it hangs up (or the generator ends)."""
    size = f"content-length: {length}\r\n" if length is not None else ""
    await out.send(f"HTTP/1.1 {status} X\r\ncontent-type: {kind}\r\n{size}connection: close\r\n\r\n".encode())
    async for part in parts:
        await out.send(part)


async def _unterminated(size: int) -> AsyncGenerator[bytes]:
    yield b'data: {"choices":[{"delta":{"content":"'
    block = b"x" * (256 * 1024)
    for _ in range(size // len(block)):
        yield block


async def _nonstop(size: int) -> AsyncGenerator[bytes]:
    block = _event("word ") * 2048
    for _ in range(size // len(block)):
        yield block


async def _big_file(size: int) -> AsyncGenerator[bytes]:
    first = png_of(8, 8)
    yield first
    block = bytes(256 * 1024)
    left = size - len(first)
    while left > 0:
        yield block[:left]
        left -= len(block)


async def _catalog_parts(size: int) -> AsyncGenerator[bytes]:
    yield b'{"object":"list","data":['
    sent, index = 0, 0
    while sent < size:
        batch = b",".join(
            json.dumps(_catalog_entry(f"model-{index + offset:07d}", "chat")).encode() for offset in range(200)
        )
        index += 200
        yield (b"," if sent else b"") + batch
        sent += len(batch)
    yield b"]}"


# --- the server under test, watched ---


def rss_mib(pid: int, field_name: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field_name}:"):
            return int(line.split()[1]) / 1024
    raise OSError(f"no {field_name} for pid {pid}")


class Watch:
    """Samples a server's RSS while a case runs; kills it past `RSS_CAP_MIB` over idle."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.idle = rss_mib(pid)
        self.peak = self.idle
        self.killed = False
        with contextlib.suppress(OSError):  # reset the kernel's high-water mark, so VmHWM is this case's peak
            Path(f"/proc/{pid}/clear_refs").write_text("5")

    async def run(self) -> None:
        while True:
            try:
                rss = rss_mib(self.pid)
            except OSError:
                return
            self.peak = max(self.peak, rss)
            if rss - self.idle > RSS_CAP_MIB:
                self.killed = True
                os.kill(self.pid, signal.SIGKILL)
                return
            await anyio.sleep(SAMPLE_SECONDS)

    def growth(self) -> float:
        if not self.killed:
            with contextlib.suppress(OSError):
                self.peak = max(self.peak, rss_mib(self.pid, "VmHWM"))
        return self.peak - self.idle

    @asynccontextmanager
    async def watching(self) -> AsyncGenerator[Watch]:
        async with anyio.create_task_group() as group:
            group.start_soon(self.run)
            try:
                yield self
            finally:
                group.cancel_scope.cancel()


def wrapped(script: Path, folder: Path, *args: str, open_files: int | None = None) -> tuple[str, ...]:
    """The server run from `folder`, under `ulimit -v` (and `ulimit -n` when given); exec keeps the pid."""
    files = f" && ulimit -S -n {open_files}" if open_files is not None else ""
    shell = f'cd "$1" && ulimit -v {ADDRESS_SPACE_KIB}{files} && shift && exec "$@"'
    return ("sh", "-c", shell, "sh", str(folder), str(script), *args)


def server_env(upstream: Upstream, folder: Path, deadline: float) -> dict[str, str]:
    return python_env(
        {
            "KYMA_API_KEY": KEY,
            "KYMA_BASE_URL": upstream.base_url,
            "KYMA_TIER": "4",
            "KYMA_MAX_RETRIES": "0",
            "KYMA_TOOL_TIMEOUT_SECONDS": str(deadline),
            "KYMA_OUTPUT_DIR": str(folder / "images"),
            "KYMA_STORE_URL": f"sqlite://{folder / 'store.sqlite3'}",
            "HOME": str(folder),
        }
    )


def saved_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file()) if folder.exists() else 0


def file_size(path: Path) -> int:
    return path.stat().st_size


def file_head(path: Path, offset: int, size: int) -> str:
    with path.open("rb") as file:
        file.seek(offset)
        return file.read(size).decode("utf-8", "replace")


NOTES_RULE = "\n\n---\n"


def summary(answer: JSONObject, tool: str) -> str:
    """A short account of a tool result: its error's first words, or what it delivered and its size."""
    size = len(json.dumps(answer, separators=(",", ":")))
    content: list[JSONObject] = answer.get("content") or [{}]
    text = str(content[0].get("text", ""))
    if answer.get("isError"):
        return f"{text[:90]}… ({size:,} B)"
    structured: JSONObject = answer.get("structuredContent") or {}
    cut = " (cut, said so)" if "cut" in text.lower() or "stopped" in text.lower() else ""
    if "reply" in structured:
        return f"reply of {len(str(structured['reply'])):,} chars{cut}, result {size:,} B"
    if tool == "chat":  # a chat result without structured content: the reply, then kyma-mcp's notes after ---
        return f"reply of {len(text.split(NOTES_RULE, 1)[0]):,} chars{cut}, result {size:,} B"
    if "images" in structured:
        images: list[JSONObject] = structured["images"] or []
        return f"{structured.get('status')}: {len(images)} image(s) saved, result {size:,} B"
    if "models" in structured or "source" in structured:
        return f"catalog from {structured.get('source', '?')}, result {size:,} B"
    first = text.split("\n", 1)[0]
    return f"{first[:80]}{'…' if len(first) > 80 else ''} (result {size:,} B)"


async def legit_stdio(server: StdioServer) -> str:
    try:
        with anyio.fail_after(20):
            started = time.monotonic()
            answer = await server.request("tools/call", {"name": "chat", "arguments": {"prompt": LEGIT}})
    except Exception as exc:  # the server is gone, or stuck
        return f"no ({type(exc).__name__})"
    if answer.result.get("isError"):
        return "no (error)"
    return f"yes ({(time.monotonic() - started) * 1000:.0f} ms)"


async def stdio_case(
    target: Target,
    upstream: Upstream,
    log: BinaryIO,
    case: tuple[str, str],
    tool: str,
    arguments: JSONObject,
    deadline: float,
) -> Row:
    """One attack call on a fresh stdio server, then a legitimate chat on the same server.

    `case` is the upstream's attack key and the row's label.
    """
    key, label = case
    row = Row(label, target.label, deadline_s=deadline)
    with tempfile.TemporaryDirectory(prefix="kyma-hostile-") as name:
        folder = Path(name)
        command = ServerCommand(target.label, wrapped(target.script, folder), server_env(upstream, folder, deadline))
        # The catalog is read ahead, after tools/list or by a first chat, in newer versions: its attack is
        # armed from the start, watched from the handshake, and no chat warms that server up.
        catalog = tool == "list_models"
        upstream.case = key if catalog else "none"
        async with StdioServer.launched(command, stderr=log) as server:
            await server.handshake()
            if not catalog:
                await server.request("tools/list")
                await server.request("tools/call", {"name": "chat", "arguments": {"prompt": LEGIT}})  # warm
                await anyio.sleep(0.5)
                upstream.case = key
            async with Watch(server.pid).watching() as watch:
                if catalog:
                    await server.request("tools/list")
                started = time.monotonic()
                try:
                    answer = await server.request("tools/call", {"name": tool, "arguments": arguments})
                    row.outcome = summary(answer.result, tool)
                except Exception as exc:
                    row.outcome = "server killed by the watchdog" if watch.killed else f"no answer ({exc})"[:120]
                row.wall_s = time.monotonic() - started
                if tool == "list_models" and not watch.killed:
                    await anyio.sleep(1.0)
                    row.kept_mib = rss_mib(server.pid) - watch.idle
            row.peak_mib, row.killed = watch.growth(), watch.killed
            upstream.case = "none"
            row.legit = "no (killed)" if watch.killed else await legit_stdio(server)
            row.extra["saved_bytes"] = saved_bytes(folder / "images")
    return row


# --- HTTP servers and hostile clients ---


def free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return int(probe.getsockname()[1])


@asynccontextmanager
async def http_server(
    target: Target, upstream: Upstream, transport: str, stderr_path: Path
) -> AsyncGenerator[tuple[anyio.abc.Process, str]]:
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="kyma-hostile-") as name, stderr_path.open("wb") as stderr:
        folder = Path(name)
        argv = wrapped(target.script, folder, "--transport", transport, "--port", str(port), open_files=OPEN_FILES)
        process = await anyio.open_process(
            list(argv), env=server_env(upstream, folder, 30.0), stdout=subprocess_devnull(), stderr=stderr
        )
        try:
            with anyio.fail_after(30):
                while True:
                    try:
                        await (await anyio.connect_tcp("127.0.0.1", port)).aclose()
                        break
                    except OSError:
                        await anyio.sleep(0.05)
            yield process, f"http://127.0.0.1:{port}"
        finally:
            with anyio.CancelScope(shield=True):
                if process.returncode is None:
                    process.terminate()
                    with anyio.move_on_after(10):
                        await process.wait()
                    if process.returncode is None:
                        process.kill()
                await process.aclose()


def subprocess_devnull() -> int:
    import subprocess

    return subprocess.DEVNULL


async def legit_http(root: str, transport: str, patience: float = 15.0) -> float | None:
    """Milliseconds a new client took to connect and get a chat answered; None if it was not served."""
    started = time.monotonic()
    try:
        with anyio.fail_after(patience):
            async with AsyncExitStack() as stack:
                if transport == "sse":
                    client = await stack.enter_async_context(Client(sse_client(f"{root}/sse")))
                else:
                    http = await stack.enter_async_context(httpx2.AsyncClient(timeout=patience))
                    client = await stack.enter_async_context(
                        Client(streamable_http_client(f"{root}/mcp", http_client=http))
                    )
                result = await client.call_tool("chat", {"prompt": LEGIT})
                if result.is_error:
                    return None
    except Exception:
        return None
    return (time.monotonic() - started) * 1000


INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "flood", "version": "1"}},
}


async def session_flood(target: Target, upstream: Upstream, folder: Path, counts: Counts) -> Row:
    row = Row(f"{counts.sessions:,} sessions (default cap)", target.label)
    async with http_server(target, upstream, "streamable-http", folder / "sessions.err") as (process, root):
        await legit_http(root, "streamable-http")  # warm
        statuses: dict[str, int] = {}
        async with Watch(process.pid).watching() as watch:
            started = time.monotonic()
            limits = httpx2.Limits(max_connections=32, max_keepalive_connections=32)
            headers = {"Accept": "application/json, text/event-stream"}
            async with httpx2.AsyncClient(limits=limits, timeout=30, headers=headers) as http:
                numbers = iter(range(counts.sessions))

                async def opener() -> None:
                    for _ in numbers:
                        try:
                            status = str((await http.post(f"{root}/mcp", json=INITIALIZE)).status_code)
                        except httpx2.HTTPError as exc:
                            status = type(exc).__name__
                        statuses[status] = statuses.get(status, 0) + 1

                async with anyio.create_task_group() as group:
                    for _ in range(32):
                        group.start_soon(opener)
            row.wall_s = time.monotonic() - started
            served = await legit_http(root, "streamable-http")
        row.peak_mib, row.killed = watch.growth(), watch.killed
        row.outcome = "opened: " + ", ".join(f"{count:,} x {status}" for status, count in sorted(statuses.items()))
        row.legit = "no (killed)" if watch.killed else ("no" if served is None else f"yes ({served:.0f} ms)")
    return row


async def half_open(target: Target, upstream: Upstream, folder: Path, counts: Counts) -> Row:
    row = Row(f"{counts.half_open:,} half-open connections", target.label)
    stderr_path = folder / "half-open.err"
    async with http_server(target, upstream, "streamable-http", stderr_path) as (process, root):
        await legit_http(root, "streamable-http")  # warm
        port = int(root.rsplit(":", 1)[1])
        partial = f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n".encode()
        opened = 0

        async def attacker() -> None:
            nonlocal opened
            while True:
                try:
                    stream = await anyio.connect_tcp("127.0.0.1", port)
                except OSError:
                    await anyio.sleep(0.2)
                    continue
                opened += 1
                async with stream:
                    try:
                        await stream.send(partial)
                        while await stream.receive():
                            pass
                    except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                        pass
                await anyio.sleep(0.2)  # dropped: open it again

        served: list[float | None] = []
        window = 0.0
        async with Watch(process.pid).watching() as watch, anyio.create_task_group() as attack:
            for _ in range(counts.half_open):
                attack.start_soon(attacker)
            await anyio.sleep(2.0)
            err_before, cpu_before, started = file_size(stderr_path), cpu_seconds(process.pid), time.monotonic()
            while time.monotonic() - started < counts.half_open_seconds:
                served.append(await legit_http(root, "streamable-http", patience=10))
                await anyio.sleep(1.0)
            window = time.monotonic() - started
            with contextlib.suppress(OSError):
                row.extra["server_cpu_percent"] = round((cpu_seconds(process.pid) - cpu_before) / window * 100, 1)
            row.extra["stderr_bytes_per_s"] = round((file_size(stderr_path) - err_before) / window)
            row.extra["connections_opened"] = opened
            row.extra["stderr_sample"] = file_head(stderr_path, err_before, 1500)
            attack.cancel_scope.cancel()
        row.peak_mib, row.killed = watch.growth(), watch.killed
        times = sorted(t for t in served if t is not None)
        row.wall_s = window
        row.outcome = (
            f"server {row.extra.get('server_cpu_percent', '?')}% CPU, "
            f"stderr {row.extra['stderr_bytes_per_s'] / 1024:,.0f} KiB/s, {opened:,} attacker connections"
        )
        median = f", median {times[len(times) // 2]:.0f} ms" if times else ""
        row.legit = f"{len(times)} of {len(served)} served{median}"
    return row


async def sse_flood(target: Target, upstream: Upstream, folder: Path, counts: Counts) -> Row:
    row = Row(f"{counts.sse_streams:,} SSE streams", target.label)
    async with http_server(target, upstream, "sse", folder / "sse.err") as (process, root):
        await legit_http(root, "sse")  # warm
        port = int(root.rsplit(":", 1)[1])
        request = f"GET /sse HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n\r\n".encode()
        statuses: dict[str, int] = {}
        opened: list[anyio.abc.SocketStream] = []
        async with AsyncExitStack() as streams, Watch(process.pid).watching() as watch:
            started = time.monotonic()
            failures = 0
            for _ in range(counts.sse_streams):
                try:
                    with anyio.fail_after(2):
                        stream = await streams.enter_async_context(await anyio.connect_tcp("127.0.0.1", port))
                        opened.append(stream)
                        await stream.send(request)
                        first = await stream.receive()
                    status = first.split(b" ", 2)[1].decode() if first.startswith(b"HTTP/") else "?"
                    failures = 0
                except (OSError, TimeoutError, anyio.EndOfStream, anyio.BrokenResourceError) as exc:
                    status, failures = type(exc).__name__, failures + 1
                statuses[status] = statuses.get(status, 0) + 1
                if failures >= FLOOD_GIVES_UP or time.monotonic() - started > FLOOD_SECONDS:
                    statuses["not tried (the server stopped answering)"] = counts.sse_streams - sum(statuses.values())
                    break
            row.wall_s = time.monotonic() - started
            await anyio.sleep(1.0)
            served = await legit_http(root, "sse")
            row.peak_mib, row.killed = watch.growth(), watch.killed
            row.extra["ended_by_server"] = sum([await _ended(stream) for stream in opened])
        row.outcome = "streams: " + ", ".join(f"{count:,} x {status}" for status, count in sorted(statuses.items()))
        row.outcome += f"; {row.extra['ended_by_server']:,} ended by the server"
        row.legit = "no (killed)" if watch.killed else ("no" if served is None else f"yes ({served:.0f} ms)")
    return row


async def _ended(stream: anyio.abc.SocketStream) -> bool:
    """The server has closed this connection (what it sent before is read and dropped)."""
    with anyio.move_on_after(0.05):
        try:
            while await stream.receive():
                pass
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            return True
    return False


# --- the run ---

Case = Callable[[Target, Upstream, BinaryIO, Path], Awaitable[Row]]


def cases(counts: Counts) -> dict[str, Case]:
    def chat(key: str, label: str) -> Case:
        return lambda target, upstream, log, _: stdio_case(
            target, upstream, log, (key, label), "chat", {"prompt": "tell me", "model": CHAT_MODEL}, STREAM_DEADLINE
        )

    def image(key: str, label: str, n: int) -> Case:
        arguments = {"prompt": "a lighthouse", "model": IMAGE_MODEL, "n": n}
        return lambda target, upstream, log, _: stdio_case(
            target, upstream, log, (key, label), "generate_image", arguments, IMAGE_DEADLINE
        )

    models = f"/v1/models of {_size(counts.models_bytes)}"
    big = f"n=1 job listing {counts.big_files} URLs of {counts.big_file_bytes / 1e6:.0f} MB"
    pixels = f"n=4 job listing {counts.png_files} PNGs of {counts.png_size[0] * counts.png_size[1] / 1e6:.0f} MP"
    return {
        "unterminated": chat("unterminated", "SSE unterminated `data:` line"),
        "nonstop": chat("nonstop", "SSE valid chunks nonstop"),
        "models": lambda target, upstream, log, _: stdio_case(
            target, upstream, log, ("models", models), "list_models", {}, STREAM_DEADLINE
        ),
        "fields": chat("fields", f"reply with {_size(counts.field_bytes)} `model`/`finish_reason`"),
        "big-files": image("big-files", big, 1),
        "80mp": image("80mp", pixels, 4),
        "sessions": lambda target, upstream, _, folder: session_flood(target, upstream, folder, counts),
        "half-open": lambda target, upstream, _, folder: half_open(target, upstream, folder, counts),
        "sse": lambda target, upstream, _, folder: sse_flood(target, upstream, folder, counts),
    }


async def run(targets: Sequence[Target], names: Sequence[str], counts: Counts, out: Path) -> list[Row]:
    rows: list[Row] = []
    table = cases(counts)
    with (out / "hostile-servers.log").open("wb") as log, tempfile.TemporaryDirectory(prefix="kyma-hostile-") as tmp:
        async with Upstream.running(counts) as upstream:
            for turn, name in enumerate(names):
                for target in rotated(list(targets), turn):
                    _say(f"{name} · {target.label} …")
                    row = await table[name](target, upstream, log, Path(tmp))
                    _say(f"  {_mib(row)}, {row.outcome}; legit: {row.legit}")
                    rows.append(row)
                    write(rows, targets, out)
    return rows


def write(rows: Sequence[Row], targets: Sequence[Target], out: Path) -> str:
    """The table and every number so far (rewritten after each case, so a broken run keeps what it measured)."""
    markdown = to_markdown(rows, targets)
    (out / "hostile.md").write_text(markdown, encoding="utf-8")
    (out / "hostile.json").write_text(json.dumps([asdict(row) for row in rows], indent=2), encoding="utf-8")
    return markdown


def _size(size: int) -> str:
    return f"{size // MiB} MiB" if size >= MiB else f"{size // 1024} KiB"


def _mib(row: Row) -> str:
    if row.killed:
        return f"> {RSS_CAP_MIB / 1024:.0f} GiB, killed"
    return "?" if row.peak_mib is None else f"+{row.peak_mib:,.1f} MiB"


def _wall(row: Row) -> str:
    if row.wall_s is None:
        return ""
    return f"{row.wall_s:.2f} s" + (f" / {row.deadline_s:.0f} s" if row.deadline_s else "")


def to_markdown(rows: Sequence[Row], targets: Sequence[Target]) -> str:
    lines = [
        f"Hostile bench, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; targets: "
        + ", ".join(f"{t.label} ({t.script})" for t in targets),
        "",
        "| attack | target | peak RSS over idle | time / deadline | what the call or flood got | legitimate client |",
        "|---|---|--:|--:|---|---|",
    ]
    for row in rows:
        kept = f" (+{row.kept_mib:,.1f} MiB held after)" if row.kept_mib is not None else ""
        cells = [row.case, row.target, _mib(row) + kept, _wall(row), row.outcome.replace("|", "\\|"), row.legit]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _say(message: str) -> None:
    print(f"hostile: {message}", file=sys.stderr, flush=True)


def _target(text: str) -> Target:
    label, _, script = text.partition("=")
    if not script:
        raise argparse.ArgumentTypeError("a target is LABEL=PATH-TO-kyma-mcp")
    return Target(label, Path(script).absolute())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hostile", description=DESCRIPTION)
    here = Path(sys.executable).with_name("kyma-mcp")
    parser.add_argument("--target", type=_target, action="append", help=f"LABEL=SCRIPT (default: now={here})")
    parser.add_argument("--tiny", action="store_true", help="small attacks: checks the bench, measures nothing")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("names", nargs="*", metavar="CASE", help="cases to run (default: all)")
    args = parser.parse_args(argv)
    counts = Counts.tiny() if args.tiny else Counts()
    targets: list[Target] = args.target or [Target("now", here)]
    names: list[str] = args.names or list(cases(counts))
    if unknown := sorted(set(names) - set(cases(counts))):
        parser.error(f"unknown case(s): {', '.join(unknown)}; the cases are {', '.join(cases(counts))}")
    args.out.mkdir(parents=True, exist_ok=True)
    rows = anyio.run(run, targets, names, counts, args.out)
    print(write(rows, targets, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
