"""The emulator as one Starlette app: routes, the error envelope, and the switches that act on every request."""

from __future__ import annotations

from collections.abc import Sequence

import anyio
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from kyma_mcp.emulator.account import AccountRoutes
from kyma_mcp.emulator.chat import ChatRoutes
from kyma_mcp.emulator.control import ControlRoutes
from kyma_mcp.emulator.dialects import serves
from kyma_mcp.emulator.errors import GatewayError, not_found
from kyma_mcp.emulator.images import ImageRoutes
from kyma_mcp.emulator.parsing import bearer_key
from kyma_mcp.emulator.public import PublicRoutes
from kyma_mcp.emulator.state import EmulatorState
from kyma_mcp.emulator.switches import Switches

_HANG_POLL_SECONDS = 0.05
_CHAT = "/v1/chat/completions"


def create_app(switches: Switches | None = None) -> Starlette:
    """A Kyma-compatible gateway app; `switches` is kept and read live (defaults: a healthy gateway)."""
    return build_app(EmulatorState(switches or Switches()))


def build_app(state: EmulatorState) -> Starlette:
    """The app over an existing state, which it also exposes as `app.state.emulator`."""
    routes = [
        *PublicRoutes(state).routes(),
        *AccountRoutes(state).routes(),
        *ChatRoutes(state).routes(),
        *ImageRoutes(state).routes(),
        *ControlRoutes(state).routes(),
    ]

    async def render_error(request: Request, exc: Exception) -> Response:
        error = exc if isinstance(exc, GatewayError) else _routing_error(request, exc)
        return error.response(key_to_echo=bearer_key(request) if state.switches.echo_key_in_errors else None)

    app = Starlette(
        routes=routes,
        middleware=[Middleware(GatewayMiddleware, state=state, routes=routes)],
        exception_handlers={GatewayError: render_error, HTTPException: render_error},
    )
    app.state.emulator = state
    return app


def _routing_error(request: Request, exc: Exception) -> GatewayError:
    """404/405 from the router, in the gateway's envelope."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if status == 404:
        return not_found(f"No such endpoint: {request.method} {request.url.path}")
    headers = dict(exc.headers or {}) if isinstance(exc, HTTPException) else {}
    return GatewayError(
        status,
        f"{request.method} is not allowed on {request.url.path}" if status == 405 else "Request failed.",
        type="invalid_request_error",
        code="method_not_allowed" if status == 405 else "invalid_request",
        headers=headers,
    )


class GatewayMiddleware:
    """Counts requests and, on /v1, applies `hang`, `latency_ms` and `gather_chats` before any handler runs."""

    def __init__(self, app: ASGIApp, *, state: EmulatorState, routes: Sequence[Route]) -> None:
        self._app = app
        self._state = state
        self._routes = routes
        self._gathering: anyio.Event | None = None
        self._gathered = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        path = str(scope["path"])
        template = self._template(scope, path)
        if not path.startswith("/_emulator/"):
            self._state.requests[template] += 1
        if not serves(self._state.switches.dialect, template):
            await not_found(f"No such endpoint: {scope['method']} {path}").response()(scope, receive, send)
            return
        if path.startswith("/v1/"):
            self._state.last_authorization = Headers(scope=scope).get("authorization")
            switches = self._state.switches
            if switches.hang:
                await self._hang(scope, receive, send)
                return
            if switches.latency_ms > 0:
                await anyio.sleep(switches.latency_ms / 1000)
            if switches.gather_chats > 0 and template == _CHAT and scope["method"] == "POST":
                await self._gather()
        await self._app(scope, receive, send)

    def _template(self, scope: Scope, path: str) -> str:
        """The route's path template, so `/v1/jobs/<id>` polls count under one key."""
        for route in self._routes:
            match, _ = route.matches(scope)
            if match is not Match.NONE:
                return route.path_format
        return path

    async def _gather(self) -> None:
        """Wait until `gather_chats` chats wait here together, then release them all (also when the
        switch is turned off or the server shuts down). One event loop serves the app: no lock needed."""
        if self._gathering is None:
            self._gathering, self._gathered = anyio.Event(), 0
        gathering = self._gathering
        self._gathered += 1
        if self._gathered >= self._state.switches.gather_chats:
            self._gathering = None
            gathering.set()
        while not gathering.is_set():
            if not self._state.switches.gather_chats or self._state.closing.is_set():
                if self._gathering is gathering:
                    self._gathering = None
                gathering.set()  # the whole group goes on
                break
            with anyio.move_on_after(_HANG_POLL_SECONDS):
                await gathering.wait()

    async def _hang(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Never answer: wait until the client gives up, or answer 503 when the server shuts down."""
        while not self._state.closing.is_set():
            with anyio.move_on_after(_HANG_POLL_SECONDS):
                if (await receive())["type"] == "http.disconnect":
                    return
        closing = GatewayError(503, "The emulator is shutting down.", type="api_error", code="upstream_error")
        await closing.response()(scope, receive, send)
