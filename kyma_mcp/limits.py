"""`get_limits`' logic: the account's tier and what it allows, balance, gateway overview, this server's tally.

`fetch_limit_parts` reads what `get_limits` shows (through `collect_parts`: the parts at once, each on
its own, any may be missing or fail); `shape_limits` turns what arrived into one compact result and says
what is missing and why; `limits_from_parts` is that call with this server's settings.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, cast

import anyio
from pydantic import BaseModel, Field

from kyma_mcp.budget import SpendSummary
from kyma_mcp.errors import KymaError
from kyma_mcp.kyma.tiers import TierSource, bundled_tiers, resolve_tier
from kyma_mcp.kyma.wire import as_list, as_object, integer, number
from kyma_mcp.usage import SessionUsage

if TYPE_CHECKING:
    from kyma_mcp.kyma.client import KymaClient
    from kyma_mcp.settings import Settings

Part = Mapping[str, Any] | KymaError | None
"""One fetched part: Kyma's JSON, the error that stopped it, or `None` when not asked or not served."""

MAX_PASSTHROUGH_ITEMS = 30
MAX_PASSTHROUGH_TEXT = 200
MAX_PASSTHROUGH_DEPTH = 3


# The result models carry no docstrings and few descriptions: their JSON schema is sent with
# every tools/list, and the text content already explains each field.
class TierRow(BaseModel):
    tier: int
    min_deposit_usd: float | None = Field(default=None, description="lifetime purchases that unlock it")
    rpm: int | None = None
    per_model_rpm: int | None = None
    tpm: int | None = None
    max_single_request: int | None = Field(default=None, description="tokens in one request, input + output")
    image_concurrent: int | None = None
    image_queue_depth_cap: int | None = None
    video_concurrent: int | None = None

    def summary(self) -> str:
        parts = [
            f"{self.rpm} requests/min ({self.per_model_rpm} per model)" if self.rpm else None,
            f"{self.tpm:,} tokens/min" if self.tpm else None,
            f"{self.max_single_request:,} tokens per request" if self.max_single_request else None,
            f"{self.image_concurrent} image jobs at once" if self.image_concurrent is not None else None,
            ("no video" if self.video_concurrent == 0 else f"{self.video_concurrent} video jobs")
            if self.video_concurrent is not None
            else None,
        ]
        return ", ".join(p for p in parts if p) or "limits not published"


class SessionTally(BaseModel):
    calls: dict[str, int]
    failed: dict[str, int]
    spend_usd: float = Field(description="what Kyma reported charging this server since it started")


class LimitsResult(BaseModel):
    tier: int | None
    tier_from: TierSource = "unknown"
    allows: TierRow | None = None
    next_tier: TierRow | None = None
    account_limits: dict[str, Any] | None = Field(default=None, description="/v1/auth/limits as sent")
    balance_usd: float | None = None
    low_balance: bool | None = None
    gateway: dict[str, Any] | None = Field(default=None, description="/v1/capabilities as sent, when served")
    tiers: list[TierRow]
    tiers_source: Literal["live", "bundled"]
    session: SessionTally
    spend: SpendSummary | None = Field(
        default=None, description="this period's money from the spend ledger: budget, spent, reserved, reset"
    )
    notes: list[str] = Field(default_factory=list[str])

    def text(self) -> str:
        lines: list[str] = []
        if self.allows is not None:
            lines.append(f"Tier {self.tier} ({_FROM[self.tier_from]}): {self.allows.summary()}.")
        else:
            lines.append("Tier: unknown. Kyma's tiers:")
            lines.extend(
                f"  Tier {row.tier} (from ${row.min_deposit_usd:g} purchased): {row.summary()}"
                for row in self.tiers
                if row.min_deposit_usd is not None
            )
        if self.account_limits:
            lines.append("Now (/v1/auth/limits): " + _pairs(self.account_limits) + ".")
        if self.balance_usd is not None:
            low = " (low)" if self.low_balance else ""
            lines.append(f"Balance: ${self.balance_usd:,.4f}{low}.")
        if self.next_tier is not None and self.next_tier.min_deposit_usd is not None:
            lines.append(
                f"Next: Tier {self.next_tier.tier} after ${self.next_tier.min_deposit_usd:g} purchased in total: "
                f"{self.next_tier.summary()}."
            )
        if self.gateway:
            lines.append("Gateway (/v1/capabilities): " + _pairs(self.gateway) + ".")
        if self.spend is not None:
            lines.append(self.spend.text())
        lines.append(self._session_line())
        lines.extend(self.notes)
        return "\n".join(lines)

    def _session_line(self) -> str:
        calls = self.session.calls
        if not calls:
            return "This server since start: no calls yet."
        counted = ", ".join(
            f"{tool} {count}" + (f" ({self.session.failed[tool]} failed)" if self.session.failed.get(tool) else "")
            for tool, count in sorted(calls.items())
        )
        return f"This server since start: {counted}; spent ${self.session.spend_usd:.4f}."


async def collect_parts(fetches: Mapping[str, Callable[[], Awaitable[Mapping[str, Any] | None]]]) -> dict[str, Part]:
    """Run every fetch concurrently; a failing one yields its `KymaError` instead of failing the rest."""
    parts: dict[str, Part] = {}

    async def fetch(name: str, call: Callable[[], Awaitable[Mapping[str, Any] | None]]) -> None:
        try:
            parts[name] = await call()
        except KymaError as exc:
            parts[name] = exc

    async with anyio.create_task_group() as group:
        for name, call in fetches.items():
            group.start_soon(fetch, name, call)
    return parts


async def fetch_limit_parts(client: KymaClient, *, has_key: bool) -> dict[str, Part]:
    """The public tier table and gateway overview; with a key also the account's limits and balance."""
    fetches: dict[str, Callable[[], Awaitable[Mapping[str, Any] | None]]] = {
        "tiers": client.get_tiers,
        "capabilities": client.get_capabilities,
    }
    if has_key:
        fetches |= {"account": client.get_auth_limits, "balance": client.get_balance}
    return await collect_parts(fetches)


def limits_from_parts(parts: Mapping[str, Part], settings: Settings, usage: SessionUsage) -> LimitsResult:
    """`shape_limits` of what `fetch_limit_parts` read, with the bundled tier table and this server's settings."""
    return shape_limits(
        tiers=parts["tiers"],
        bundled_tiers=bundled_tiers(),
        account=parts.get("account"),
        balance=parts.get("balance"),
        capabilities=parts["capabilities"],
        usage=usage,
        configured_tier=settings.tier,
        has_key=settings.has_api_key,
    )


def request_caps(tiers: Sequence[Mapping[str, Any]]) -> list[tuple[int, int]]:
    """(tier, max_single_request) pairs from tier rows, for the recommender's size notes."""
    return [
        (row.tier, row.max_single_request)
        for row in _ladder({"tiers": list(tiers)})
        if row.max_single_request is not None
    ]


_FROM: dict[TierSource, str] = {
    "KYMA_TIER": "set by KYMA_TIER",
    "account": "from the account",
    "rpm_limit": "matched from rpm_limit",
    "headers": "from rate-limit headers",
    "unknown": "unknown",
}


def shape_limits(
    *,
    tiers: Part,
    bundled_tiers: Sequence[Mapping[str, Any]],
    account: Part,
    balance: Part,
    capabilities: Part,
    usage: SessionUsage,
    configured_tier: int | None,
    has_key: bool,
) -> LimitsResult:
    """One result from the parts that arrived; each missing part becomes a note saying why."""
    notes: list[str] = []
    ladder = _ladder(tiers)
    tiers_source: Literal["live", "bundled"] = "live"
    if not ladder:
        ladder = _ladder({"tiers": list(bundled_tiers)})
        tiers_source = "bundled"
        reason = str(tiers) if isinstance(tiers, KymaError) else "its answer had no tiers"
        notes.append(f"Kyma's tier table could not be read ({reason}); showing the bundled snapshot.")
    account_json = _json(account, "Account limits (/v1/auth/limits)", notes)
    balance_json = _json(balance, "Balance (/v1/credits/balance)", notes)
    gateway_json = _json(capabilities, "Gateway overview (/v1/capabilities)", notes)

    tier, tier_from = _tier(configured_tier, account_json, balance_json, ladder, notes)
    by_tier = {row.tier: row for row in ladder}
    if not has_key:
        notes.append(
            "No KYMA_API_KEY: this is Kyma's public tier table. With a key, get_limits also shows your tier, "
            "requests used this minute and your balance."
        )
    return LimitsResult(
        tier=tier,
        tier_from=tier_from,
        allows=by_tier.get(tier) if tier is not None else None,
        next_tier=by_tier.get(tier + 1) if tier is not None else None,
        account_limits=_compact(account_json) if account_json else None,
        balance_usd=number(balance_json.get("balance")) if balance_json else None,
        low_balance=_flag(balance_json.get("low_balance")) if balance_json else None,
        gateway=_compact(gateway_json) if gateway_json else None,
        tiers=ladder,
        tiers_source=tiers_source,
        session=SessionTally(calls=dict(usage.calls), failed=dict(usage.failures), spend_usd=usage.spend_usd),
        notes=notes,
    )


def _ladder(part: Part) -> list[TierRow]:
    rows: object = part.get("tiers") if isinstance(part, Mapping) else None
    if not isinstance(rows, list):
        return []
    entries = [cast(Mapping[str, Any], row) for row in cast(list[object], rows) if isinstance(row, Mapping)]
    ladder = [_tier_row(tier, entry) for entry in entries if (tier := integer(entry.get("tier"))) is not None]
    return sorted(ladder, key=lambda r: r.tier)


def _tier_row(tier: int, row: Mapping[str, Any]) -> TierRow:
    return TierRow(
        tier=tier,
        min_deposit_usd=number(row.get("min_deposit")),
        rpm=integer(row.get("rpm")),
        per_model_rpm=integer(row.get("per_model_rpm")),
        tpm=integer(row.get("tpm")),
        max_single_request=integer(row.get("max_single_request")),
        image_concurrent=integer(row.get("image_concurrent", row.get("combined_media_concurrent"))),
        image_queue_depth_cap=integer(row.get("image_queue_depth_cap")),
        video_concurrent=integer(row.get("video_concurrent")),
    )


def _json(part: Part, label: str, notes: list[str]) -> Mapping[str, Any] | None:
    if isinstance(part, KymaError):
        notes.append(f"{label} unavailable: {part}")
        return None
    return part


def _tier(
    configured: int | None,
    account: Mapping[str, Any] | None,
    balance: Mapping[str, Any] | None,
    ladder: Sequence[TierRow],
    notes: list[str],
) -> tuple[int | None, TierSource]:
    """The one resolver the pacer also uses (`tiers.resolve_tier`), plus a note when KYMA_TIER overrides."""
    pairs = [(row.tier, row.rpm) for row in ladder]
    tier, source = resolve_tier(configured, [account, balance], pairs)
    if configured is not None:
        reported, _ = resolve_tier(None, [account, balance], pairs)
        differs = f"; the account reports Tier {reported}" if reported is not None and reported != configured else ""
        notes.append(f"Tier {configured} comes from KYMA_TIER{differs}. Unset it to use the account's tier.")
    return tier, source


def _compact(value: object, depth: int = 0) -> Any:
    """Kyma's JSON passed through, bounded: at most 30 keys or items per level, 3 levels, 200-char strings."""
    fields, items = as_object(value), as_list(value)
    if (fields is not None or items is not None) and depth >= MAX_PASSTHROUGH_DEPTH:
        return "…"
    if fields is not None:
        return {str(k): _compact(v, depth + 1) for k, v in list(fields.items())[:MAX_PASSTHROUGH_ITEMS]}
    if items is not None:
        return [_compact(v, depth + 1) for v in items[:MAX_PASSTHROUGH_ITEMS]]
    if isinstance(value, str) and len(value) > MAX_PASSTHROUGH_TEXT:
        return value[: MAX_PASSTHROUGH_TEXT - 1] + "…"
    return value


def _pairs(values: Mapping[str, Any]) -> str:
    """`key value` pairs for the scalar fields of a passed-through object; nested ones by name only."""
    shown = [f"{key} {_scalar(value)}" for key, value in values.items() if not isinstance(value, Mapping | list)]
    nested = [key for key, value in values.items() if isinstance(value, Mapping | list)]
    return ", ".join(shown + ([f"also {', '.join(nested)}"] if nested else [])) or "(empty)"


def _scalar(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value).lower() if value is not None else "null"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _flag(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None
