"""Compression bombs: a few MiB on the wire that inflate to 4 GiB stay bounded in every reader.

A real HTTP server on loopback sends each body gzip- or deflate-encoded (about 1,000 decoded bytes
per byte sent) until the client hangs up. kyma-mcp inflates at most 64 KiB per step and checks its
byte bound after each, so the most Python ever holds for a call is that bound plus a few pieces
(measured with tracemalloc); one 64 KiB network read inflated in one step would alone be 64 MiB.
"""

import tracemalloc
import zlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
import anyio.abc
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream

from kyma_mcp.errors import KymaError
from kyma_mcp.kyma.client import ByteBudget, KymaClient
from kyma_mcp.kyma.decoding import ACCEPT_ENCODING
from kyma_mcp.settings import Settings

pytestmark = pytest.mark.anyio

MiB = 1 << 20
DECODED_GIB = 4
PEAK_LIMIT = 8 * MiB
"""What one call may hold at its peak: its bound (1 MiB here) and a few decoding pieces."""
WBITS = {"gzip": zlib.MAX_WBITS | 16, "deflate": zlib.MAX_WBITS, "raw-deflate": -zlib.MAX_WBITS}


def bomb(coding: str, fill: bytes) -> tuple[bytes, bytes]:
    """A stream's first bytes and a segment that, repeated, inflates to 1 MiB of `fill` each time.

    After a sync flush the compressor's window holds only `fill`, so every later MiB compresses to
    the same bytes; head + segment * n is a valid stream of n + 1 MiB.
    """
    compressor = zlib.compressobj(9, zlib.DEFLATED, WBITS[coding])
    block = fill * (MiB // len(fill))
    head = compressor.compress(block) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return head, compressor.compress(block) + compressor.flush(zlib.Z_SYNC_FLUSH)


@dataclass
class Route:
    status: int
    content_type: str
    codings: tuple[str, ...]
    """Applied in this order; "raw-deflate" is sent as "deflate" (what some servers do)."""
    fill: bytes = b"x"

    @property
    def header(self) -> str:
        return ", ".join("deflate" if coding == "raw-deflate" else coding for coding in self.codings)


@dataclass
class BombServer:
    routes: dict[str, Route]
    url: str = ""
    accept_encodings: list[str] = field(default_factory=list[str])
    sent: list[int] = field(default_factory=list[int])

    async def serve(self, connection: anyio.abc.SocketStream) -> None:
        async with connection:
            reader = BufferedByteReceiveStream(connection)
            try:
                head = (await reader.receive_until(b"\r\n\r\n", 65_536)).decode("latin-1")
            except (anyio.EndOfStream, anyio.IncompleteRead, anyio.BrokenResourceError):
                return
            request_line, *header_lines = head.split("\r\n")
            headers = {
                name.strip().lower(): value.strip() for name, _, value in (h.partition(":") for h in header_lines)
            }
            if length := int(headers.get("content-length", "0")):
                await reader.receive_exactly(length)
            self.accept_encodings.append(headers.get("accept-encoding", ""))
            path = request_line.split(" ")[1].split("?")[0]
            route = self.routes[path.removeprefix("/v1")]
            await connection.send(
                f"HTTP/1.1 {route.status} Bomb\r\ncontent-type: {route.content_type}\r\n"
                f"content-encoding: {route.header}\r\nconnection: close\r\n\r\n".encode()
            )
            sent = 0
            try:
                async for part in self.body(route):
                    await connection.send(part)
                    sent += len(part)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                pass  # the client hung up: what it should do
            self.sent.append(sent)

    async def body(self, route: Route) -> AsyncIterator[bytes]:
        codings = route.codings
        head, segment = bomb(codings[0], route.fill)
        if len(codings) == 1:
            yield head
            for _ in range(DECODED_GIB * 1024 // 64):
                yield segment * 64  # 64 MiB decoded in ~64 KiB
            return
        # Twice gzip: the inner bomb, compressed again as it goes.
        outer = zlib.compressobj(9, zlib.DEFLATED, WBITS[codings[1]])
        yield outer.compress(head)
        for _ in range(DECODED_GIB * 1024 // 64):
            if part := outer.compress(segment * 64):
                yield part
        yield outer.flush()


@asynccontextmanager
async def serving(routes: dict[str, Route]) -> AsyncGenerator[BombServer]:
    server = BombServer(routes)
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    server.url = f"http://127.0.0.1:{port}"
    async with listener, anyio.create_task_group() as group:
        group.start_soon(listener.serve, server.serve, group)
        yield server
        group.cancel_scope.cancel()


def client_for(server: BombServer) -> KymaClient:
    bounds = {"catalog_bytes": MiB, "json_bytes": MiB, "download_bytes": MiB, "stream_bytes": MiB}
    settings = Settings.model_validate(
        {
            "api_key": "ky-bomb-test",
            "base_url": f"{server.url}/v1",
            "max_retries": 0,
            "tier": 4,
            "bounds": bounds | {"sse_line_bytes": 64 * 1024},
        }
    )
    return KymaClient(settings)


async def peak_of(call: Callable[[], Awaitable[object]]) -> tuple[int, KymaError | None]:
    """The most memory Python held during `call` over what it held before, and what it raised."""
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        failure: KymaError | None = None
        try:
            with anyio.fail_after(60):
                await call()
        except KymaError as exc:
            failure = exc
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - before, failure


async def chat(client: KymaClient) -> object:
    async with client.chat_stream({"model": "m", "messages": [{"role": "user", "content": "hi"}]}) as stream:
        return [chunk async for chunk in stream.chunks()]


JOB = "0123456789abcdef01234567"
Call = Callable[[KymaClient, str], Awaitable[object]]
READERS: dict[str, tuple[str, Call, int, str]] = {
    "catalog": ("/models", lambda client, _: client.list_models(), 200, "application/json"),
    "job": (f"/jobs/{JOB}", lambda client, _: client.get_job(JOB), 200, "application/json"),
    "error body": ("/credits/balance", lambda client, _: client.get_balance(), 500, "application/json"),
    "stream": ("/chat/completions", lambda client, _: chat(client), 200, "text/event-stream"),
    "html instead of a stream": ("/chat/completions", lambda client, _: chat(client), 200, "text/html"),
    "download": (
        "/files/a.png",
        lambda client, url: client.download(f"{url}/files/a.png", ByteBudget(8 * MiB)),
        200,
        "image/png",
    ),
}


@pytest.mark.parametrize("codings", [("gzip",), ("deflate",), ("raw-deflate",), ("gzip", "gzip")], ids=", ".join)
@pytest.mark.parametrize("reader", list(READERS))
async def test_a_compression_bomb_is_refused_or_cut_within_its_bound(reader: str, codings: tuple[str, ...]) -> None:
    path, call, status, content_type = READERS[reader]
    async with serving({path: Route(status, content_type, codings)}) as server:
        client = client_for(server)
        try:
            peak, failure = await peak_of(lambda: call(client, server.url))
        finally:
            await client.aclose()

    assert peak < PEAK_LIMIT, f"{reader} held {peak / MiB:.1f} MiB for a {DECODED_GIB} GiB bomb"
    assert sum(server.sent) < 64 * MiB  # it stopped reading long before the end
    assert server.accept_encodings == [ACCEPT_ENCODING]
    if reader == "stream":  # an unterminated line: refused at the line bound
        assert failure is not None
        assert failure.word == "upstream_unavailable"
        assert "longer than 65,536" in str(failure)
    else:
        assert failure is not None, f"{reader} accepted a {DECODED_GIB} GiB body"
        assert failure.word in {"upstream_unavailable", "server_error"}


async def test_a_stream_of_valid_chunks_in_a_bomb_is_cut_at_the_stream_bound() -> None:
    chunk = b'data: {"choices":[{"delta":{"content":"x"}}]}\n\n'
    route = Route(200, "text/event-stream", ("gzip",), fill=chunk)
    async with serving({"/chat/completions": route}) as server:
        client = client_for(server)
        stream_chunks: list[object] = []

        async def read() -> None:
            async with client.chat_stream({"model": "m", "messages": []}) as stream:
                stream_chunks.extend([chunk async for chunk in stream.chunks()])
                assert stream.cut

        try:
            peak, failure = await peak_of(read)
        finally:
            await client.aclose()

    assert failure is None
    assert 0 < len(stream_chunks) <= MiB // len(chunk) + 1
    assert peak < PEAK_LIMIT + 16 * MiB  # the chunks themselves are kept (about 12 MiB of dicts here)
