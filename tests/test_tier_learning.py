"""Pacing from what the account says, learned as it goes: one tier resolver, no local refusals on guesses."""

from collections.abc import Callable, Mapping

import anyio
import httpx2
import pytest

from kyma_mcp.errors import RateLimitedError
from kyma_mcp.kyma.client import KymaClient
from kyma_mcp.kyma.pacing import JobSlots
from kyma_mcp.kyma.tiers import account_limits, bundled_tiers, exhausted_for, header_limits, resolve_tier
from kyma_mcp.limits import shape_limits
from kyma_mcp.settings import Settings, Timing
from kyma_mcp.usage import SessionUsage

pytestmark = pytest.mark.anyio

STREAM_OK = 'data: {"choices":[{"delta":{"content":"ok"},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'
DOCUMENTED_LIMITS = {"rpm_limit": 120, "rpm_used": 3, "rpm_remaining": 117, "has_credits": True, "used_today": 42}
"""docs.kymaapi.com rate-limits page: no `tier`, no `per_model_rpm`."""
LADDER = [(row["tier"], row["rpm"]) for row in bundled_tiers()]


class Gateway:
    """A fake gateway: chat always answers; `/auth/limits` answers with `limits` (a status, or a body)."""

    def __init__(self, limits: int | Mapping[str, object], headers: dict[str, str] | None = None) -> None:
        self.limits = limits
        self.headers = headers or {}
        self.chats = 0
        self.limit_reads = 0
        self.submits = 0

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        path = request.url.path
        if path.endswith("/auth/limits"):
            self.limit_reads += 1
            if isinstance(self.limits, int):
                return httpx2.Response(self.limits, json={"error": {"message": "no such endpoint"}})
            return httpx2.Response(200, json=self.limits)
        if path.endswith("/images/generations"):
            self.submits += 1
            return httpx2.Response(202, json={"id": f"job{self.submits}", "status": "pending"})
        self.chats += 1
        return httpx2.Response(200, text=STREAM_OK, headers=self.headers)


def make_client(gateway: Callable[[httpx2.Request], httpx2.Response], **settings: object) -> KymaClient:
    config = Settings.model_validate({"api_key": "ky-test-key-123456", "max_retries": 0} | settings)
    return KymaClient(config, transport=httpx2.MockTransport(gateway))


async def chat(client: KymaClient, model: str = "m") -> None:
    async with client.chat_stream({"model": model, "messages": [{"role": "user", "content": "x"}]}) as stream:
        async for _ in stream.chunks():
            pass


def test_the_tier_is_matched_from_rpm_limit_when_the_body_has_none() -> None:
    limits = account_limits(None, DOCUMENTED_LIMITS)

    assert (limits.tier, limits.rpm, limits.per_model_rpm, limits.source) == (2, 120, 80, "rpm_limit")
    assert resolve_tier(None, [DOCUMENTED_LIMITS], LADDER) == (2, "rpm_limit")


def test_get_limits_and_the_pacer_name_the_same_tier() -> None:
    shaped = shape_limits(
        tiers={"tiers": bundled_tiers()},
        bundled_tiers=bundled_tiers(),
        account=DOCUMENTED_LIMITS,
        balance=None,
        capabilities=None,
        usage=SessionUsage(),
        configured_tier=None,
        has_key=True,
    )

    assert (shaped.tier, shaped.tier_from) == (account_limits(None, DOCUMENTED_LIMITS).tier, "rpm_limit")


def test_nothing_known_means_nothing_enforced() -> None:
    limits = account_limits(None, {"used_today": 3})

    assert (limits.tier, limits.rpm, limits.per_model_rpm) == (None, None, None)


async def test_without_a_limits_endpoint_every_call_is_sent() -> None:
    gateway = Gateway(404)
    client = make_client(gateway)

    with anyio.fail_after(10):
        for _ in range(100):
            await chat(client)

    assert gateway.chats == 100
    assert gateway.limit_reads == 1  # a failed read backs off: not re-read on every call


async def test_sixty_calls_on_tier_2_by_rpm_limit_are_all_sent() -> None:
    gateway = Gateway(DOCUMENTED_LIMITS)
    client = make_client(gateway)

    with anyio.fail_after(10):
        for _ in range(60):
            await chat(client)

    assert gateway.chats == 60
    assert client.limits.per_model_rpm == 80


async def test_a_failed_first_read_does_not_pin_the_limits() -> None:
    gateway = Gateway(503)
    client = make_client(gateway, timing=Timing(limits_retry_seconds=0))
    await chat(client)
    assert client.limits.rpm is None

    gateway.limits = DOCUMENTED_LIMITS
    await chat(client)

    assert (client.limits.tier, client.limits.rpm) == (2, 120)


async def test_a_429_makes_the_limits_be_read_again() -> None:
    answers = iter([httpx2.Response(429, json={"error": {"message": "slow down"}}, headers={"Retry-After": "0"})])
    gateway = Gateway(DOCUMENTED_LIMITS)

    def handler(request: httpx2.Request) -> httpx2.Response:
        if request.url.path.endswith("/chat/completions"):
            return next(answers, None) or gateway(request)
        return gateway(request)

    client = make_client(handler, max_retries=1, timing=Timing(limits_retry_seconds=0))
    await chat(client)
    await chat(client)

    assert gateway.limit_reads == 2


def test_rate_limit_headers_teach_the_limit_when_the_account_says_nothing() -> None:
    learned = header_limits(account_limits(None, None), {"x-ratelimit-limit-requests": "500"})

    assert learned is not None
    assert (learned.rpm, learned.source) == (500, "headers")
    assert header_limits(account_limits(None, DOCUMENTED_LIMITS), {"x-ratelimit-limit-requests": "500"}) is None
    assert exhausted_for({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1m30s"}) == 90
    assert exhausted_for({"x-ratelimit-remaining-requests": "3", "x-ratelimit-reset-requests": "1s"}) is None


async def test_rate_limit_headers_are_read_from_responses() -> None:
    gateway = Gateway(404, headers={"x-ratelimit-limit-requests": "7"})
    client = make_client(gateway)
    await chat(client)

    assert (client.limits.rpm, client.limits.source) == (7, "headers")


async def test_image_submits_are_not_paced_by_requests_per_minute() -> None:
    gateway = Gateway({"tier": 0, "rpm_limit": 30})
    client = make_client(gateway, tier=0)

    with anyio.fail_after(5):
        for number in range(40):
            await client.submit_image({"model": "recraft-v4", "prompt": "x", "idempotency_key": f"k{number}"})

    assert gateway.submits == 40


async def test_job_slots_bound_jobs_in_flight_and_free_on_finish() -> None:
    slots = JobSlots()
    deadline = anyio.current_time() + 5
    first = await slots.acquire(1, deadline)
    slots.started(first, "job-1")
    got: list[str] = []

    async def second() -> None:
        got.append(await slots.acquire(1, deadline))

    async with anyio.create_task_group() as group:
        group.start_soon(second)
        await anyio.sleep(0.05)
        assert got == []
        slots.release("job-1")
    assert len(got) == 1

    with pytest.raises(RateLimitedError, match="image jobs are already in flight"):
        await slots.acquire(1, anyio.current_time() + 0.2)
    assert await slots.acquire(None, deadline)  # an unknown bound bounds nothing
