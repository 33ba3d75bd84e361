"""Kyma's tier ladder and the ONE tier resolver: what the account's limits are, learned from what it says.

`resolve_tier` is shared by the pacer (through `account_limits`) and `get_limits`, so both name
the same tier. The documented `/v1/auth/limits` bodies carry `rpm_limit` but no `tier` (which is
INFERRED), so the tier is matched from `rpm_limit` against the ladder when it is absent. When
nothing is known the limits stay unknown: nothing is refused locally, and the gateway's 429s
with Retry-After set the pace.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal

from kyma_mcp.kyma.wire import integer

TierSource = Literal["KYMA_TIER", "account", "rpm_limit", "headers", "unknown"]


@dataclass(frozen=True)
class TierLimits:
    """What pacing needs of the account's limits; `None` = not known, so not enforced locally."""

    tier: int | None
    rpm: int | None
    per_model_rpm: int | None
    image_jobs: int | None = None
    """Image jobs in flight at once: Kyma's running (`image_concurrent`) plus queued (`…queue_depth_cap`)."""
    source: TierSource = "unknown"

    @property
    def label(self) -> str:
        if self.rpm is None:
            return "requests at the rate the gateway accepts (its limits are not known here)"
        per_model = f" ({self.per_model_rpm} per model)" if self.per_model_rpm else ""
        tier = f" on Tier {self.tier}" if self.tier is not None else ""
        return f"{self.rpm} requests/min{per_model}{tier}"


UNKNOWN = TierLimits(tier=None, rpm=None, per_model_rpm=None)


def tier_limits(tier: int, source: TierSource = "KYMA_TIER") -> TierLimits:
    """The limits of a tier from the bundled tier matrix (Kyma's /v1/limits/tiers)."""
    row = next(row for row in bundled_tiers() if row["tier"] == tier)
    queue = row.get("image_queue_depth_cap") or row.get("combined_queue_depth_cap") or 0
    return TierLimits(tier, row["rpm"], row["per_model_rpm"], row["image_concurrent"] + queue, source)


def resolve_tier(
    configured: int | None, reports: Iterable[Mapping[str, Any] | None], ladder: Iterable[tuple[int, int | None]]
) -> tuple[int | None, TierSource]:
    """KYMA_TIER wins; else a `tier` an account answer reports; else the ladder tier whose RPM is `rpm_limit`.

    `reports` are account answers (`/v1/auth/limits`, `/v1/credits/balance`); `ladder` is (tier, rpm) pairs.
    """
    if configured is not None:
        return configured, "KYMA_TIER"
    answers = [report for report in reports if report]
    reported = next((tier for report in answers if (tier := integer(report.get("tier"))) is not None), None)
    if reported is not None:
        return reported, "account"
    rpm = next((rpm for report in answers if (rpm := integer(report.get("rpm_limit"))) is not None), None)
    matched = next((tier for tier, row_rpm in ladder if rpm is not None and row_rpm == rpm), None)
    return (matched, "rpm_limit") if matched is not None else (None, "unknown")


def account_limits(configured: int | None, account: Mapping[str, Any] | None) -> TierLimits:
    """The limits pacing uses: the resolved tier's row, with what the account itself states winning."""
    ladder = [(row["tier"], integer(row.get("rpm"))) for row in bundled_tiers()]
    tier, source = resolve_tier(configured, [account], ladder)
    base = tier_limits(tier, source) if tier is not None and any(t == tier for t, _ in ladder) else UNKNOWN
    if configured is not None or not account:
        return base
    rpm, per_model = _positive(account.get("rpm_limit")), _positive(account.get("per_model_rpm"))
    return TierLimits(
        tier=base.tier,
        rpm=rpm or base.rpm,
        per_model_rpm=per_model or base.per_model_rpm,
        image_jobs=base.image_jobs,
        source=base.source if base.tier is not None else ("account" if rpm else "unknown"),
    )


def header_limits(current: TierLimits, headers: Mapping[str, str]) -> TierLimits | None:
    """Limits learned from rate-limit headers (`x-ratelimit-limit-requests`, `x-ratelimit-limit`) when the
    account's are not known; None when the headers add nothing. Kyma documents no such headers."""
    if current.rpm is not None:
        return None
    for name in ("x-ratelimit-limit-requests", "x-ratelimit-limit", "ratelimit-limit"):
        value = headers.get(name, "").split(",")[0].split(";")[0].strip()
        if value.isdigit() and int(value) > 0:
            return TierLimits(None, int(value), None, current.image_jobs, "headers")
    return None


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def exhausted_for(headers: Mapping[str, str]) -> float | None:
    """Seconds until requests are allowed again when the headers say none remain (`…-remaining…: 0`)."""
    remaining = headers.get("x-ratelimit-remaining-requests", headers.get("x-ratelimit-remaining", "")).strip()
    if remaining != "0":
        return None
    reset = headers.get("x-ratelimit-reset-requests", headers.get("x-ratelimit-reset", "")).strip()
    if reset.replace(".", "", 1).isdigit():
        return float(reset)
    parts = _DURATION.findall(reset)
    return sum(float(amount) * _UNIT_SECONDS[unit] for amount, unit in parts) if parts else None


def _positive(value: object) -> int | None:
    number = integer(value)
    return number if number is not None and number > 0 else None


@cache
def bundled_tiers() -> list[dict[str, Any]]:
    return json.loads((resources.files("kyma_mcp") / "data" / "tiers.json").read_text("utf-8"))["tiers"]
