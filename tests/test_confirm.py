"""KYMA_CONFIRM_ABOVE_USD: the user is asked (elicitation) where the client can be, else the agent gets a token.

Every path runs through the SDK's in-memory client in both protocol eras (`BOTH_ERAS`): on
2026-07-28 the question rides an InputRequiredResult round trip, on the handshake era an
`elicitation/create` request mid-call.
"""

import re
import sqlite3
from pathlib import Path
from typing import Any, Literal

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.session import ClientRequestContext
from mcp.client.streamable_http import streamable_http_client
from mcp.types import ElicitRequestFormParams, ElicitRequestParams, ElicitResult

from kyma_mcp.emulator import EmulatorHandle
from kyma_mcp.http_config import HttpConfig
from kyma_mcp.server.confirm import TOKEN_SECONDS, Confirmations
from kyma_mcp.settings import Settings
from kyma_mcp.store import StoreHandle
from tests.conftest import BOTH_ERAS, FAST_TIMING, ConnectFactory, emulator_settings
from tests.results import error_text, structured, text_of
from tests.test_http import TLS, serving

pytestmark = pytest.mark.anyio

CHAT = "/v1/chat/completions"
PROMPT = {"prompt": "hi", "model": "qwen-3.6-plus", "max_tokens": 1000}
"""Estimated at about $0.0039 (5 input and 1,000 output tokens at qwen-3.6-plus's prices)."""
ABOVE = {"confirm_above_usd": 0.001}
Action = Literal["accept", "decline", "cancel"]
TOKEN = re.compile(r'confirm="([0-9a-f]{16})"')
STATELESS_TOKEN = "caller-token-0123456789"


class User:
    """An elicitation callback that answers as told and remembers what it was asked."""

    def __init__(self, action: Action | None, content: dict[str, Any] | None = None) -> None:
        """`action` None: never answer."""
        self.action: Action | None = action
        self.content = content
        self.asked: list[ElicitRequestParams] = []

    async def __call__(self, context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        self.asked.append(params)
        action = self.action
        if action is None:
            await anyio.sleep_forever()
            raise AssertionError("cancelled before")
        return ElicitResult(action=action, content=self.content)


@BOTH_ERAS
async def test_the_user_who_accepts_lets_the_call_through(connect: ConnectFactory, emulator: EmulatorHandle) -> None:
    user = User("accept", {"confirm": True})
    async with connect(elicitation_callback=user, **ABOVE) as client:
        result = await client.call_tool("chat", {**PROMPT, "max_cost_usd": 0.5})

    assert structured(result)["reply"].startswith("Echo from qwen-3.6-plus")
    assert emulator.state.requests[CHAT] == 1
    [asked] = user.asked
    assert isinstance(asked, ElicitRequestFormParams)
    assert "qwen-3.6-plus" in asked.message  # the model, the estimate, the threshold and the cap
    assert "≈ $0.0039" in asked.message
    assert "KYMA_CONFIRM_ABOVE_USD $0.0010" in asked.message
    assert "max_cost_usd $0.5000" in asked.message
    assert asked.requested_schema["properties"]["confirm"]["type"] == "boolean"


@pytest.mark.parametrize(
    ("action", "content"),
    [("decline", None), ("cancel", None), ("accept", {"confirm": False})],
    ids=["decline", "cancel", "accept-but-no"],
)
@BOTH_ERAS
async def test_the_user_who_declines_stops_the_call_before_anything_is_sent(
    connect: ConnectFactory, emulator: EmulatorHandle, action: Action, content: dict[str, Any] | None
) -> None:
    user = User(action, content)
    async with connect(elicitation_callback=user, **ABOVE) as client:
        result = await client.call_tool("chat", PROMPT)

    text = error_text(result)
    assert text.startswith("[budget_exceeded] Nothing was sent: the user declined this call (qwen-3.6-plus")
    assert len(user.asked) == 1
    assert emulator.state.requests[CHAT] == 0


@pytest.mark.parametrize("era", ["legacy"])
async def test_no_answer_in_time_counts_as_declined(connect: ConnectFactory, emulator: EmulatorHandle) -> None:
    """Legacy era only: on 2026-07-28 the server does not wait for an answer (it returns the question and
    the client calls again), so a client that never answers simply never calls again."""
    user = User(None)
    async with connect(elicitation_callback=user, tool_timeout_seconds=0.5, **ABOVE) as client:
        result = await client.call_tool("chat", PROMPT)

    assert "the user declined" in error_text(result)
    assert emulator.state.requests[CHAT] == 0


@BOTH_ERAS
async def test_a_client_without_elicitation_gets_a_one_time_token_for_the_same_call(
    connect: ConnectFactory, emulator: EmulatorHandle
) -> None:
    async with connect(**ABOVE) as client:
        refused = await client.call_tool("chat", PROMPT)
        token = TOKEN.search(error_text(refused))
        assert token is not None, text_of(refused)
        other = await client.call_tool("chat", {**PROMPT, "prompt": "something else", "confirm": token[1]})
        sent = await client.call_tool("chat", {**PROMPT, "confirm": token[1]})
        again = await client.call_tool("chat", {**PROMPT, "confirm": token[1]})

    text = error_text(refused)
    assert text.startswith("[budget_exceeded] This call's estimate is above KYMA_CONFIRM_ABOVE_USD $0.0010:")
    assert "qwen-3.6-plus: ~5 input + 1,000 output tokens, ≈ $0.0039" in text
    assert "Ask the user" in text
    assert "is unknown, used, expired or for other arguments" in error_text(other)  # bound to the call
    assert structured(sent)["reply"].startswith("Echo from")
    assert "is unknown, used, expired" in error_text(again)  # good once
    assert TOKEN.search(error_text(again)) is not None  # with a fresh token
    assert emulator.state.requests[CHAT] == 1


@BOTH_ERAS
async def test_under_the_threshold_nobody_is_asked(connect: ConnectFactory, emulator: EmulatorHandle) -> None:
    user = User("decline")
    async with connect(elicitation_callback=user, confirm_above_usd=1.0) as client:
        result = await client.call_tool("chat", PROMPT)
        dry = await client.call_tool("chat", {**PROMPT, "dry_run": True, "max_tokens": 1_000_000})

    assert structured(result)["reply"].startswith("Echo from")
    assert not dry.is_error
    assert user.asked == []


@BOTH_ERAS
async def test_images_and_compare_ask_too(connect: ConnectFactory, emulator: EmulatorHandle, tmp_path: Path) -> None:
    emulator.switches.image_delay_seconds = 0
    user = User("decline")
    async with connect(elicitation_callback=user, output_dir=tmp_path, **ABOVE) as client:
        image = await client.call_tool("generate_image", {"prompt": "a red fox", "n": 2})
        compared = await client.call_tool("compare", {"prompt": "hi", "models": ["qwen-3.6-plus", "kimi-k2.6"]})

    assert "the user declined" in error_text(image)
    assert "the user declined" in error_text(compared)
    assert "2 images" in user.asked[0].message
    assert "compare" in user.asked[1].message
    assert emulator.state.requests[CHAT] == 0
    assert emulator.state.requests["/v1/images/generations"] == 0


@pytest.mark.parametrize("shared", [True, False], ids=["in the store", "in memory"])
async def test_a_token_is_good_once_for_its_call_until_it_expires(shared: bool, store_url: str) -> None:
    now = [1_000_000.0]
    handle = StoreHandle(Settings.model_validate({"store_url": store_url})) if shared else None
    tokens = Confirmations(handle, clock=lambda: now[0])
    late, fresh = await tokens.issue("call"), await tokens.issue("call")

    now[0] += TOKEN_SECONDS + 1
    assert not await tokens.redeem(late, "call")
    now[0] -= TOKEN_SECONDS + 1
    assert not await tokens.redeem("0" * 16, "call")
    assert not await tokens.redeem(fresh, "another call")
    assert await tokens.redeem(fresh, "call")
    assert not await tokens.redeem(fresh, "call")
    if handle is not None:
        await handle.aclose()


async def test_a_token_issued_by_one_replica_is_good_once_at_another(
    connect: ConnectFactory, emulator: EmulatorHandle, store_url: str
) -> None:
    settings = {**ABOVE, "store_url": store_url}
    async with connect(**settings) as first, connect(**settings) as second:  # two servers, one store
        refused = await first.call_tool("chat", PROMPT)
        token = TOKEN.search(error_text(refused))
        assert token is not None
        sent = await second.call_tool("chat", {**PROMPT, "confirm": token[1]})
        again = await first.call_tool("chat", {**PROMPT, "confirm": token[1]})

    assert structured(sent)["reply"].startswith("Echo from")
    assert "is unknown, used, expired" in error_text(again)
    assert emulator.state.requests[CHAT] == 1


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_a_stateless_http_server_asks_where_the_protocol_lets_it(emulator: EmulatorHandle, mode: str) -> None:
    """2026-07-28 declares capabilities with each request and asks through InputRequiredResult, which needs
    no session; a stateless server keeps no handshake (so no declared capability, and no way back for a
    mid-call request), so a handshake-era client gets the token instead of a question."""
    config = HttpConfig("streamable-http", token=STATELESS_TOKEN, stateless=True)
    user = User("accept", {"confirm": True})
    with serving(config, emulator_settings(emulator, **ABOVE)) as root:
        async with (
            httpx2.AsyncClient(headers={"Authorization": f"Bearer {STATELESS_TOKEN}"}, verify=TLS, timeout=30) as http,
            Client(
                streamable_http_client(f"{root}/mcp", http_client=http),
                mode="auto" if mode == "auto" else "legacy",
                elicitation_callback=user,
            ) as client,
        ):
            result = await client.call_tool("chat", PROMPT)

    if mode == "auto":
        assert structured(result)["reply"].startswith("Echo from")
        assert len(user.asked) == 1
    else:
        assert TOKEN.search(error_text(result)) is not None
        assert user.asked == []


async def test_a_locked_store_keeps_the_token_in_memory_and_it_still_works(
    connect: ConnectFactory, emulator: EmulatorHandle, tmp_path: Path
) -> None:
    path = tmp_path / "store.sqlite3"
    brief = FAST_TIMING.model_copy(update={"store_busy_seconds": 0.3})  # a locked write waits this long, then gives up
    async with connect(store_url=f"sqlite://{path}", timing=brief, **ABOVE) as client:
        assert not (await client.call_tool("chat", {**PROMPT, "dry_run": True})).is_error  # opens the store
        holder = sqlite3.connect(path, isolation_level=None)  # another program, holding the write lock
        holder.execute("BEGIN EXCLUSIVE")
        try:
            refused = await client.call_tool("chat", PROMPT)
        finally:
            holder.rollback()
            holder.close()
        token = TOKEN.search(error_text(refused))
        assert token is not None, error_text(refused)
        sent = await client.call_tool("chat", {**PROMPT, "confirm": token[1]})

    assert structured(sent)["reply"].startswith("Echo from")
