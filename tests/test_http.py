"""The HTTP transports over real loopback HTTP: Streamable HTTP and SSE, their guards, and the start-up refusal."""

import asyncio
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncGenerator, Generator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
import uvicorn
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult

from kyma_mcp.emulator import EmulatorHandle
from kyma_mcp.http_config import HttpConfig, HttpTransport, is_loopback
from kyma_mcp.server import build_server
from kyma_mcp.server.http import MAX_REQUEST_BODY_BYTES, build_app
from kyma_mcp.settings import ConfigError, Settings
from tests.conftest import TEST_KEY, emulator_settings
from tests.results import structured

TOKEN = "caller-token-0123456789"
TLS = ssl.create_default_context()
"""Shared by the test clients: each would otherwise build its own (about 60 ms), for plain-http requests."""
TRANSPORTS: list[HttpTransport] = ["streamable-http", "sse"]
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}


@dataclass(frozen=True)
class Served:
    """A running kyma-mcp HTTP server."""

    transport: HttpTransport
    root: str


@contextmanager
def running(server: uvicorn.Server, sock: socket.socket) -> Generator[str]:
    """`server` serving `sock` in a thread until the block ends; yields its root URL once it has started."""
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert thread.is_alive(), "the HTTP server crashed at start-up"
            assert time.monotonic() < deadline, "the HTTP server did not start"
            time.sleep(0.005)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(5)
        sock.close()


@contextmanager
def serving(config: HttpConfig, settings: Settings) -> Generator[str]:
    """kyma-mcp's HTTP app under uvicorn on a free loopback port, in a thread; yields its root URL."""
    sock = socket.create_server(("127.0.0.1", 0))
    server = uvicorn.Server(
        uvicorn.Config(
            build_app(build_server(settings), config),
            log_config=None,
            access_log=False,
            ws="none",
            timeout_graceful_shutdown=1,
        )
    )
    with running(server, sock) as root:
        yield root


@asynccontextmanager
async def mcp_client(served: Served) -> AsyncGenerator[Client]:
    """An MCP client of `served`'s transport that sends the token."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    if served.transport == "sse":
        async with Client(sse_client(f"{served.root}/sse", headers=headers)) as client:
            yield client
        return
    async with (
        httpx2.AsyncClient(headers=headers, verify=TLS, timeout=httpx2.Timeout(30, read=60)) as http,
        Client(streamable_http_client(f"{served.root}/mcp", http_client=http)) as client,
    ):
        yield client


async def probe(served: Served, headers: dict[str, str]) -> httpx2.Response:
    """The transport's opening request (POST initialize to /mcp, GET /sse), answered or refused."""
    async with httpx2.AsyncClient(verify=TLS, timeout=10) as http:
        if served.transport == "sse":
            async with http.stream("GET", f"{served.root}/sse", headers=headers) as response:
                return response
        return await http.post(
            f"{served.root}/mcp", json=INITIALIZE, headers={"Accept": "application/json, text/event-stream", **headers}
        )


@pytest.fixture(scope="module", params=TRANSPORTS)
def guarded(request: pytest.FixtureRequest, shared_emulator: EmulatorHandle) -> Generator[Served]:
    """One server per transport, shared by the tests of this module: a token, and kyma.example.com allowed."""
    config = HttpConfig(
        request.param, token=TOKEN, allowed_hosts=("kyma.example.com",), allowed_origins=("https://kyma.example.com",)
    )
    with serving(config, emulator_settings(shared_emulator)) as root:
        yield Served(request.param, root)


def reply_of(result: CallToolResult) -> str:
    return structured(result)["reply"]


@pytest.mark.anyio
async def test_chat_streams_progress_to_an_http_client(guarded: Served, emulator: EmulatorHandle) -> None:
    emulator.switches.token_interval_ms = 10
    emulator.switches.reply_words = 10  # 0.1 s of streaming: progress goes out at most every 20 ms (FAST_TIMING)
    seen: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)

    with anyio.fail_after(20):
        async with mcp_client(guarded) as client:
            result = await client.call_tool("chat", {"prompt": "over http"}, progress_callback=on_progress)

    assert reply_of(result).startswith("Echo from qwen-3.6-plus: over http")
    assert len(seen) >= 2
    assert seen == sorted(set(seen))


@pytest.mark.anyio
async def test_the_callers_token_never_reaches_kyma(guarded: Served, emulator: EmulatorHandle) -> None:
    with anyio.fail_after(20):
        async with mcp_client(guarded) as client:
            reply_of(await client.call_tool("chat", {"prompt": "whose key?"}))

    assert emulator.state.last_authorization == f"Bearer {TEST_KEY}"


@pytest.mark.anyio
async def test_two_clients_at_once_get_their_own_answers(guarded: Served, emulator: EmulatorHandle) -> None:
    emulator.switches.token_interval_ms = 10  # both replies stream at the same time
    replies: dict[str, str] = {}

    async def ask(client: Client, prompt: str) -> None:
        replies[prompt] = reply_of(await client.call_tool("chat", {"prompt": prompt}))

    with anyio.fail_after(20):
        async with mcp_client(guarded) as first, mcp_client(guarded) as second, anyio.create_task_group() as group:
            group.start_soon(ask, first, "alpha question")
            group.start_soon(ask, second, "bravo question")

    assert replies["alpha question"].startswith("Echo from qwen-3.6-plus: alpha question")
    assert replies["bravo question"].startswith("Echo from qwen-3.6-plus: bravo question")


@pytest.mark.anyio
async def test_all_clients_of_one_server_share_its_limiter_cache_and_tally(guarded: Served) -> None:
    """SSE enters the server's lifespan per connection; its state must still be the server's, not the connection's."""

    async def list_models_calls(client: Client) -> int:
        result = await client.call_tool("get_limits", {})
        assert result.structured_content is not None
        return int(result.structured_content["session"]["calls"].get("list_models", 0))

    with anyio.fail_after(20):
        async with mcp_client(guarded) as first, mcp_client(guarded) as second:
            before = await list_models_calls(second)
            await first.call_tool("list_models", {"limit": 1})
            await first.call_tool("list_models", {"limit": 1})
            after = await list_models_calls(second)

    assert after - before == 2


AUTHORIZED = {"Authorization": f"Bearer {TOKEN}"}


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("headers", "status"),
    [
        pytest.param(AUTHORIZED, 200, id="right-token"),
        pytest.param({"Authorization": f"bearer {TOKEN}"}, 200, id="scheme-any-case"),
        pytest.param({}, 401, id="no-token"),
        pytest.param({"Authorization": "Bearer caller-token-0123456788"}, 401, id="wrong-token"),
        pytest.param({"Authorization": f"Basic {TOKEN}"}, 401, id="wrong-scheme"),
        pytest.param({**AUTHORIZED, "Origin": "http://localhost:6274"}, 200, id="loopback-origin"),
        pytest.param({**AUTHORIZED, "Origin": "https://evil.example"}, 403, id="foreign-origin"),
        pytest.param({**AUTHORIZED, "Host": "evil.example:80"}, 421, id="foreign-host"),
        pytest.param({"Origin": "https://evil.example"}, 403, id="origin-checked-before-token"),
        pytest.param({"Host": "evil.example"}, 421, id="host-checked-before-token"),
        pytest.param({**AUTHORIZED, "Host": "kyma.example.com", "Origin": "https://kyma.example.com"}, 200, id="list"),
        pytest.param({**AUTHORIZED, "Host": "kyma.example.com:8443"}, 421, id="listed-host-other-port"),
        pytest.param({**AUTHORIZED, "Origin": "http://kyma.example.com"}, 403, id="listed-origin-other-scheme"),
    ],
)
async def test_requests_are_refused_without_the_token_or_from_a_foreign_site(
    guarded: Served, headers: dict[str, str], status: int
) -> None:
    with anyio.fail_after(10):
        response = await probe(guarded, headers)

    assert response.status_code == status
    if status == 401:
        assert response.headers["www-authenticate"].startswith('Bearer realm="kyma-mcp"')


OAUTH_DISCOVERY = (
    "/.well-known/oauth-protected-resource",
    "/.well-known/oauth-protected-resource/mcp",
    "/.well-known/oauth-authorization-server",
    "/.well-known/openid-configuration",
)


@pytest.mark.anyio
@pytest.mark.parametrize("path", OAUTH_DISCOVERY)
@pytest.mark.parametrize("headers", [{}, AUTHORIZED], ids=["no-token", "token"])
async def test_oauth_discovery_is_not_found_so_hosts_report_the_token_not_a_failed_connection(
    guarded: Served, path: str, headers: dict[str, str]
) -> None:
    async with httpx2.AsyncClient(verify=TLS, timeout=10) as http:
        with anyio.fail_after(10):
            discovery = await http.get(guarded.root + path, headers=headers)
            foreign = await http.get(guarded.root + path, headers={"Host": "evil.example"})

    assert discovery.status_code == 404
    assert "www-authenticate" not in discovery.headers
    assert foreign.status_code == 421


@pytest.mark.anyio
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_without_a_token_loopback_clients_need_none(transport: HttpTransport, emulator: EmulatorHandle) -> None:
    with serving(HttpConfig(transport), emulator_settings(emulator)) as root:
        with anyio.fail_after(10):
            assert (await probe(Served(transport, root), {})).status_code == 200
            assert (await probe(Served(transport, root), {"Origin": "https://evil.example"})).status_code == 403


@pytest.mark.anyio
async def test_an_oversized_body_gets_413(guarded: Served) -> None:
    path = "/mcp" if guarded.transport == "streamable-http" else f"/messages/?session_id={uuid.uuid4().hex}"
    headers = {**AUTHORIZED, "Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    async with httpx2.AsyncClient(verify=TLS, timeout=10) as http:
        with anyio.fail_after(10):
            too_big = await http.post(guarded.root + path, content=b" " * (MAX_REQUEST_BODY_BYTES + 1), headers=headers)
            at_limit = await http.post(guarded.root + path, content=b" " * MAX_REQUEST_BODY_BYTES, headers=headers)

    assert too_big.status_code == 413
    assert at_limit.status_code in (400, 404)  # read and parsed (not JSON-RPC; no such SSE session), not refused


# --- configuration: what may start, and with what ---


def config_of(host: str, env: dict[str, str] | None = None, **options: Any) -> HttpConfig:
    defaults: dict[str, Any] = {"transport": "streamable-http", "host": host, "port": 8000}
    return HttpConfig.from_settings(Settings.from_env(env or {}), **(defaults | options))


@pytest.mark.parametrize(
    ("env", "missing"),
    [
        ({}, ["KYMA_MCP_AUTH_TOKEN", "--allowed-hosts"]),
        ({"KYMA_MCP_AUTH_TOKEN": TOKEN}, ["--allowed-hosts"]),
        ({"KYMA_MCP_ALLOWED_HOSTS": "kyma.example.com"}, ["KYMA_MCP_AUTH_TOKEN"]),
    ],
)
def test_a_non_loopback_host_needs_a_token_and_a_host_allowlist(env: dict[str, str], missing: list[str]) -> None:
    with pytest.raises(ConfigError) as refused:
        config_of("0.0.0.0", env)

    assert all(name in str(refused.value) for name in missing)
    assert TOKEN not in str(refused.value)


def test_a_non_loopback_host_starts_with_both() -> None:
    env = {"KYMA_MCP_AUTH_TOKEN": TOKEN, "KYMA_MCP_ALLOWED_HOSTS": "kyma.example.com, kyma.example.com:8443"}

    config = config_of("0.0.0.0", env)

    assert config.token == TOKEN
    assert config.allowed_hosts == ("kyma.example.com", "kyma.example.com:8443")
    assert TOKEN not in repr(config)


def test_command_line_values_win_over_the_environment(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("from-the-file-0123456789\n")
    env = {"KYMA_MCP_AUTH_TOKEN": TOKEN, "KYMA_MCP_ALLOWED_ORIGINS": "https://a.example"}

    config = config_of("127.0.0.1", env, token_file=token_file, allowed_origins=("https://b.example",))

    assert config.token == "from-the-file-0123456789"
    assert config.allowed_origins == ("https://b.example",)


@pytest.mark.parametrize(
    ("options", "complaint"),
    [
        ({"port": 70000}, "not a TCP port"),
        ({"port": 0}, "not a TCP port"),
        ({"token_file": Path("/nonexistent/token")}, "cannot read it"),
        ({"allowed_hosts": ("https://kyma.example.com",)}, "allowed host"),
        ({"allowed_hosts": ("kyma.example.com/mcp",)}, "allowed host"),
        ({"allowed_origins": ("kyma.example.com",)}, "allowed origin"),
        ({"allowed_origins": ("https://kyma.example.com/",)}, "allowed origin"),
    ],
)
def test_malformed_options_are_refused(options: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ConfigError, match=complaint):
        config_of("127.0.0.1", **options)


def test_a_short_or_empty_token_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")

    with pytest.raises(ConfigError, match="shorter than 16"):
        config_of("127.0.0.1", {"KYMA_MCP_AUTH_TOKEN": "short"})
    with pytest.raises(ConfigError, match="is empty"):
        config_of("127.0.0.1", token_file=empty)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.20", False),
        ("kyma.example.com", False),
    ],
)
def test_what_counts_as_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


# --- the real command ---


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kyma_mcp", *args],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **(env or {})},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_the_command_refuses_an_exposed_unprotected_server(transport: str) -> None:
    done = run_cli("--transport", transport, "--host", "0.0.0.0", env={"KYMA_MCP_AUTH_TOKEN": TOKEN})

    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        "kyma-mcp: refusing to listen on non-loopback host 0.0.0.0: "
        "it needs --allowed-hosts (KYMA_MCP_ALLOWED_HOSTS); or use --host 127.0.0.1"
    ]


@pytest.mark.anyio
async def test_the_command_serves_streamable_http(tmp_path: Path, emulator: EmulatorHandle) -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe_socket:
        port = probe_socket.getsockname()[1]
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "KYMA_API_KEY": TEST_KEY,
        "KYMA_BASE_URL": emulator.base_url,
    }
    command = [sys.executable, "-m", "kyma_mcp", "--transport", "streamable-http", "--port", str(port)]
    async with await anyio.open_process([*command, "--auth-token-file", str(token_file)], env=env) as process:
        try:
            with anyio.fail_after(20):
                assert process.stderr is not None
                stderr = ""
                while "kyma-mcp: serving" not in stderr:  # written once it listens
                    stderr += (await process.stderr.receive()).decode()
                async with mcp_client(Served("streamable-http", f"http://127.0.0.1:{port}")) as client:
                    names = {tool.name for tool in (await client.list_tools()).tools}
        finally:
            process.terminate()
        with anyio.fail_after(10):
            assert await process.wait() == 0

    assert f"kyma-mcp: serving streamable-http at http://127.0.0.1:{port}/mcp (bearer token required)" in stderr
    assert {"chat", "list_models"} <= names
