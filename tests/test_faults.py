"""Faults against the emulator: storms, bursts, slow first bytes, balance running out, and secrets.

The API key must never appear in a result, an error or a log line, even when Kyma echoes it back.
"""

import logging
from typing import Any

import anyio
import pytest
from mcp import MCPError
from mcp.types import CallToolResult, TextContent

from kyma_mcp.emulator import EmulatorHandle
from tests.conftest import BOTH_ERAS, ConnectFactory

pytestmark = pytest.mark.anyio

CANARY_KEY = "ky-canary-7f3a9b1c5d2e8f40"


def everything(result: CallToolResult) -> str:
    """All a host could show the model or a user: text blocks, structured content and the `_meta` facts."""
    texts = [block.text for block in result.content if isinstance(block, TextContent)]
    return "\n".join(texts) + repr(result.structured_content) + repr(result.meta)


async def test_a_429_storm_is_absorbed_by_retries(connect: ConnectFactory, emulator: EmulatorHandle) -> None:
    emulator.switches.fail_next = [429, 429]
    emulator.switches.retry_after_seconds = 0.1

    async with connect() as client:
        results = [await client.call_tool("chat", {"prompt": f"call {n}"}) for n in range(3)]

    assert not any(result.is_error for result in results)
    assert emulator.state.requests["/v1/chat/completions"] == 5


async def test_a_5xx_burst_longer_than_the_retries_is_reported_then_recovers(
    connect: ConnectFactory, emulator: EmulatorHandle
) -> None:
    emulator.switches.fail_next = [500, 502, 503, 504]
    emulator.switches.retry_after_seconds = 0

    async with connect(max_retries=2) as client:
        first = await client.call_tool("chat", {"prompt": "one"})
        second = await client.call_tool("chat", {"prompt": "two"})

    assert first.is_error
    assert everything(first).startswith("[upstream_unavailable]")
    assert "retried 2 times" in everything(first)
    assert not second.is_error


async def test_a_slow_first_byte_within_the_deadline_still_answers(
    connect: ConnectFactory, emulator: EmulatorHandle
) -> None:
    emulator.switches.first_byte_delay_ms = 700

    with anyio.fail_after(10):
        async with connect(tool_timeout_seconds=5) as client:
            result = await client.call_tool("chat", {"prompt": "slow start"})

    assert not result.is_error


async def test_a_slow_first_byte_past_the_deadline_is_a_timeout(
    connect: ConnectFactory, emulator: EmulatorHandle
) -> None:
    emulator.switches.first_byte_delay_ms = 3000

    with anyio.fail_after(10):
        async with connect(tool_timeout_seconds=1) as client:
            result = await client.call_tool("chat", {"prompt": "too slow"})

    assert everything(result).startswith("[timeout]")


async def test_balance_running_out_mid_session_turns_into_insufficient_balance(
    connect: ConnectFactory, emulator: EmulatorHandle
) -> None:
    emulator.switches.balance_usd = 0.0002

    async with connect() as client:
        outcomes = [await client.call_tool("chat", {"prompt": f"[[words=2000]] essay {n}"}) for n in range(4)]

    words = [everything(result)[:22] for result in outcomes]
    assert not outcomes[0].is_error
    assert outcomes[-1].is_error
    assert words[-1].startswith("[insufficient_balance]")


async def error_results(connect: ConnectFactory, emulator: EmulatorHandle) -> list[CallToolResult]:
    """Drive every error path kyma-mcp has while the emulator echoes the caller's key in its errors."""
    emulator.switches.echo_key_in_errors = True
    emulator.switches.retry_after_seconds = 0
    results: list[CallToolResult] = []
    async with connect(api_key=CANARY_KEY, max_retries=0) as client:
        for status in (400, 408, 409, 429, 500, 502, 503, 504):
            emulator.switches.fail_next = [status]
            results.append(await client.call_tool("chat", {"prompt": "hi"}))
        results.append(await client.call_tool("chat", {"prompt": "hi", "model": "no-such-model"}))
        results.append(await client.call_tool("chat", {"prompt": "hi", "model": "flux-1.1-ultra"}))
        emulator.switches.drop_stream_after_chunks = 3
        results.append(await client.call_tool("chat", {"prompt": "hi"}))
        emulator.switches.drop_stream_after_chunks = None
        emulator.switches.balance_usd = 0
        results.append(await client.call_tool("chat", {"prompt": "hi"}))
        results.append(await client.call_tool("list_models", {}))
        extra: list[tuple[str, dict[str, Any]]] = [
            ("generate_image", {"prompt": "a fox"}),
            ("get_image_job", {"job_id": "0123456789abcdef01234567"}),
            ("get_limits", {}),
        ]
        for name, arguments in extra:
            results.append(await client.call_tool(name, arguments))
    async with connect(api_key="kyma-" + CANARY_KEY[3:], base_url="http://127.0.0.1:9/v1") as client:
        results.append(await client.call_tool("chat", {"prompt": "unreachable"}))
    return results


@BOTH_ERAS
async def test_the_key_never_leaks_through_any_error_path(
    connect: ConnectFactory, emulator: EmulatorHandle, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    results = await error_results(connect, emulator)
    async with connect(api_key=CANARY_KEY) as client:
        resources = [await client.read_resource(uri) for uri in ("kyma://models", "kyma://guide")]
        with pytest.raises(MCPError) as missing:
            await client.read_resource("kyma://models/no-such-model")

    assert "canary" not in repr(resources) + str(missing.value)

    assert sum(result.is_error for result in results) >= 12
    for result in results:
        shown = everything(result)
        assert "canary" not in shown, shown
        assert shown.startswith("[") or not result.is_error, shown
    assert "canary" not in caplog.text
