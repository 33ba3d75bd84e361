"""The Kyma HTTP client: the only module that talks to Kyma.

One pooled `httpx2.AsyncClient` per server, Bearer auth, per-request timeouts, and every
error answer mapped to a `KymaError` with the key scrubbed out of it.
"""

from __future__ import annotations

import functools
import math
import random
import re
import threading
from collections.abc import AsyncGenerator, Callable, Iterator, Mapping
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

import anyio
import httpx2

from kyma_mcp import __version__
from kyma_mcp.errors import (
    InvalidRequestError,
    KymaError,
    UpstreamUnavailableError,
    answer_broke_error,
    answer_too_large_error,
    bad_file_url_error,
    call_bytes_exceeded_error,
    download_broke_error,
    error_for_status,
    missing_key_error,
    no_job_error,
    no_model_list_error,
    not_an_event_stream_error,
    not_an_image_download_error,
    not_json_error,
    redact,
    redirect_not_https_error,
    redirected_answer_error,
    request_timeout_error,
    shorten_upstream,
    stream_broke_error,
    stream_error,
    stream_line_too_long_error,
    stream_unfinished_error,
    too_many_redirects_error,
    unreachable_error,
)
from kyma_mcp.kyma.decoding import ACCEPT_ENCODING, decoded
from kyma_mcp.kyma.pacing import Pacer
from kyma_mcp.kyma.tiers import TierLimits, account_limits, exhausted_for, header_limits, tier_limits
from kyma_mcp.kyma.wire import DECODER, ErrorEnvelope, JSONObject, as_object, finishes, parse
from kyma_mcp.progress import report_wait
from kyma_mcp.settings import Bounds, Settings, Timing

if TYPE_CHECKING:
    import ssl

_CONNECT_TIMEOUT_SECONDS = 5.0
MAX_DOWNLOAD_REDIRECTS = 3
_LAYER = re.compile(r"[0-9]{1,3}")


@dataclass(frozen=True)
class RouteInfo:
    """What Kyma's response headers say about how a request was served."""

    model_served: str | None
    alias: str | None
    fallback_used: bool
    fallback_layer: int | None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str], max_chars: int = Bounds().field_chars) -> RouteInfo:
        layer = headers.get("x-kyma-fallback-layer", "").strip()
        digits = _LAYER.fullmatch(layer) is not None
        return cls(
            model_served=clip(headers.get("x-kyma-model"), max_chars),
            alias=clip(headers.get("x-kyma-alias"), max_chars),
            fallback_used=headers.get("x-kyma-fallback", "").lower() == "true" or digits,
            fallback_layer=int(layer) if digits else None,
        )


def clip(value: str | None, max_chars: int) -> str | None:
    """A text field from Kyma as it may be echoed into a result: at most `max_chars`."""
    return value if value is None or len(value) <= max_chars else value[: max_chars - 1] + "…"


_DONE: JSONObject = {}
"""`_event` of `data: [DONE]`."""
_NOT_JSON: JSONObject = {}
"""`_event` of a data line that is not JSON."""


def _event(line: str) -> JSONObject | None:
    """A `data:` line's JSON object (None: JSON but not an object), `_DONE` or `_NOT_JSON`.

    Per streamed token, so the usual line (`data: {…}`, no other spaces around) is decoded where it
    lies, without copying the data out or scanning it for whitespace first; any other is read as
    the SSE format allows (spaces, tabs, `data:[DONE]`).
    """
    if line.startswith("data: {"):
        try:
            value, end = DECODER.raw_decode(line, 6)
        except (ValueError, RecursionError):  # RecursionError: nested too deeply to read
            return _NOT_JSON
        if end == len(line):
            return as_object(value)
    data = line[5:].strip()
    if data == "[DONE]":
        return _DONE
    value = parse(data)
    return _NOT_JSON if value is None else as_object(value)


class ChatStream:
    """An open streamed chat completion: its route headers and its parsed SSE chunks."""

    def __init__(self, response: httpx2.Response, secrets: tuple[str, ...], bounds: Bounds) -> None:
        self._response = response
        self._secrets = secrets
        self._bounds = bounds
        self.route = RouteInfo.from_headers(response.headers, bounds.field_chars)
        self.bytes_read = 0
        self.cut = False
        """True when reading stopped at `Bounds.stream_bytes`: what arrived is kept, the rest unread."""
        self.finished = False
        """A chunk carried a `finish_reason`: the reply is complete even if no `[DONE]` follows."""
        self._done = False

    async def chunks(self) -> AsyncGenerator[JSONObject]:
        """Each chunk of `batches`, one at a time."""
        async with aclosing(self.batches()) as batches:
            async for batch in batches:
                for chunk in batch:
                    yield chunk

    async def batches(self) -> AsyncGenerator[Iterator[JSONObject]]:
        """Yield the `chat.completion.chunk`s of each network read, in order, until `data: [DONE]`, a
        clean end after a `finish_reason` (`[DONE]` is not documented for Kyma), or the stream byte bound.

        A read at a time, not a chunk: one resumption of this generator per read rather than per
        token. Each batch is an iterator that parses its chunks as it is read, so only one parsed
        chunk is alive at a time (a list of them would survive the garbage collector's young
        generation and make it collect the whole heap more often); read each to its end, or stop.

        Raises (from the batches, or from this generator):
            KymaError: a `data: {"error": …}` event, with the word its status or type names.
            StreamBrokenError: the connection broke (or the body could not be decoded), the stream
                ended before a `finish_reason`, or a line was over the bound.
            UpstreamUnavailableError: the answer is not an event stream.
        """
        await self._check_content_type()
        try:
            blocks = self._line_blocks()
            async for lines in blocks:
                yield self._events(lines)
                if self._done:
                    async for _ in blocks:  # read the body to its end, or closing it drops the pooled connection
                        pass
                    return
        except (httpx2.TransportError, httpx2.DecodingError) as exc:  # DecodingError: e.g. a corrupt gzip body
            raise stream_broke_error(type(exc).__name__) from None
        if self.cut or self.finished:
            return
        raise stream_unfinished_error()

    def _events(self, lines: list[str]) -> Iterator[JSONObject]:
        """The chunks in one read's lines; sets `_done` at `data: [DONE]` (the lines after it are not read)."""
        for line in lines:
            if not line.startswith("data:"):
                continue
            event = _event(line)
            if event is None:
                continue
            if event is _DONE:
                self._done = True
                return
            if event is _NOT_JSON:
                raise stream_broke_error("a chunk that is not JSON")
            choices = event.get("choices")
            if not choices and event.get("error") is not None:
                raise stream_error(event["error"], self._secrets)
            if not self.finished and finishes(choices):
                self.finished = True
            yield event

    async def _line_blocks(self) -> AsyncGenerator[list[str]]:
        """The stream's complete lines, a network read's worth at a time, each at most `Bounds.sse_line_bytes`;
        ends early at `Bounds.stream_bytes`.

        A read is split at its last newline and decoded once: a newline byte never occurs inside a
        UTF-8 sequence, so decoding whole lines together gives what decoding each alone would.
        """
        pending = bytearray()
        async with aclosing(decoded(self._response)) as pieces:
            async for data in pieces:
                self.bytes_read += len(data)
                if self.bytes_read > self._bounds.stream_bytes:
                    self.cut = True
                    return
                last = data.rfind(b"\n")
                if last >= 0:
                    if pending:
                        pending += data[:last]
                        text = pending.decode("utf-8", "replace")
                        pending.clear()
                    else:
                        text = data[:last].decode("utf-8", "replace")
                    lines = text.split("\n")
                    if "\r" in text:
                        lines = [line.rstrip("\r") for line in lines]
                    pending += data[last + 1 :]
                    yield lines
                else:
                    pending += data
                if len(pending) > self._bounds.sse_line_bytes:
                    raise stream_line_too_long_error(self._bounds.sse_line_bytes)
        if pending:
            yield [pending.decode("utf-8", "replace")]

    async def _check_content_type(self) -> None:
        """A 200 that is not an event stream (an HTML page, a JSON object) is reported as what it is."""
        kind = self._response.headers.get("content-type", "").split(";")[0].strip().lower()
        if not kind.endswith(("html", "xml", "json")):
            return  # event streams, and the text/plain some proxies label them with
        body = await _read_prefix(self._response, self._bounds.error_bytes)
        said = redact(shorten_upstream(ErrorEnvelope.read(body).message), self._secrets)
        raise not_an_event_stream_error(self._response.status_code, clip(kind, 60) or kind, said)


Transport = httpx2.AsyncBaseTransport
"""What a `KymaClient` sends through (tests pass an in-memory one): named here so that code above
`kyma/` can pass one along without importing httpx2 (an import contract in pyproject.toml)."""


class KymaClient:
    """Async access to Kyma's REST API; raises only `KymaError`s."""

    def __init__(self, settings: Settings, *, transport: Transport | None = None) -> None:
        self._settings = settings
        self._key = settings.api_key.get_secret_value() if settings.api_key else ""
        self._secrets: tuple[str, ...] = (self._key,) if self._key else ()
        self._transport = transport
        self._pacer = Pacer(window_seconds=settings.rate_window_seconds)
        if settings.tier is not None:
            self._pacer.set_limits(tier_limits(settings.tier))
        self._without_stream_options = False
        self._limits_lock = anyio.Lock()
        self._limits_due = 0.0
        """anyio time at which `/auth/limits` is (re-)read; a failed read or a 429 brings it forward, with backoff."""
        self._limits_failures = 0
        self._limits_read_at: float | None = None
        self._made: httpx2.AsyncClient | None = None
        self._making = threading.Lock()

    @property
    def _http(self) -> httpx2.AsyncClient:
        """Made once, not at start-up: by `prepare` on a worker thread once the server serves, else by the
        first request (its TLS context loads the CA bundle: 30-50 ms on Linux)."""
        made = self._made
        if made is None:
            with self._making:  # `prepare`'s thread and the event loop may both ask first
                made = self._made = self._made or self._new_http()
        return made

    def prepare(self) -> None:
        """Make the HTTP client now (from a worker thread), so that the first call does not wait for it."""
        _ = self._http

    @property
    def prepared(self) -> bool:
        """Whether the HTTP client is made."""
        return self._made is not None

    def _new_http(self) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(
            base_url=self._settings.base_url + "/",
            transport=self._transport,
            verify=_tls_context(),
            timeout=httpx2.Timeout(self._settings.tool_timeout_seconds, connect=_CONNECT_TIMEOUT_SECONDS),
            limits=httpx2.Limits(max_connections=200, max_keepalive_connections=50),
            headers={
                "User-Agent": f"kyma-mcp/{__version__}",
                "X-Kyma-SDK": f"kyma-mcp/{__version__}",
                "Accept-Encoding": ACCEPT_ENCODING,  # only what `decoded` inflates, in bounded pieces
            },
        )

    async def aclose(self) -> None:
        if self._made is not None:
            await self._made.aclose()

    @property
    def secrets(self) -> tuple[str, ...]:
        return self._secrets

    @property
    def bounds(self) -> Bounds:
        return self._settings.bounds

    async def list_models(self) -> JSONObject:
        """The live catalog document (`data`, and on Kyma `aliases`) from `GET /models`, read up to
        `Bounds.catalog_bytes`, keeping at most `Bounds.catalog_models` entries.

        Public on Kyma, but the key is sent when set: other OpenAI-compatible gateways require it.
        """
        body = await self._get_json("models", auth=bool(self._key), max_bytes=self.bounds.catalog_bytes)
        if not isinstance(body.get("data"), list):
            raise no_model_list_error()
        body["data"] = body["data"][: self.bounds.catalog_models]
        return body

    async def get_pricing(self) -> JSONObject:
        """Kyma's public price list (`GET /pricing`, `text` and `media` rows), its source of truth for prices."""
        return await self._get_json("pricing", auth=bool(self._key), max_bytes=self.bounds.catalog_bytes)

    async def get_balance(self) -> JSONObject:
        return await self._get_json("credits/balance", auth=True)

    async def get_auth_limits(self) -> JSONObject:
        """The account's tier, limits and current use (`GET /auth/limits`, needs the key); pacing learns from it."""
        body = await self._get_json("auth/limits", auth=True)
        self.learn_limits(body)
        return body

    @property
    def limits(self) -> TierLimits:
        """The limits pacing applies now (unknown ones are not enforced locally)."""
        return self._pacer.limits

    def learn_limits(self, account: JSONObject) -> None:
        """Pace by what a `/auth/limits` answer says (KYMA_TIER, when set, wins)."""
        self._pacer.set_limits(account_limits(self._settings.tier, account))
        self._limits_read_at = anyio.current_time()
        self._limits_failures = 0
        self._limits_due = self._limits_read_at + LIMITS_REFRESH_SECONDS

    async def get_tiers(self) -> JSONObject:
        """Kyma's public tier ladder (`GET /limits/tiers`)."""
        return await self._get_json("limits/tiers", auth=False)

    async def get_capabilities(self) -> JSONObject | None:
        """Kyma's gateway overview (`GET /capabilities`, shape undocumented); `None` when it is not served.

        A bodiless GET is refused as an invalid request only when the path is unknown (404/405).
        """
        try:
            return await self._get_json("capabilities", auth=bool(self._key))
        except InvalidRequestError:
            return None

    async def submit_image(self, payload: JSONObject) -> JSONObject:
        """Start an image job (`POST /images/generations`, 202; 200 when its idempotency key is replayed).

        The key goes in the body (documented) and the `Idempotency-Key` header (Kyma's own client),
        which is what makes a retried submit safe.
        """
        request = self._build("POST", "images/generations", auth=True, json=payload)
        request.headers["Idempotency-Key"] = str(payload["idempotency_key"])
        # Not paced by RPM: Kyma limits media by running jobs (`ImageJobs` bounds those).
        response = await self._send(request, model=payload.get("model"), idempotent=True)
        return await self._json_object(response, self.bounds.json_bytes)

    async def get_job(self, job_id: str) -> JSONObject:
        """An image job's current state (`GET /jobs/{id}`).

        Raises:
            InvalidRequestError: Kyma knows no job with this id for this API key (404).
        """
        path = f"jobs/{quote(job_id, safe='')}"
        response = await self._send(self._build("GET", path, auth=True), model=None, not_found=no_job_error(job_id))
        return await self._json_object(response, self.bounds.json_bytes)

    async def download(self, url: str, budget: ByteBudget) -> bytes:
        """The image file at an absolute http(s) URL Kyma returned, at most `Bounds.download_bytes`
        and what is left of the call's `budget`.

        The API key is never sent: the file may live on another host. Redirects are followed at
        most `MAX_DOWNLOAD_REDIRECTS` times, and only to https or to the gateway's own host.

        Raises:
            UpstreamUnavailableError: not an http(s) URL, a redirect elsewhere, too large, not an
                image, or the transfer broke.
        """
        shown = shown_url(url)
        for hop in range(MAX_DOWNLOAD_REDIRECTS + 1):
            if hop and not self._may_redirect_to(url):
                raise redirect_not_https_error(shown_url(url))
            if urlsplit(url).scheme not in ("http", "https"):
                raise bad_file_url_error(shown_url(url))
            response = await self._send(self._build("GET", url, auth=False), model=None, redirects=True)
            try:
                if response.is_redirect:
                    url = str(response.url.join(response.headers.get("location", "")))
                    continue
                kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
                if kind and not kind.startswith(("image/", "application/octet-stream", "binary/")):
                    raise not_an_image_download_error(shown, clip(kind, 60) or kind)
                return await _read_capped(response, self.bounds.download_bytes, budget)
            except (httpx2.TransportError, httpx2.DecodingError) as exc:
                raise download_broke_error(shown, type(exc).__name__) from None
            finally:
                await response.aclose()
        raise too_many_redirects_error(shown, MAX_DOWNLOAD_REDIRECTS)

    def _may_redirect_to(self, url: str) -> bool:
        parts = urlsplit(url)
        return parts.scheme == "https" or parts.netloc == urlsplit(self._settings.base_url).netloc

    @asynccontextmanager
    async def chat_stream(self, payload: JSONObject) -> AsyncGenerator[ChatStream]:
        """Open a streamed `POST /chat/completions`; closing the block aborts the request.

        `stream_options` is not documented for Kyma: a 400 that names it is retried once without it,
        and it is left out of every later request of this client.
        """
        body: JSONObject = {**payload, "stream": True}
        if self._without_stream_options:
            body.pop("stream_options", None)
        try:
            response = await self._send(
                self._build("POST", "chat/completions", auth=True, json=body), model=body.get("model"), paced=True
            )
        except InvalidRequestError as exc:
            if "stream_options" not in body or not any(
                name in str(exc) for name in ("stream_options", "include_usage")
            ):
                raise
            self._without_stream_options = True
            body.pop("stream_options")
            request = self._build("POST", "chat/completions", auth=True, json=body)
            response = await self._send(request, model=body.get("model"), paced=True)
        try:
            yield ChatStream(response, self._secrets, self.bounds)
        finally:
            await response.aclose()

    async def _get_json(self, path: str, *, auth: bool, max_bytes: int | None = None) -> JSONObject:
        response = await self._send(self._build("GET", path, auth=auth), model=None)
        return await self._json_object(response, max_bytes or self.bounds.json_bytes)

    async def _json_object(self, response: httpx2.Response, max_bytes: int) -> JSONObject:
        """The JSON object a successful Kyma answer carries, read up to `max_bytes`."""
        what = f"{response.request.method} /{response.request.url.path.rsplit('/v1/', 1)[-1].lstrip('/')}"
        try:
            body = await _read_capped(response, max_bytes)
        except (httpx2.TransportError, httpx2.DecodingError) as exc:  # DecodingError: e.g. a corrupt gzip body
            raise answer_broke_error(what, type(exc).__name__) from None
        finally:
            await response.aclose()
        return parse_json_object(body, what)

    def _build(self, method: str, path: str, *, auth: bool, json: JSONObject | None = None) -> httpx2.Request:
        headers: dict[str, str] = {}
        if auth:
            if not self._key:
                raise missing_key_error(f"{method} /{path}")
            headers["Authorization"] = f"Bearer {self._key}"
        return self._http.build_request(method, path, json=json, headers=headers)

    async def _send(
        self,
        request: httpx2.Request,
        *,
        model: object,
        idempotent: bool | None = None,
        paced: bool = False,
        not_found: KymaError | None = None,
        redirects: bool = False,
    ) -> httpx2.Response:
        """Send a request with pacing and retries, all inside the caller's deadline.

        Retries connection failures, 408, 409, 429 and 5xx up to `max_retries` times, waiting as
        Kyma's Retry-After says or with jittered exponential backoff. A request that is not
        idempotent (a chat completion) is retried only when Kyma said it did not run it: a failed
        connection or one of those statuses, never after a response has started.

        A 404 is `not_found` when given (an unknown job), else `[model_not_found]` for `model`.
        The response is returned unread (the caller reads it within its bounds); a redirect is
        an error unless `redirects` (a download follows them itself).

        Raises:
            KymaError: the final failure, saying how often it was retried and when to try again.
        """
        model_id = model if isinstance(model, str) else None
        idempotent = request.method == "GET" if idempotent is None else idempotent
        deadline = anyio.current_effective_deadline()
        retried = 0
        while True:
            if paced:
                await self._pace(model_id, deadline)
            try:
                response = await self._http.send(request, stream=True)
            except httpx2.TransportError as exc:
                failure = self._transport_failure(request, exc, retryable=idempotent or isinstance(exc, _NOT_SENT))
            else:
                self._read_rate_headers(response.headers)
                if response.status_code < 300 or (response.status_code < 400 and redirects):
                    return response
                if response.status_code < 400:
                    await response.aclose()
                    raise self._redirect_error(response)
                failure = await self._status_failure(response, model_id, not_found)
            hinted = failure.retry_after
            wait = hinted if hinted is not None else _backoff_seconds(retried, self._settings.timing)
            out_of_tries = retried >= self._settings.max_retries or wait > MAX_RETRY_AFTER_SECONDS
            if not failure.retryable or out_of_tries or anyio.current_time() + wait > deadline:
                raise failure.describe(retried, wait if failure.retryable else failure.retry_after)
            await report_wait(
                f"{failure.word}: retrying in {wait:.1f} s (retry {retried + 1} of {self._settings.max_retries})"
            )
            await anyio.sleep(wait)
            retried += 1

    async def _status_failure(
        self, response: httpx2.Response, model: str | None, not_found: KymaError | None
    ) -> _Failure:
        try:
            body = await _read_prefix(response, self.bounds.error_bytes)
        except (httpx2.TransportError, httpx2.DecodingError):
            body = b""
        finally:
            await response.aclose()
        status = response.status_code
        hinted = retry_after_seconds(response.headers)
        if status == 429:
            if hinted:
                self._pacer.pause(min(hinted, MAX_RETRY_AFTER_SECONDS))
            self._limits_stale()
        envelope = ErrorEnvelope.read(body)  # read once per failure
        detail = redact(shorten_upstream(envelope.message), self._secrets)
        topup = envelope.cta_url

        def describe(retried: int, wait: float | None) -> KymaError:
            if status == 404 and not_found is not None:
                return not_found
            return error_for_status(
                status,
                detail,
                model=model if status == 404 else None,
                retry_after_seconds=wait,
                topup_url=topup,
                retried=retried,
                rate_limits=self._pacer.limits.label,
            )

        return _Failure(status in RETRYABLE_STATUSES, hinted, describe)

    def _redirect_error(self, response: httpx2.Response) -> UpstreamUnavailableError:
        where = shown_url(response.headers.get("location", "")) or "nowhere"
        base = shown_url(self._settings.base_url)
        return redirected_answer_error(response.status_code, redact(where, self._secrets), redact(base, self._secrets))

    def _transport_failure(self, request: httpx2.Request, exc: httpx2.TransportError, *, retryable: bool) -> _Failure:
        def describe(retried: int, wait: float | None) -> KymaError:
            del wait  # no server hint to pass on
            if isinstance(exc, httpx2.TimeoutException):
                return request_timeout_error(request.method, request.url.path, retried + 1)
            return unreachable_error(redact(self._settings.base_url, self._secrets), type(exc).__name__, retried + 1)

        return _Failure(retryable, None, describe)

    async def _pace(self, model: str | None, deadline: float) -> None:
        if self._settings.tier is None and self._key and anyio.current_time() >= self._limits_due:
            await self._read_limits()
        await self._pacer.acquire(model, deadline)

    async def _read_limits(self) -> None:
        """(Re-)read `/auth/limits` once for all waiting calls; a failure keeps what is known and backs off."""
        async with self._limits_lock:
            if anyio.current_time() < self._limits_due:
                return  # another call read them while this one waited
            try:
                with anyio.fail_after(LIMITS_READ_TIMEOUT_SECONDS):
                    await self.get_auth_limits()
            except (KymaError, TimeoutError):
                self._limits_failures += 1
                backoff = self._settings.timing.limits_retry_seconds * 2 ** (self._limits_failures - 1)
                self._limits_due = anyio.current_time() + min(backoff, LIMITS_REFRESH_SECONDS)

    def _limits_stale(self) -> None:
        """After a 429: read the limits again at the next call, but not sooner than
        `timing.limits_retry_seconds` after the last read."""
        earliest = (self._limits_read_at or 0.0) + self._settings.timing.limits_retry_seconds
        self._limits_due = min(self._limits_due, max(earliest, anyio.current_time()))

    def _read_rate_headers(self, headers: Mapping[str, str]) -> None:
        """Learn from rate-limit headers when a gateway sends them (Kyma documents none)."""
        if (learned := header_limits(self._pacer.limits, headers)) is not None:
            self._pacer.set_limits(learned)
        wait = exhausted_for(headers)
        if wait is not None and 0 < wait <= MAX_RETRY_AFTER_SECONDS:
            self._pacer.pause(wait)


LIMITS_REFRESH_SECONDS = 300.0
"""Known limits are re-read this often, so a tier bought mid-session is picked up."""
LIMITS_READ_TIMEOUT_SECONDS = 5.0


RETRYABLE_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER_SECONDS = 60.0
"""A longer Retry-After is not waited for: the agent is told when to come back instead."""
_NOT_SENT = (httpx2.ConnectError, httpx2.ConnectTimeout, httpx2.PoolTimeout)
"""Failures that prove the request never reached Kyma, so even a chat completion may be resent."""


@dataclass(frozen=True)
class _Failure:
    """One failed attempt: may it be retried, how long Kyma asked us to wait, and its final wording."""

    retryable: bool
    retry_after: float | None
    describe: Callable[[int, float | None], KymaError]

    @property
    def word(self) -> str:
        return self.describe(0, None).word


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """httpx's default TLS context (the system's CA bundle), made once per process: loading the bundle
    costs 20-50 ms of CPU, paid by every server a process builds (tests build about a thousand)."""
    return httpx2.create_ssl_context()


def _backoff_seconds(retried: int, timing: Timing) -> float:
    """0.5 s doubling to 8 s by default, minus up to 25% jitter (the openai/anthropic SDK schedule)."""
    base, most = timing.backoff_base_seconds, timing.backoff_max_seconds
    return min(base * 2**retried, most) * (1 - 0.25 * random.random())


MAX_RETRY_AFTER_HINT_SECONDS = 86_400.0
"""A hint longer than a day is read as a day (it is not waited for either way)."""


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asked us to wait: `retry-after-ms`, then `Retry-After` (seconds or HTTP date).

    None when there is no usable hint, so normal backoff applies: absent, unreadable, not finite,
    zero, negative, or a date in the past.
    """
    millis = _finite(headers.get("retry-after-ms"))
    if millis is not None:
        return _usable(millis / 1000)
    value = headers.get("retry-after", "").strip()
    if not value:
        return None
    seconds = _finite(value)
    if seconds is not None:
        return _usable(seconds)
    from datetime import UTC, datetime
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000" means UTC with no zone given (RFC 5322): the datetime is naive
        when = when.replace(tzinfo=UTC)
    return _usable((when - datetime.now(UTC)).total_seconds())


def _finite(text: str | None) -> float | None:
    try:
        value = float(text) if text else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def _usable(seconds: float) -> float | None:
    return min(seconds, MAX_RETRY_AFTER_HINT_SECONDS) if seconds > 0 else None


def parse_json_object(body: bytes, what: str) -> JSONObject:
    """The JSON object in `body`.

    Raises:
        UpstreamUnavailableError: not JSON (or nested too deeply to read), or not an object.
    """
    value = parse(body)
    parsed = as_object(value)
    if parsed is None:
        raise not_json_error(what, an_object=value is not None)
    return parsed


class ByteBudget:
    """What is left of a call's byte bound, shared by the downloads of one call."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.left = total


def shown_url(url: str) -> str:
    """An URL as it may be shown: no user:password, no query (signatures, tokens), at most 200 characters."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(an unreadable URL)"
    host = parts.hostname or ""
    if parts.port is not None:
        host += f":{parts.port}"
    shown = f"{parts.scheme}://{host}{parts.path}" if parts.scheme else url.split("?", 1)[0]
    return shown if len(shown) <= 200 else shown[:199] + "…"


def without_credentials(url: str) -> str:
    """An URL with any `user:password@` removed: what an agent may be shown and fetch itself."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return shown_url(url)
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]).geturl()


async def _read_capped(response: httpx2.Response, max_bytes: int, budget: ByteBudget | None = None) -> bytes:
    """The whole body of a streamed response, refusing one larger than `max_bytes`."""
    what = shown_url(str(response.url))
    too_large = answer_too_large_error(what, max_bytes)
    over_budget = call_bytes_exceeded_error(what, budget.total if budget else 0)
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and budget is not None and int(declared) > budget.left:
        raise over_budget
    if declared.isdigit() and int(declared) > max_bytes:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async with aclosing(decoded(response)) as pieces:
        async for chunk in pieces:
            size += len(chunk)
            if budget is not None:
                budget.left -= len(chunk)
                if budget.left < 0:
                    raise over_budget
            if size > max_bytes:
                raise too_large
            chunks.append(chunk)
    return b"".join(chunks)


async def _read_prefix(response: httpx2.Response, max_bytes: int) -> bytes:
    """At most the first `max_bytes` of a streamed body (an error's text: the rest is not needed)."""
    chunks: list[bytes] = []
    size = 0
    async with aclosing(decoded(response)) as pieces:
        async for chunk in pieces:
            chunks.append(chunk[: max_bytes - size])
            size += len(chunks[-1])
            if size >= max_bytes:
                break
    return b"".join(chunks)
