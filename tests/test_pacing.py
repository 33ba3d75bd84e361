"""The pacer spreads calls under the tier's limits, refuses early past a deadline, frees cancelled slots."""

import anyio
import pytest

from kyma_mcp.errors import RateLimitedError
from kyma_mcp.kyma.pacing import Pacer
from kyma_mcp.kyma.tiers import TierLimits
from kyma_mcp.progress import Progress, reporting

pytestmark = pytest.mark.anyio


def limits(rpm: int, per_model: int | None = None) -> TierLimits:
    return TierLimits(tier=0, rpm=rpm, per_model_rpm=per_model or rpm)


async def test_calls_within_the_limit_start_at_once() -> None:
    pacer = Pacer(limits(3), window_seconds=60)
    deadline = anyio.current_time() + 1
    with anyio.fail_after(0.5):
        for _ in range(3):
            await pacer.acquire("m", deadline)


async def test_a_call_that_would_wait_past_its_deadline_is_refused_with_the_wait() -> None:
    pacer = Pacer(limits(2), window_seconds=60)
    deadline = anyio.current_time() + 5
    await pacer.acquire("m", deadline)
    await pacer.acquire("m", deadline)

    with pytest.raises(RateLimitedError) as refused:
        await pacer.acquire("m", deadline)

    assert refused.value.retry_after_seconds == 60
    assert "30" not in str(refused.value)
    assert "2 requests/min" in str(refused.value)
    assert "Try again in 60 s" in str(refused.value)


async def test_per_model_limit_applies_only_to_that_model() -> None:
    pacer = Pacer(limits(10, per_model=1), window_seconds=60)
    deadline = anyio.current_time() + 1
    await pacer.acquire("a", deadline)
    await pacer.acquire("b", deadline)

    with pytest.raises(RateLimitedError):
        await pacer.acquire("a", deadline)


async def test_a_queued_call_waits_for_its_slot_and_reports_the_wait() -> None:
    pacer = Pacer(limits(1), window_seconds=0.2)
    messages: list[str] = []

    async def send(progress: float, total: float | None, message: str) -> None:
        del progress, total
        messages.append(message)

    deadline = anyio.current_time() + 5
    await pacer.acquire("m", deadline)
    with reporting(Progress(send)), anyio.fail_after(2):
        await pacer.acquire("m", deadline)

    assert len(messages) == 1
    assert "rate-limit slot" in messages[0]


async def test_a_cancelled_wait_gives_its_slot_back() -> None:
    pacer = Pacer(limits(1), window_seconds=0.3)
    far = anyio.current_time() + 10
    await pacer.acquire("m", far)

    with anyio.move_on_after(0.05):
        await pacer.acquire("m", far)  # queued for the next window, then cancelled

    # Had the cancelled call kept its slot, this one would land a full window later, past its deadline.
    with anyio.fail_after(2):
        await pacer.acquire("m", anyio.current_time() + 0.8)


async def test_a_429_pause_holds_every_call() -> None:
    pacer = Pacer(limits(100), window_seconds=60)
    pacer.pause(30)

    with pytest.raises(RateLimitedError) as refused:
        await pacer.acquire("m", anyio.current_time() + 1)

    assert refused.value.retry_after_seconds == 30
