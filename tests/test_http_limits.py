"""HTTP transport limits over real loopback HTTP: sessions never lock out a new client, streams are
capped, half-open connections are dropped while real clients are served, log floods are cut."""

import logging
import select
import socket
from collections.abc import Generator
from contextlib import contextmanager
from typing import Any

import anyio
import httpx2
import pytest
import uvicorn
from mcp.types import CallToolResult

from kyma_mcp.emulator import EmulatorHandle
from kyma_mcp.http_config import HttpConfig, HttpTransport
from kyma_mcp.log_limits import RateLimitFilter
from kyma_mcp.server import build_server
from kyma_mcp.server.http import ACCEPT_BACKLOG, RESERVED_FILES, build_app, uvicorn_options
from kyma_mcp.settings import Bounds
from tests.conftest import emulator_settings
from tests.test_http import INITIALIZE, TLS, Served, mcp_client, running

pytestmark = pytest.mark.anyio
TOKEN = "caller-token-0123456789"
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json, text/event-stream"}


@contextmanager
def serving(transport: HttpTransport, emulator: EmulatorHandle, **bounds: Any) -> Generator[Served]:
    """kyma-mcp over HTTP with the same uvicorn options `kyma-mcp --transport` uses."""
    config = HttpConfig(transport, token=TOKEN, bounds=Bounds.model_validate(bounds))
    sock = socket.create_server(("127.0.0.1", 0), backlog=2048)
    options: dict[str, Any] = {**uvicorn_options(config), "timeout_graceful_shutdown": 1}
    server = uvicorn.Server(uvicorn.Config(build_app(build_server(emulator_settings(emulator)), config), **options))
    with running(server, sock) as root:
        yield Served(transport, root)


async def open_sessions(root: str, count: int) -> list[str]:
    """`count` sessions opened and abandoned (never closed), as a flooding client would."""
    ids: list[str] = []
    async with httpx2.AsyncClient(verify=TLS, timeout=30, headers=HEADERS) as http:
        for _ in range(count):
            response = await http.post(f"{root}/mcp", json=INITIALIZE)
            assert response.status_code == 200, response.text
            ids.append(response.headers["mcp-session-id"])
    return ids


@pytest.mark.slow
async def test_after_many_abandoned_sessions_a_new_client_is_served(emulator: EmulatorHandle) -> None:
    with serving("streamable-http", emulator, http_sessions=20) as served:
        abandoned = await open_sessions(served.root, 200)
        async with mcp_client(served) as client:
            result = await client.call_tool("list_models", {"limit": 1})
        async with httpx2.AsyncClient(verify=TLS, timeout=10, headers=HEADERS) as http:
            oldest = await http.post(
                f"{served.root}/mcp",
                json={"jsonrpc": "2.0", "id": 2, "method": "ping"},
                headers={"mcp-session-id": abandoned[0], "mcp-protocol-version": "2025-06-18"},
            )

    assert not result.is_error
    assert oldest.status_code == 404  # the least recently used session made room


CHAT = "/v1/chat/completions"


def open_stream(served: Served, path: str, session: str | None = None) -> socket.socket:
    """A GET stream opened as a flooding client opens it, returned once its response head (and, for
    SSE, its endpoint event) has arrived: an idle stream that is never read again."""
    port = int(served.root.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    extra = f"Mcp-Session-Id: {session}\r\n" if session else ""
    head = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {TOKEN}\r\n"
    sock.sendall(f"{head}Accept: text/event-stream\r\n{extra}\r\n".encode())
    seen = b""
    while b"\r\n\r\n" not in seen or (path == "/sse" and b"session_id=" not in seen):
        part = sock.recv(65536)
        assert part, seen
        seen += part
    assert seen.startswith(b"HTTP/1.1 200 "), seen
    assert b"\r\nconnection: close\r\n" in seen.lower(), "the stream is the connection's last response"
    return sock


def closed_streams(streams: list[socket.socket]) -> list[int]:
    """Indexes of the streams the server has ended (until none has for a second), each checked to have
    ended cleanly: the chunked response's last chunk, then the connection closed (not left open, not cut
    mid-response)."""
    closed: list[int] = []
    while readable := select.select([s for s in streams if streams.index(s) not in closed], [], [], 1.0)[0]:
        for sock in readable:  # a closed stream reads as its end
            rest = b""
            while part := sock.recv(65536):
                rest += part
            assert rest.endswith(b"0\r\n\r\n"), (streams.index(sock), rest[-200:])
            closed.append(streams.index(sock))
    return sorted(closed)


async def test_a_flood_of_idle_sse_streams_closes_the_oldest_and_a_new_client_is_served(
    emulator: EmulatorHandle,
) -> None:
    with serving("sse", emulator, http_streams=3) as served:
        flood = [open_stream(served, "/sse") for _ in range(8)]
        try:
            async with mcp_client(served) as client:
                result = await client.call_tool("list_models", {"limit": 1})
            closed = closed_streams(flood)
        finally:
            for sock in flood:
                sock.close()

    assert not result.is_error
    assert closed == [0, 1, 2, 3, 4, 5], "the least recently active went first; 2 floods and the client fit"


async def test_an_sse_stream_with_a_call_in_flight_outlasts_a_flood(emulator: EmulatorHandle) -> None:
    """The held client's stream is the oldest and has been idle longest, but its call's answer will
    travel on it: the flood's own streams go instead."""
    emulator.state.switches.gather_chats = 2  # the first chat is held until a second one arrives
    results: list[CallToolResult] = []
    closed: list[int] = []
    with serving("sse", emulator, http_streams=3) as served, anyio.fail_after(30):
        async with mcp_client(served) as held, anyio.create_task_group() as group:

            async def held_call() -> None:
                results.append(await held.call_tool("chat", {"prompt": "held"}))

            group.start_soon(held_call)
            while emulator.state.requests[CHAT] < 1:  # noqa: ASYNC110 - the emulator thread counts; the call is held there
                await anyio.sleep(0.01)
            flood = [open_stream(served, "/sse") for _ in range(6)]
            try:
                async with mcp_client(served) as other:
                    results.append(await other.call_tool("chat", {"prompt": "release"}))
                closed = closed_streams(flood)
            finally:
                for sock in flood:
                    sock.close()

    assert [result.is_error for result in results] == [False, False]  # the held call and the one that released it
    assert closed == [0, 1, 2, 3, 4]


async def test_a_flood_of_idle_get_streams_closes_the_oldest_which_its_client_can_open_again(
    emulator: EmulatorHandle,
) -> None:
    with serving("streamable-http", emulator, http_streams=3) as served:
        sessions = await open_sessions(served.root, 6)
        flood = [open_stream(served, "/mcp", session) for session in sessions]
        try:
            closed = closed_streams(flood)
            again = open_stream(served, "/mcp", sessions[0])  # 200: the SDK let go of the closed stream
            async with mcp_client(served) as client:
                result = await client.call_tool("list_models", {"limit": 1})
            again.close()
        finally:
            for sock in flood:
                sock.close()

    assert closed == [0, 1, 2]
    assert not result.is_error


async def test_a_get_stream_whose_session_has_a_call_in_flight_outlasts_a_flood(emulator: EmulatorHandle) -> None:
    emulator.state.switches.gather_chats = 2
    call = {
        "jsonrpc": "2.0",
        "id": 2,
        "method": "tools/call",
        "params": {"name": "chat", "arguments": {"prompt": "held"}},
    }
    answers: list[httpx2.Response] = []
    closed: list[int] = []
    released: list[CallToolResult] = []
    with serving("streamable-http", emulator, http_streams=3) as served, anyio.fail_after(30):
        [busy, *idle] = await open_sessions(served.root, 5)
        streams = [open_stream(served, "/mcp", busy)]
        async with (
            httpx2.AsyncClient(verify=TLS, timeout=30, headers={**HEADERS, "mcp-session-id": busy}) as http,
            anyio.create_task_group() as group,
        ):
            initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
            assert (await http.post(f"{served.root}/mcp", json=initialized)).status_code == 202

            async def held_call() -> None:
                answers.append(await http.post(f"{served.root}/mcp", json=call))

            group.start_soon(held_call)
            while emulator.state.requests[CHAT] < 1:  # noqa: ASYNC110 - the emulator thread counts; the call is held there
                await anyio.sleep(0.01)
            try:
                streams += [open_stream(served, "/mcp", session) for session in idle]
                closed = closed_streams(streams)
                async with mcp_client(served) as other:
                    released.append(await other.call_tool("chat", {"prompt": "release"}))
            finally:
                for sock in streams:
                    sock.close()

    assert closed == [1, 2], "the busy session's stream, the oldest, stayed"
    assert [result.is_error for result in released] == [False]
    [answer] = answers
    assert answer.status_code == 200
    assert '"isError":false' in answer.text.replace(" ", "")


def open_half_open(served: Served, count: int) -> list[socket.socket]:
    """`count` connections that send the start of a request head and never the rest."""
    port = int(served.root.rsplit(":", 1)[1])
    half_open: list[socket.socket] = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        half_open.append(sock)
    return half_open


@pytest.mark.slow
@pytest.mark.parametrize("transport", ["streamable-http"])
async def test_half_open_connections_are_dropped_and_real_clients_served_meanwhile(
    transport: HttpTransport, emulator: EmulatorHandle
) -> None:
    with serving(transport, emulator, http_header_seconds=1.0) as served:
        half_open = open_half_open(served, 300)
        async with mcp_client(served) as client:
            result = await client.call_tool("list_models", {"limit": 1})
        await anyio.sleep(1.5)
        closed = 0
        for sock in half_open:
            sock.settimeout(2)
            closed += ended(sock)
            sock.close()

    assert not result.is_error
    assert closed == len(half_open)


async def test_at_the_connection_bound_the_oldest_half_open_connection_makes_room(emulator: EmulatorHandle) -> None:
    # Head timeouts far away: only the connection bound closes anything here.
    with serving("streamable-http", emulator, http_connections=40, http_header_seconds=60.0) as served:
        half_open = open_half_open(served, 120)
        async with mcp_client(served) as client:
            result = await client.call_tool("list_models", {"limit": 1})
        try:
            readable, _, _ = select.select(half_open, [], [], 1.0)  # a closed connection reads as its end
            closed = [index for index, sock in enumerate(half_open) if sock in readable and ended(sock)]
        finally:
            for sock in half_open:
                sock.close()

    assert not result.is_error
    assert len(closed) >= 120 - 40
    assert closed == list(range(len(closed))), "the oldest went first"


def ended(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except OSError:  # reset: closed too
        return True


def test_the_connection_bound_stays_below_the_open_files_limit() -> None:
    import resource

    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    options = uvicorn_options(HttpConfig("streamable-http", bounds=Bounds(http_connections=10**6)))

    assert options["http"].max_connections == soft - RESERVED_FILES - ACCEPT_BACKLOG
    assert options["backlog"] == ACCEPT_BACKLOG


def test_a_flood_of_one_log_line_is_cut_to_the_rate_and_summarised() -> None:
    now = [0.0]
    limit = RateLimitFilter(5, clock=lambda: now[0])

    def record(message: str) -> logging.LogRecord:
        return logging.LogRecord("uvicorn.error", logging.WARNING, __file__, 1, message, None, None)

    passed = [limit.filter(record("Exceeded concurrency limit.")) for _ in range(1000)]
    other = limit.filter(record("another line"))
    now[0] = 1.5
    summary = record("Exceeded concurrency limit.")
    limit.filter(summary)

    assert sum(passed) == 5
    assert other
    assert summary.msg.startswith("(995 similar log lines dropped in the last second)")
