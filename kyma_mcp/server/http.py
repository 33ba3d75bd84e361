"""Serving over HTTP: Streamable HTTP at /mcp, and the legacy SSE transport at /sse and /messages/.

Secure by default. A guard in front of either SDK app answers, in this order: a Host header
that is not allowed (421) or an Origin that is not allowed (403), using the SDK's own
DNS-rebinding check so it runs first and on every path; then OAuth discovery paths (404:
none is offered); then a missing or wrong bearer token (401) when a token is configured.
The SDK transports behind it cap request bodies (413) and repeat their Host/Origin check.

Stateless Streamable HTTP (`--stateless`, `KYMA_MCP_STATELESS=1`), for replicas behind a load
balancer without sticky sessions: no `Mcp-Session-Id` is issued and none is needed, each POST is
served on its own, so consecutive requests of one client may reach different replicas. What lasts
between requests lives in the store (threads, the image-job journal, the spend ledger): with
`KYMA_STORE_URL=postgresql://…` shared by the replicas, any of them continues any thread.
Clients of the 2026-07-28 protocol era are served per request in either mode; the flag matters
for clients of the older `initialize` era, which otherwise get a session bound to one replica.

The token is a static shared secret compared in constant time, not the SDK's OAuth
resource-server mode: that mode advertises an authorization server in its 401 challenge,
and kyma-mcp has none, so clients would go looking for one. The caller's Authorization
header is only compared, never stored or passed on: Kyma always gets the server's own key.
"""

from __future__ import annotations

import hmac
import socket
import sys
from typing import Any

import uvicorn
from mcp.server import MCPServer
from mcp.server.transport_security import (
    DEFAULT_MAX_REQUEST_BODY_SIZE,
    TransportSecurityMiddleware,
    TransportSecuritySettings,
)
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from kyma_mcp.http_config import HttpConfig
from kyma_mcp.server.http_limits import HeaderTimeoutProtocol, TransportLimits

LOOPBACK_HOSTS = ("127.0.0.1:*", "localhost:*", "[::1]:*")
"""Always accepted: a Host naming loopback cannot come from a DNS-rebinding page."""
LOOPBACK_ORIGINS = ("http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*")
MAX_REQUEST_BODY_BYTES = DEFAULT_MAX_REQUEST_BODY_SIZE
"""4 MiB: room for a long conversation or an inline image, not for a memory-exhaustion attempt."""
OAUTH_DISCOVERY_PREFIXES = ("/.well-known/oauth-", "/.well-known/openid-configuration")
SESSION_SLACK = 64
"""The SDK's own session cap sits just above ours: ours closes idle sessions, the SDK's is a backstop."""
KEEP_ALIVE_SECONDS = 5
"""An idle keep-alive connection is closed after this (uvicorn's default, set on purpose)."""
MAX_REQUEST_HEAD_BYTES = 16 * 1024
"""Request line and headers together (h11's default, set on purpose)."""
SHUTDOWN_GRACE_SECONDS = 3
RESERVED_FILES = 64
"""Descriptors kept back from client connections: upstream connections, the store, image files, logs."""
ACCEPT_BACKLOG = 128
"""The listen backlog, which is also how many connections asyncio accepts in one go before any of
them is seen (and the connection bound applied): kept back from the connection bound too."""
MAX_OPEN_FILES = 65_536
"""The soft open-files limit is raised towards the hard one, up to this."""
"""How long Ctrl-C waits for open streams (SSE connections never end on their own)."""


def build_app(server: MCPServer, config: HttpConfig) -> ASGIApp:
    """The ASGI app for `config.transport`, guarded; its lifespan starts the server's sessions."""
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=[*LOOPBACK_HOSTS, *config.allowed_hosts],
        allowed_origins=[*LOOPBACK_ORIGINS, *config.allowed_origins],
    )
    bounds = config.bounds
    if config.transport == "sse":
        app = server.sse_app(transport_security=security, max_request_body_size=MAX_REQUEST_BODY_BYTES)
    else:
        app = server.streamable_http_app(
            transport_security=security,
            max_request_body_size=MAX_REQUEST_BODY_BYTES,
            session_idle_timeout=bounds.http_session_idle_seconds,
            max_sessions=bounds.http_sessions + SESSION_SLACK,
            stateless_http=config.stateless,
        )
    limited = TransportLimits(app, bounds, sessions=config.transport == "streamable-http", stateless=config.stateless)
    return _RequestGuard(limited, security=security, token=config.token)


def serve(server: MCPServer, config: HttpConfig) -> None:
    """Serve until Ctrl-C or SIGTERM; uvicorn logs through `logging`, so to stderr and quietly."""
    raise_open_files_limit()
    uvicorn_config = uvicorn.Config(
        build_app(server, config), host=config.host, port=config.port, **uvicorn_options(config)
    )
    auth = "bearer token required" if config.token else "no token: loopback clients only"
    mode = ", stateless" if config.stateless else ""
    _AnnouncingServer(uvicorn_config, f"kyma-mcp: serving {config.transport}{mode} at {config.url} ({auth})").run()


def open_files_limit() -> int:
    """The soft limit on open files (a generous guess where there is none to read)."""
    try:
        import resource
    except ImportError:  # Windows: no such limit per process
        return MAX_OPEN_FILES
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return MAX_OPEN_FILES if soft == resource.RLIM_INFINITY else int(soft)


def raise_open_files_limit() -> None:
    """Raise the soft open-files limit towards the hard one (as Go's runtime and nginx do): a server
    on the common default of 1,024 runs out of descriptors at about 1,000 connections."""
    try:
        import resource
    except ImportError:
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = MAX_OPEN_FILES if hard == resource.RLIM_INFINITY else min(int(hard), MAX_OPEN_FILES)
    for wanted in (limit, 10_240):  # macOS refuses more than OPEN_MAX (10,240) when the hard limit is unlimited
        if soft != resource.RLIM_INFINITY and wanted > soft:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            except (ValueError, OSError):
                continue
        return


def uvicorn_options(config: HttpConfig) -> dict[str, Any]:
    """uvicorn's settings: quiet logs to stderr, and the timeouts that drop half-open connections."""
    connections = min(config.bounds.http_connections, open_files_limit() - RESERVED_FILES - ACCEPT_BACKLOG)
    protocol = type(
        "Protocol",
        (HeaderTimeoutProtocol,),
        {"header_seconds": config.bounds.http_header_seconds, "max_connections": max(connections, 16)},
    )
    return {
        "log_config": None,
        "access_log": False,
        "server_header": False,
        "ws": "none",
        "http": protocol,
        "backlog": ACCEPT_BACKLOG,
        "timeout_keep_alive": KEEP_ALIVE_SECONDS,
        "h11_max_incomplete_event_size": MAX_REQUEST_HEAD_BYTES,
        "timeout_graceful_shutdown": SHUTDOWN_GRACE_SECONDS,
    }


class _AnnouncingServer(uvicorn.Server):
    """uvicorn that writes one line to stderr once it listens, so people and scripts know when to connect."""

    def __init__(self, config: uvicorn.Config, announcement: str) -> None:
        super().__init__(config)
        self._announcement = announcement

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            sys.stderr.write(self._announcement + "\n")
            sys.stderr.flush()


def _no_oauth(path: str) -> Response | None:
    """404 for OAuth discovery (`/.well-known/oauth-protected-resource`, `oauth-authorization-server`,
    `openid-configuration`), token or not: no OAuth is offered, and a 401 there makes hosts report
    "Failed to connect" instead of the missing token (a 401 on /mcp itself says that)."""
    if path.startswith(OAUTH_DISCOVERY_PREFIXES):
        return JSONResponse({"error": "not_found", "error_description": "No OAuth here: send the bearer token."}, 404)
    return None


class _RequestGuard:
    """ASGI middleware: 421/403 for a foreign Host/Origin, 404 for OAuth discovery, then 401 without the
    right bearer token."""

    def __init__(self, app: ASGIApp, *, security: TransportSecuritySettings, token: str | None) -> None:
        self._app = app
        self._rebinding = TransportSecurityMiddleware(security)
        self._token = token.encode() if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refusal = (
                await self._rebinding.validate_request(Request(scope))
                or _no_oauth(scope["path"])
                or self._auth_refusal(Headers(scope=scope))
            )
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self._app(scope, receive, send)

    def _auth_refusal(self, headers: Headers) -> Response | None:
        if self._token is None:
            return None
        scheme, _, presented = headers.get("authorization", "").partition(" ")
        # Starlette decodes headers as latin-1; re-encoding gives back the bytes the client sent.
        if scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode("latin-1"), self._token):
            return None
        challenge = 'Bearer realm="kyma-mcp"' + (', error="invalid_token"' if presented else "")
        return JSONResponse(
            {"error": "invalid_token", "error_description": "Send 'Authorization: Bearer <the server's token>'."},
            status_code=401,
            headers={"WWW-Authenticate": challenge},
        )
