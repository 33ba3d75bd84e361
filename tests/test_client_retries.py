"""Retries: which failures are retried, Retry-After, the single deadline, and never paying twice."""

import json
from collections.abc import Callable, Iterator

import anyio
import httpx2
import pytest

from kyma_mcp.catalog import Catalog
from kyma_mcp.errors import (
    AuthInvalidError,
    InsufficientBalanceError,
    InvalidRequestError,
    KymaError,
    ModelNotFoundError,
    RateLimitedError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from kyma_mcp.kyma.client import KymaClient, retry_after_seconds
from kyma_mcp.settings import Settings
from tests.conftest import FAST_TIMING

pytestmark = pytest.mark.anyio

Step = httpx2.Response | Exception
STREAM_OK = 'data: {"choices":[{"delta":{"content":"ok"},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'


class ScriptedKyma:
    """A fake Kyma that answers each request with the next scripted step and records what it saw."""

    def __init__(self, steps: list[Step]) -> None:
        self._steps: Iterator[Step] = iter(steps)
        self.requests: list[httpx2.Request] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        if request.url.path.endswith("/auth/limits"):
            return httpx2.Response(200, json={"tier": 0, "rpm_limit": 30, "per_model_rpm": 25})
        self.requests.append(request)
        step = next(self._steps)
        if isinstance(step, Exception):
            raise step
        return step


def make_client(kyma: Callable[[httpx2.Request], httpx2.Response], **settings: object) -> KymaClient:
    defaults: dict[str, object] = {"api_key": "ky-canary-key-123456", "max_retries": 2, "timing": FAST_TIMING}
    config = Settings.model_validate(defaults | settings)
    return KymaClient(config, transport=httpx2.MockTransport(kyma))


def error(status: int, message: str = "nope", headers: dict[str, str] | None = None) -> httpx2.Response:
    return httpx2.Response(status, json={"error": {"message": message}}, headers=headers)


async def chat_once(client: KymaClient) -> str:
    async with client.chat_stream({"model": "qwen-3.6-plus", "messages": [{"role": "user", "content": "x"}]}) as s:
        return "".join([json.dumps(c) async for c in s.chunks()])


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504])
async def test_transient_statuses_are_retried_then_succeed(status: int) -> None:
    kyma = ScriptedKyma([error(status, headers={"Retry-After": "0"}), httpx2.Response(200, text=STREAM_OK)])

    with anyio.fail_after(5):
        assert "ok" in await chat_once(make_client(kyma))

    assert len(kyma.requests) == 2


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (400, InvalidRequestError),
        (401, AuthInvalidError),
        (402, InsufficientBalanceError),
        (404, ModelNotFoundError),
        (422, InvalidRequestError),
    ],
)
async def test_caller_errors_are_never_retried(status: int, expected: type[KymaError]) -> None:
    kyma = ScriptedKyma([error(status)])

    with pytest.raises(expected):
        await chat_once(make_client(kyma))

    assert len(kyma.requests) == 1


async def test_retries_stop_at_max_retries_and_say_so() -> None:
    kyma = ScriptedKyma([error(503)] * 3)

    with pytest.raises(UpstreamUnavailableError, match="retried 2 times"):
        await chat_once(make_client(kyma))

    assert len(kyma.requests) == 3


async def test_max_retries_zero_means_one_attempt() -> None:
    kyma = ScriptedKyma([error(503)])

    with pytest.raises(UpstreamUnavailableError):
        await chat_once(make_client(kyma, max_retries=0))

    assert len(kyma.requests) == 1


async def test_rate_limited_after_retries_names_the_limit_and_the_wait() -> None:
    kyma = ScriptedKyma([error(429, headers={"Retry-After": "0"})] * 3)

    with pytest.raises(RateLimitedError) as failed:
        await chat_once(make_client(kyma))

    text = str(failed.value)
    assert text.startswith("[rate_limited] Kyma allows 30 requests/min")
    assert "retried 2 times" in text


async def test_a_retry_after_past_the_deadline_is_not_waited_for() -> None:
    kyma = ScriptedKyma([error(429, headers={"Retry-After": "7"})])

    with anyio.fail_after(3), pytest.raises(RateLimitedError, match="try again in 7 s") as failed:
        await chat_once(make_client(kyma))

    assert failed.value.retry_after_seconds == 7
    assert len(kyma.requests) == 1


async def test_a_chat_is_not_resent_after_a_read_failure() -> None:
    kyma = ScriptedKyma([httpx2.ReadError("connection reset"), httpx2.Response(200, text=STREAM_OK)])

    with pytest.raises(UpstreamUnavailableError):
        await chat_once(make_client(kyma))

    assert len(kyma.requests) == 1


async def test_a_chat_is_resent_when_the_connection_never_opened() -> None:
    kyma = ScriptedKyma([httpx2.ConnectError("refused"), httpx2.Response(200, text=STREAM_OK)])

    assert "ok" in await chat_once(make_client(kyma))
    assert len(kyma.requests) == 2


async def test_a_get_is_retried_after_a_read_timeout() -> None:
    kyma = ScriptedKyma([httpx2.ReadTimeout("slow"), httpx2.Response(200, json={"data": [{"id": "m"}]})])

    assert (await make_client(kyma).list_models())["data"] == [{"id": "m"}]
    assert len(kyma.requests) == 2


async def test_a_timeout_that_persists_is_a_timeout_error() -> None:
    kyma = ScriptedKyma([httpx2.ReadTimeout("slow")] * 3)

    with pytest.raises(UpstreamTimeoutError, match="after 3 attempts"):
        await make_client(kyma).list_models()


async def test_a_key_echoed_in_an_error_body_is_scrubbed() -> None:
    kyma = ScriptedKyma([error(400, "bad key ky-canary-key-123456 in request")])

    with pytest.raises(InvalidRequestError) as failed:
        await chat_once(make_client(kyma))

    assert "canary" not in str(failed.value)


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after": "3"}, 3.0),
        # A past date, zero, negative, infinite or NaN is no usable hint: normal backoff applies.
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, None),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 -0000"}, None),
        ({"retry-after": "Wed, 21 Oct 2099 07:28:00 -0000"}, 86_400.0),
        ({"retry-after": "0"}, None),
        ({"retry-after": "-5"}, None),
        ({"retry-after": "inf"}, None),
        ({"retry-after": "nan"}, None),
        ({"retry-after-ms": "inf", "retry-after": "2"}, 2.0),
        ({"retry-after": "1e308"}, 86_400.0),
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_parsing(headers: dict[str, str], seconds: float | None) -> None:
    assert retry_after_seconds(httpx2.Headers(headers)) == seconds


async def test_an_image_submit_is_resent_with_the_same_idempotency_key() -> None:
    job = {"id": "f3a9c8b2e1d0a4b6c7d8e9f0", "object": "image.job", "status": "pending"}
    kyma = ScriptedKyma([httpx2.ReadError("reset after Kyma took the job"), httpx2.Response(200, json=job)])

    answer = await make_client(kyma).submit_image({"model": "flux-1.1-ultra", "prompt": "x", "idempotency_key": "k-1"})

    assert answer["id"] == job["id"]
    keys = [(r.headers["Idempotency-Key"], json.loads(r.content)["idempotency_key"]) for r in kyma.requests]
    assert keys == [("k-1", "k-1"), ("k-1", "k-1")]


def corrupt_gzip(status: int = 200, content_type: str = "application/json") -> httpx2.Response:
    """An answer that claims gzip but carries bytes no gzip decoder accepts."""
    return httpx2.Response(
        status,
        stream=httpx2.ByteStream(b"\x1f\x8bnot really gzip"),
        headers={"content-encoding": "gzip", "content-type": content_type},
    )


async def test_a_corrupt_gzip_model_list_lets_the_catalog_fall_back_to_the_snapshot() -> None:
    kyma = ScriptedKyma([corrupt_gzip() for _ in range(6)])
    client = make_client(kyma)

    with pytest.raises(UpstreamUnavailableError, match=r"could not be decoded \(DecodingError\)"):
        await client.list_models()
    view = await Catalog(client.list_models).view()

    assert view.source == "bundled"
    assert view.models


async def test_a_corrupt_gzip_stream_is_a_broken_stream() -> None:
    client = make_client(ScriptedKyma([corrupt_gzip(content_type="text/event-stream")]))

    async def read_all() -> None:
        async with client.chat_stream({"model": "qwen-3.6-plus", "messages": []}) as stream:
            async for _ in stream.chunks():
                pass

    with pytest.raises(UpstreamUnavailableError, match="broke off"):
        await read_all()


async def test_a_corrupt_gzip_error_body_still_maps_its_status() -> None:
    client = make_client(ScriptedKyma([corrupt_gzip(402)]), max_retries=0)

    with pytest.raises(InsufficientBalanceError):
        async with client.chat_stream({"model": "qwen-3.6-plus", "messages": []}):
            pass
