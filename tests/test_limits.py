"""`get_limits` end to end (in-memory MCP client, both eras → kyma-mcp → emulator) and its shaping logic."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest
from mcp import Client

from kyma_mcp.emulator import EmulatorHandle
from kyma_mcp.errors import AuthInvalidError, UpstreamUnavailableError
from kyma_mcp.kyma.tiers import bundled_tiers
from kyma_mcp.limits import shape_limits
from kyma_mcp.server import build_server
from kyma_mcp.settings import Settings
from kyma_mcp.usage import SessionUsage
from tests.conftest import ConnectFactory, emulator_settings
from tests.results import structured, text_of

anyio_mark = pytest.mark.anyio


@anyio_mark
async def test_with_a_key_it_shows_the_tier_its_limits_balance_and_gateway(
    connect: ConnectFactory, emulator: EmulatorHandle
) -> None:
    async with connect() as client:
        data = structured(await client.call_tool("get_limits", {}))

    assert (data["tier"], data["tier_from"]) == (0, "account")
    assert (data["allows"]["rpm"], data["allows"]["per_model_rpm"], data["allows"]["tpm"]) == (30, 25, 200_000)
    assert data["allows"]["max_single_request"] == 200_000
    assert data["allows"]["video_concurrent"] == 0
    assert (data["next_tier"]["tier"], data["next_tier"]["min_deposit_usd"], data["next_tier"]["rpm"]) == (1, 5, 60)
    assert data["account_limits"]["rpm_limit"] == 30
    assert data["balance_usd"] == pytest.approx(emulator.state.balance)
    assert data["low_balance"] is False
    assert data["gateway"]["object"] == "capabilities"
    assert [row["tier"] for row in data["tiers"]] == [0, 1, 2, 3, 4]
    assert data["tiers_source"] == "live"
    assert data["notes"] == []
    assert emulator.state.requests["/v1/auth/limits"] >= 1


@anyio_mark
async def test_the_tier_follows_the_account(connect: ConnectFactory, emulator: EmulatorHandle) -> None:
    emulator.switches.tier = 3
    async with connect() as client:
        result = await client.call_tool("get_limits", {})

    data = structured(result)
    assert (data["tier"], data["allows"]["rpm"], data["allows"]["image_concurrent"]) == (3, 200, 28)
    assert data["next_tier"]["tier"] == 4
    assert text_of(result).startswith("Tier 3 (from the account): 200 requests/min (150 per model)")


@anyio_mark
async def test_without_a_key_it_shows_the_public_tier_table_and_what_a_key_adds(
    connect: ConnectFactory, emulator: EmulatorHandle
) -> None:
    async with connect(api_key=None) as client:
        result = await client.call_tool("get_limits", {})

    data = structured(result)
    assert (data["tier"], data["tier_from"]) == (None, "unknown")
    assert data["allows"] is None
    assert data["account_limits"] is None
    assert data["balance_usd"] is None
    assert len(data["tiers"]) == 5
    assert data["tiers_source"] == "live"
    assert "With a key, get_limits also shows your tier" in data["notes"][-1]
    assert "Tier 4 (from $1000 purchased): 300 requests/min" in text_of(result)
    assert emulator.state.requests["/v1/auth/limits"] == 0
    assert emulator.state.requests["/v1/credits/balance"] == 0


@anyio_mark
async def test_kyma_tier_overrides_the_account_and_says_so(connect: ConnectFactory) -> None:
    async with connect(tier=3) as client:
        data = structured(await client.call_tool("get_limits", {}))

    assert (data["tier"], data["tier_from"], data["allows"]["rpm"]) == (3, "KYMA_TIER", 200)
    assert data["notes"] == [
        "Tier 3 comes from KYMA_TIER; the account reports Tier 0. Unset it to use the account's tier."
    ]


@anyio_mark
async def test_a_rejected_key_still_gets_the_tier_table(connect: ConnectFactory) -> None:
    async with connect(api_key="bad-key-1234567890") as client:
        result = await client.call_tool("get_limits", {})

    data = structured(result)
    assert data["tier"] is None
    assert len(data["tiers"]) == 5
    assert any(
        note.startswith("Account limits (/v1/auth/limits) unavailable: [auth_invalid]") for note in data["notes"]
    )
    assert any(note.startswith("Balance (/v1/credits/balance) unavailable: [auth_invalid]") for note in data["notes"])
    assert "bad-key-1234567890" not in text_of(result)


@anyio_mark
async def test_it_counts_this_servers_calls_and_spend(connect: ConnectFactory) -> None:
    async with connect() as client:
        chat = await client.call_tool("chat", {"prompt": "hello"})
        await client.call_tool("chat", {"prompt": "hi", "model": "no-such-model"})
        await client.call_tool("recommend_model", {"task": "Write unit tests"})
        first = structured(await client.call_tool("get_limits", {}))
        second = structured(await client.call_tool("get_limits", {}))

    cost = structured(chat)["usage"]["cost_usd"]
    assert first["session"] == {
        "calls": {"chat": 2, "recommend_model": 1},
        "failed": {"chat": 1},
        "spend_usd": pytest.approx(cost),
    }
    assert second["session"]["calls"]["get_limits"] == 1


class _WithoutCapabilities(httpx2.AsyncBaseTransport):
    """The emulator over real HTTP, except that `/v1/capabilities` is not served (404)."""

    def __init__(self) -> None:
        self._real = httpx2.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if request.url.path.endswith("/capabilities"):
            return httpx2.Response(404, json={"error": {"message": "Not found", "type": "invalid_request_error"}})
        return await self._real.handle_async_request(request)

    async def aclose(self) -> None:
        await self._real.aclose()


@anyio_mark
async def test_a_gateway_without_capabilities_is_not_an_error(emulator: EmulatorHandle) -> None:
    server = build_server(emulator_settings(emulator), transport=_WithoutCapabilities())
    async with Client(server) as client:
        data = structured(await client.call_tool("get_limits", {}))

    assert data["gateway"] is None
    assert data["tier"] == 0
    assert data["notes"] == []


@anyio_mark
async def test_offline_it_falls_back_to_the_bundled_tier_table(era: str) -> None:
    server = build_server(Settings(base_url="http://127.0.0.1:9/v1", max_retries=0))
    async with Client(server) if era == "auto" else Client(server, mode="legacy") as client:
        data = structured(await client.call_tool("get_limits", {}))

    assert data["tiers_source"] == "bundled"
    assert len(data["tiers"]) == 5
    assert data["notes"][0].startswith("Kyma's tier table could not be read ([upstream_unavailable]")
    assert any(note.startswith("Gateway overview (/v1/capabilities) unavailable") for note in data["notes"])


# --- the shaping logic alone ------------------------------------------------------------------


def shape(**parts: Any) -> Any:
    defaults: dict[str, Any] = {
        "tiers": {"tiers": bundled_tiers()},
        "bundled_tiers": bundled_tiers(),
        "account": None,
        "balance": None,
        "capabilities": None,
        "usage": SessionUsage(),
        "configured_tier": None,
        "has_key": True,
    }
    return shape_limits(**(defaults | parts))


def test_an_older_account_answer_without_a_tier_is_matched_by_rpm() -> None:
    result = shape(account={"rpm_limit": 120, "rpm_used": 3, "rpm_remaining": 117})

    assert (result.tier, result.tier_from) == (2, "rpm_limit")
    assert result.allows is not None
    assert result.allows.tpm == 2_000_000


def test_the_balance_answer_can_carry_the_tier() -> None:
    result = shape(balance={"balance": 0.42, "low_balance": True, "tier": 1})

    assert (result.tier, result.tier_from, result.balance_usd, result.low_balance) == (1, "account", 0.42, True)
    assert "Balance: $0.4200 (low)." in result.text()


def test_an_unknown_tier_lists_the_ladder() -> None:
    result = shape(account=AuthInvalidError("Kyma answered 401: bad key."))

    assert result.tier is None
    assert result.text().startswith("Tier: unknown. Kyma's tiers:\n  Tier 0 (from $0 purchased): 30 requests/min")


def test_a_broken_tier_table_falls_back_to_the_bundled_one() -> None:
    result = shape(tiers={"object": "tier.matrix", "tiers": "soon"}, account={"tier": 4})

    assert result.tiers_source == "bundled"
    assert result.allows is not None
    assert result.allows.rpm == 300
    assert result.next_tier is None
    assert result.notes == [
        "Kyma's tier table could not be read (its answer had no tiers); showing the bundled snapshot."
    ]


def test_passed_through_json_is_bounded() -> None:
    deep = {"a": {"b": {"c": {"d": 1}}}}
    wide = {f"k{i}": i for i in range(100)}
    long = "x" * 10_000

    result = shape(capabilities={"deep": deep, "wide": wide, "long": long, "list": list(range(100))})

    gateway = result.gateway
    assert gateway is not None
    assert gateway["deep"] == {"a": {"b": "…"}}
    assert len(gateway["wide"]) == 30
    assert len(gateway["long"]) == 200
    assert gateway["long"].endswith("…")
    assert len(gateway["list"]) == 30


def test_a_failed_part_becomes_a_note_with_its_error_word() -> None:
    result = shape(capabilities=UpstreamUnavailableError("Kyma answered 503: busy."))

    assert result.gateway is None
    assert result.notes == [
        "Gateway overview (/v1/capabilities) unavailable: [upstream_unavailable] Kyma answered 503: busy."
    ]
