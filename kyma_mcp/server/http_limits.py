"""HTTP transport limits: live sessions, open streams, slow request bodies, half-open connections.

- Sessions: at most `Bounds.http_sessions` live Streamable HTTP sessions. A new client at the
  bound closes the least recently used session that has no request in flight (by sending the
  SDK app the DELETE a client would send), so a flood of abandoned sessions never locks out
  a new client; only when every session is busy is the new one answered 503. The SDK also
  closes sessions idle for `Bounds.http_session_idle_seconds`.
- Streams: at most `Bounds.http_streams` server-to-client streams (GET /mcp, GET /sse) at once. A new
  stream at the bound closes the least recently active one (the one that has gone longest without
  sending its client an event, or being used by its session's requests), so a flood of idle streams
  never locks out a new client. A stream whose session has a request in flight goes last: an SSE
  client's responses travel on its stream, and losing it loses the session (a Streamable HTTP client
  just opens its GET stream again). The stream is closed as if its client had left, and its
  response then ended cleanly: the last chunk, then the connection closes.
- Stateless Streamable HTTP (`--stateless`): no session outlives its request, so the session bound
  caps requests in flight instead (each is a session of one request; more get 503), and GET is
  answered 405: a stateless server has nothing to send outside a request's own response, and an
  idle GET stream would hold a transport open for nothing.
- Bodies: each part of a request body must arrive within `Bounds.http_header_seconds`, or the
  request is treated as disconnected.
- Headers: `HeaderTimeoutProtocol` closes a connection that has not sent a whole request head
  within `Bounds.http_header_seconds` of connecting (uvicorn only times out idle keep-alives).
- Connections: over `Bounds.http_connections` (or the open-files limit less a reserve) the
  connection that has waited longest for its first request head is closed, so accept never
  runs out of descriptors.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import OrderedDict
from typing import Any, cast
from urllib.parse import parse_qs

import anyio
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from kyma_mcp.settings import Bounds

SESSION_HEADER = "mcp-session-id"
MAX_COUNTED_BODY_BYTES = 4 * 1024 * 1024
"""An SSE message body longer than this is not read for requests to count (the SDK refuses it: 413)."""
_ENDPOINT = re.compile(rb"^event: endpoint\r?\ndata: [^\r\n]*[?&]session_id=([0-9a-f]{32})")
"""The SSE transport's first event: where its client posts, naming the session."""
_RESPONSE = re.compile(
    rb'^event: message\r?\ndata: \{"jsonrpc":"2\.0","id":(?:-?[0-9]+|"(?:[^"\\]|\\.)*"),"(?:result|error)":'
)
"""An SSE event carrying a response, as the SDK writes it (`model_dump_json`: jsonrpc, id, then result or error)."""
DISCONNECT: Message = {"type": "http.disconnect"}


class _Stream:
    """One open server-to-client stream."""

    def __init__(self, session: str | None) -> None:
        self.session = session
        """Streamable HTTP: its `Mcp-Session-Id`; SSE: the session its endpoint event named."""
        self.active_at = time.monotonic()
        """When it last sent its client an event (or its session sent a request); its opening if never."""
        self.requests = 0
        """SSE: requests its client posted that no response event has answered yet."""
        self.in_session = 0
        """Streamable HTTP: 1 when the stream itself counts among its session's requests in flight."""
        self.closing = False
        self.complete = False
        self._parked: anyio.CancelScope | None = None

    def close(self) -> None:
        """Make its app see its client leave: a `receive` waiting now, or any later one, gets a disconnect."""
        self.closing = True
        if self._parked is not None:
            self._parked.cancel()

    def receive(self, receive: Receive) -> Receive:
        async def closable() -> Message:
            if self.closing:
                return DISCONNECT
            with anyio.CancelScope() as parked:
                self._parked = parked
                try:
                    return await receive()
                finally:
                    self._parked = None
            return DISCONNECT

        return closable


class TransportLimits:
    """ASGI middleware applying the session, stream and body bounds."""

    def __init__(self, app: ASGIApp, bounds: Bounds, *, sessions: bool, stateless: bool = False) -> None:
        self._app = app
        self._bounds = bounds
        self._track_sessions = sessions and not stateless
        self._stateless = stateless
        self._in_flight = 0
        """Stateless mode: requests being answered."""
        self._sessions: OrderedDict[str, int] = OrderedDict()
        """Session id → requests in flight, least recently used first."""
        self._streams: dict[_Stream, None] = {}
        """Streams whose response has begun, closing ones included until their app returns."""
        self._stream_of: dict[str, _Stream] = {}
        """Session id (Streamable HTTP header, or SSE) → its open stream."""
        self.evicted = 0
        self.streams_closed = 0

    @property
    def live_sessions(self) -> int:
        return len(self._sessions)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        receive = self._timed(receive)
        if self._stateless:
            await self._stateless_call(scope, receive, send)
            return
        if scope["method"] == "GET":
            await self._stream_call(scope, receive, send)
            return
        if scope["method"] == "POST" and (stream := self._sse_stream(scope)) is not None:
            stream.active_at = time.monotonic()
            receive = _counting_requests(receive, stream)
        await self._session_call(scope, receive, send)

    async def _stream_call(self, scope: Scope, receive: Receive, send: Send) -> None:
        stream = _Stream(Headers(scope=scope).get(SESSION_HEADER))
        if stream.session is not None:
            stream.in_session = int(stream.session in self._sessions)  # as `_session_call` counts it next
        try:
            await self._session_call(scope, stream.receive(receive), self._watched(stream, send))
            if stream.closing and not stream.complete:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            self._streams.pop(stream, None)
            if stream.session is not None and self._stream_of.get(stream.session) is stream:
                del self._stream_of[stream.session]

    def _opened(self, stream: _Stream) -> None:
        """A stream's response has begun (200): at the bound, first close the least recently active open
        stream, one whose session has a request in flight only when every stream has one. (A GET answered
        otherwise, 4xx, closes nothing.)"""
        open_streams = [other for other in self._streams if not other.closing]
        if len(open_streams) >= self._bounds.http_streams:
            oldest = min(open_streams, key=lambda other: (self._in_flight_on(other), other.active_at))
            oldest.close()
            self.streams_closed += 1
        self._streams[stream] = None
        if stream.session is not None:
            self._stream_of.setdefault(stream.session, stream)

    def _in_flight_on(self, stream: _Stream) -> bool:
        """Its session has a request in flight (SSE: unanswered; Streamable HTTP: a POST being answered)."""
        if stream.requests > 0:
            return True
        if stream.session is None:
            return False
        return self._sessions.get(stream.session, 0) - stream.in_session > 0

    def _watched(self, stream: _Stream, send: Send) -> Send:
        """`send`, noting the stream's events; once it is closing, what its app sends is dropped (as
        uvicorn drops it after a real disconnect) and the connection closes when the response ends."""

        async def watched(message: Message) -> None:
            if stream.closing:
                return
            if message["type"] == "http.response.start" and message["status"] == 200:
                if stream not in self._streams:  # the SSE app sends a second start once its client left
                    self._opened(stream)
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"connection"]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            elif message["type"] == "http.response.body":
                stream.complete = not message.get("more_body", False)
                body: bytes = message.get("body", b"")
                if body and not body.startswith(b":"):  # an event, not a keep-alive comment
                    self._noted(stream, body)
            await send(message)

        return watched

    def _noted(self, stream: _Stream, event: bytes) -> None:
        stream.active_at = time.monotonic()
        if stream.session is None and (endpoint := _ENDPOINT.match(event)):
            stream.session = endpoint.group(1).decode()
            self._stream_of[stream.session] = stream
        elif stream.requests > 0 and _RESPONSE.match(event):
            stream.requests -= 1

    def _sse_stream(self, scope: Scope) -> _Stream | None:
        """The open SSE stream of the session a POST /messages/?session_id=… is for."""
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        session = next(iter(query.get("session_id", [])), None)
        return None if self._track_sessions or session is None else self._stream_of.get(session)

    async def _stateless_call(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] == "GET":
            await _no_stream()(scope, receive, send)
            return
        if self._in_flight >= self._bounds.http_sessions:
            why = f"{self._in_flight} requests are in flight (KYMA_MAX_HTTP_SESSIONS, stateless mode)"
            await _busy(why)(scope, receive, send)
            return
        self._in_flight += 1
        try:
            await self._app(scope, receive, send)
        finally:
            self._in_flight -= 1

    async def _session_call(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._track_sessions:
            await self._app(scope, receive, send)
            return
        session = Headers(scope=scope).get(SESSION_HEADER)
        if session is None and scope["method"] == "POST" and not await self._room_for_one(scope):
            await _busy(f"all {len(self._sessions)} sessions are busy (KYMA_MAX_HTTP_SESSIONS)")(scope, receive, send)
            return
        if session is not None and session in self._sessions:
            self._sessions.move_to_end(session)
            self._sessions[session] += 1
            if scope["method"] == "POST" and (stream := self._stream_of.get(session)) is not None:
                stream.active_at = time.monotonic()

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start" and session is None:
                opened = Headers(raw=message.get("headers", [])).get(SESSION_HEADER)
                if opened and message["status"] < 400:
                    self._sessions[opened] = 0
            await send(message)

        try:
            await self._app(scope, receive, watch)
        finally:
            if session is not None and session in self._sessions:
                if scope["method"] == "DELETE":
                    del self._sessions[session]
                else:
                    self._sessions[session] -= 1

    async def _room_for_one(self, scope: Scope) -> bool:
        """Below the bound, or an idle session was closed to make room."""
        while len(self._sessions) >= self._bounds.http_sessions:
            idle = next((sid for sid, busy in self._sessions.items() if busy <= 0), None)
            if idle is None:
                return False
            del self._sessions[idle]
            self.evicted += 1
            await self._close(scope, idle)
        return True

    async def _close(self, scope: Scope, session: str) -> None:
        """End a session as its client would: DELETE with its id, through the SDK app."""
        headers = [(k, v) for k, v in scope["headers"] if k.lower() in (b"host", b"authorization")]
        delete: dict[str, Any] = dict(scope) | {
            "method": "DELETE",
            "headers": [*headers, (SESSION_HEADER.encode(), session.encode())],
            "query_string": b"",
        }

        async def no_body() -> Message:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def discard(_: Message) -> None:
            return None

        await self._app(delete, no_body, discard)

    def _timed(self, receive: Receive) -> Receive:
        """`receive`, where each part of the body must arrive in time; a stalled body reads as a disconnect."""
        done = False
        seconds = self._bounds.http_header_seconds

        async def timed() -> Message:
            nonlocal done
            if done:
                return await receive()
            with anyio.move_on_after(seconds):
                message = await receive()
                done = message["type"] != "http.request" or not message.get("more_body", False)
                return message
            done = True
            return {"type": "http.disconnect"}

        return timed


def _counting_requests(receive: Receive, stream: _Stream) -> Receive:
    """`receive` of an SSE message POST: once its whole body has arrived, and before the SDK passes it
    on, the requests in it count as in flight on `stream` (their responses are events on it)."""
    parts: list[bytes] = []
    size = 0

    async def counting() -> Message:
        nonlocal size
        message = await receive()
        if message["type"] == "http.request" and size <= MAX_COUNTED_BODY_BYTES:
            parts.append(message.get("body", b""))
            size += len(parts[-1])
            if not message.get("more_body", False) and size <= MAX_COUNTED_BODY_BYTES:
                stream.requests += _requests_in(b"".join(parts))
        return message

    return counting


def _requests_in(body: bytes) -> int:
    """JSON-RPC requests (a method and an id) in a message body; 0 when it is not JSON."""
    try:
        decoded: object = json.loads(body)
    except ValueError:
        return 0
    messages = cast(list[object], decoded) if isinstance(decoded, list) else [decoded]
    return sum(1 for message in messages if isinstance(message, dict) and "method" in message and "id" in message)


def _busy(why: str) -> JSONResponse:
    body = {"jsonrpc": "2.0", "id": None, "error": {"code": -32000, "message": f"Server busy: {why}; retry shortly."}}
    return JSONResponse(body, status_code=503, headers={"Retry-After": "5"})


def _no_stream() -> JSONResponse:
    body = {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": -32000, "message": "Method Not Allowed: this stateless server opens no GET stream; POST."},
    }
    return JSONResponse(body, status_code=405, headers={"Allow": "POST"})


class HeaderTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose first request head is not complete in time."""

    header_seconds: float = Bounds().http_header_seconds
    max_connections: int = Bounds().http_connections

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._opened_at = self.loop.time()
        self._head_timer: asyncio.TimerHandle | None = self.loop.call_later(self.header_seconds, self._too_slow)
        self._make_room()

    def _make_room(self) -> None:
        """Over `max_connections`, close the connection that has waited longest for its first request
        head (never one that sent a request), so the server keeps descriptors to accept new clients.

        Without this, a flood of half-open connections reaching the open-files limit makes every
        accept fail (EMFILE): no client is served, and asyncio logs thousands of errors a second.
        """
        connections = cast(set[object], self.server_state.connections)
        if len(connections) <= self.max_connections:
            return
        waiting = [
            other
            for other in connections
            if isinstance(other, HeaderTimeoutProtocol)
            and other is not self
            and not other._has_request()
            and not other.transport.is_closing()
        ]
        if waiting:
            min(waiting, key=lambda other: other._opened_at).transport.close()

    def handle_events(self) -> None:
        super().handle_events()
        if self._has_request() and self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)

    def _has_request(self) -> bool:
        """A request head has arrived (uvicorn types `cycle` as always set; it is None until then)."""
        return cast(object, self.cycle) is not None

    def _too_slow(self) -> None:
        self._head_timer = None
        if not self._has_request() and not self.transport.is_closing():
            self.transport.close()
