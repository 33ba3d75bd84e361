"""Load through one real stdio session: a burst at Tier 0 is paced, not lost; Tier 4 stays parallel."""

import os
import re
import sys

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.types import CallToolResult

from kyma_mcp.emulator import EmulatorHandle
from tests.conftest import TEST_KEY
from tests.results import text_of

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

CLEAN_RATE_LIMIT = re.compile(r"^\[rate_limited\] .*[Tt]ry again in \d+ s")


def stdio_server(base_url: str, **env: str) -> Client:
    environment = {**os.environ, "KYMA_BASE_URL": base_url, "KYMA_API_KEY": TEST_KEY, **env}
    return Client(StdioServerParameters(command=sys.executable, args=["-m", "kyma_mcp"], env=environment))


async def fire(client: Client, count: int) -> list[CallToolResult]:
    results: list[CallToolResult] = []

    async def one(n: int) -> None:
        results.append(await client.call_tool("chat", {"prompt": f"burst {n}"}))

    async with anyio.create_task_group() as group:
        for n in range(count):
            group.start_soon(one, n)
    return results


async def test_200_calls_at_tier_0_are_answered_or_told_when_to_retry(emulator: EmulatorHandle) -> None:
    emulator.switches.enforce_rate_limits = True
    emulator.switches.rate_window_seconds = 3
    emulator.switches.tier = 0

    with anyio.fail_after(60):
        env = {"KYMA_RATE_WINDOW_SECONDS": "3", "KYMA_TOOL_TIMEOUT_SECONDS": "6"}
        async with stdio_server(emulator.base_url, **env) as client:
            results = await fire(client, 200)

    answered = [r for r in results if not r.is_error]
    refused = [text_of(r) for r in results if r.is_error]
    assert len(results) == 200
    assert len(answered) >= 25  # at least one full window's worth got through
    unclear = [text for text in refused if not CLEAN_RATE_LIMIT.match(text)]
    assert unclear == []
    assert len(answered) + len(refused) == 200


async def test_100_concurrent_calls_at_tier_4_are_not_serialised(emulator: EmulatorHandle) -> None:
    """100 calls at once reach Kyma at once. The emulator holds each chat until 100 are held together,
    so a server that serialised the calls, or let fewer through at a time, would get no answer before
    its deadline. Structural, not timed: how fast a burst is answered is bench/'s concurrency figure."""
    env = {"KYMA_TIER": "4", "KYMA_TOOL_TIMEOUT_SECONDS": "20"}
    async with stdio_server(emulator.base_url, **env) as client:
        assert not (await client.call_tool("chat", {"prompt": "warm up"})).is_error
        emulator.switches.gather_chats = 100
        with anyio.fail_after(60):
            results = await fire(client, 100)

    assert [text_of(r) for r in results if r.is_error] == []
    assert emulator.state.requests["/v1/chat/completions"] == 101
