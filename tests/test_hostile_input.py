"""The hostile-input contract: every reader of upstream data yields a value or raises a `KymaError`.

Named cases first (each one crashed a tool before), then a Hypothesis property test that feeds
random status codes, headers and bodies through every client call and its readers.
"""

import gzip
import json
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kyma_mcp.catalog import Catalog
from kyma_mcp.errors import KymaError, RateLimitedError, UpstreamUnavailableError
from kyma_mcp.images.jobs import Job
from kyma_mcp.kyma.client import ByteBudget, KymaClient
from kyma_mcp.settings import Settings
from tests.conftest import FAST_TIMING

KEY = "ky-hostile-0123456789abcdef"
Reader = Callable[[KymaClient], Awaitable[object]]


def client_answering(response: Callable[[], httpx2.Response], **settings: Any) -> KymaClient:
    config = Settings.model_validate(
        {"api_key": KEY, "base_url": "https://kyma.test/v1", "max_retries": 0, "tier": 4, "timing": FAST_TIMING}
        | settings
    )
    return KymaClient(config, transport=httpx2.MockTransport(lambda _: response()))


async def read_chat(client: KymaClient) -> object:
    async with client.chat_stream({"model": "m", "messages": []}) as stream:
        return [chunk async for chunk in stream.chunks()]


async def read_catalog(client: KymaClient) -> object:
    return await Catalog(client.list_models, pricing=client.get_pricing).view()


async def read_job(client: KymaClient) -> object:
    return Job.parse(await client.get_job("6745a3c2e4b0f1a2b3c4d5e6"))


async def read_submit(client: KymaClient) -> object:
    return Job.parse(await client.submit_image({"model": "m", "prompt": "p", "idempotency_key": "k"}))


async def read_download(client: KymaClient) -> object:
    return await client.download("https://cdn.test/a.png", ByteBudget(1_048_576))


READERS: dict[str, Reader] = {
    "chat": read_chat,
    "catalog": read_catalog,
    "job": read_job,
    "submit": read_submit,
    "download": read_download,
    "limits": lambda client: client.get_auth_limits(),
    "balance": lambda client: client.get_balance(),
    "capabilities": lambda client: client.get_capabilities(),
    "tiers": lambda client: client.get_tiers(),
}


def outcome(reader: Reader, response: Callable[[], httpx2.Response]) -> object:
    """What `reader` made of the answer: its value, or the `KymaError` it raised (anything else fails)."""

    async def run() -> object:
        client = client_answering(response)
        try:
            with anyio.fail_after(10):
                return await reader(client)
        except KymaError as exc:
            return exc
        finally:
            await client.aclose()

    return anyio.run(run)


def answer(status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> httpx2.Response:
    """A response whose body is read (and decoded) by the client, not by the test."""
    raw = [(name.encode(), value.encode("latin-1")) for name, value in (headers or {}).items()]
    return httpx2.Response(status, headers=raw, stream=httpx2.ByteStream(body))


NESTED = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize("name", list(READERS))
@pytest.mark.parametrize(
    "response",
    [
        pytest.param(lambda: answer(200, NESTED), id="deeply-nested-json"),
        pytest.param(lambda: answer(200, b'{"data": [{"id": "x", "context_window": 1e999}]}'), id="inf"),
        pytest.param(lambda: answer(200, b"plain", {"content-encoding": "gzip"}), id="not-gzip"),
        pytest.param(
            lambda: answer(200, gzip.compress(b"x" * 100)[:20], {"content-encoding": "gzip"}),
            id="corrupt-gzip",
        ),
        pytest.param(lambda: httpx2.Response(429, headers={"retry-after": "inf"}), id="retry-after-inf"),
        pytest.param(
            lambda: httpx2.Response(503, headers={"retry-after": "Wed, 21 Oct 2099 07:28:00 -0000"}), id="date-0000"
        ),
        pytest.param(lambda: httpx2.Response(302, headers={"location": "https://login.test/"}), id="redirect"),
        pytest.param(lambda: httpx2.Response(200, html="<html><body>Sign in</body></html>"), id="html"),
        pytest.param(lambda: answer(200, b"", {"x-kyma-fallback-layer": "²"}), id="unicode-digit"),
    ],
)
def test_named_hostile_answers_give_a_value_or_a_word(name: str, response: Callable[[], httpx2.Response]) -> None:
    outcome(READERS[name], response)  # raises if anything but a value or a KymaError came out


def test_a_redirect_or_an_html_page_on_a_stream_is_reported_as_what_it_is() -> None:
    redirected = outcome(read_chat, lambda: httpx2.Response(302, headers={"location": "https://login.test/x?t=1"}))
    html = outcome(read_chat, lambda: httpx2.Response(200, html="<html><title>Sign in</title></html>"))

    assert isinstance(redirected, UpstreamUnavailableError)
    assert "302, a redirect to https://login.test/x, instead of an answer" in str(redirected)
    assert isinstance(html, UpstreamUnavailableError)
    assert "200 with text/html instead of an event stream" in str(html)
    assert "[DONE]" not in str(html) + str(redirected)


def test_retry_after_inf_is_a_rate_limit_word_not_an_overflow() -> None:
    limited = outcome(READERS["limits"], lambda: httpx2.Response(429, headers={"retry-after": "inf"}))

    assert isinstance(limited, RateLimitedError)
    assert "try again in a few seconds" in str(limited)


def test_the_catalog_falls_back_to_the_bundled_snapshot_on_an_unreadable_live_list() -> None:
    for body in (NESTED, b'{"data": [{"id": "x", "context_window": 1e999, "pricing": {"input_per_1m": 1e999}}]}'):
        view = outcome(read_catalog, lambda body=body: answer(200, body))
        assert getattr(view, "source", None) in ("bundled", "live"), view


HEADER_NAMES = st.sampled_from(
    [
        "content-type",
        "content-encoding",
        "content-length",
        "retry-after",
        "retry-after-ms",
        "location",
        "x-kyma-model",
        "x-kyma-fallback",
        "x-kyma-fallback-layer",
        "transfer-encoding",
    ]
)
HEADER_VALUES = st.one_of(
    st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=40),
    st.sampled_from(["gzip", "deflate", "br", "inf", "-1", "0", "nan", "1e309", "text/event-stream", "text/html"]),
    st.sampled_from(["Wed, 21 Oct 2015 07:28:00 -0000", "image/png", "http://x/", "//evil", "application/json"]),
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
BODIES = st.one_of(
    st.binary(max_size=2_000),
    JSON_VALUES.map(lambda value: json.dumps(value).encode()),
    st.dictionaries(
        st.sampled_from(["id", "status", "model", "output", "data", "error", "choices", "n", "urls"]),
        JSON_VALUES,
        max_size=6,
    ).map(lambda value: json.dumps(value).encode()),
    st.lists(JSON_VALUES.map(lambda value: b"data: " + json.dumps(value).encode()), max_size=5).map(
        lambda lines: b"\n\n".join([*lines, b"data: [DONE]"]) + b"\n\n"
    ),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    reader=st.sampled_from(list(READERS)),
    status=st.integers(min_value=100, max_value=599),
    headers=st.dictionaries(HEADER_NAMES, HEADER_VALUES, max_size=4),
    body=BODIES,
)
def test_any_answer_through_any_reader_gives_a_value_or_a_word(
    reader: str, status: int, headers: dict[str, str], body: bytes
) -> None:
    outcome(READERS[reader], lambda: answer(status, body, headers))
