"""Kyma's tier ladder: the bundled copy of `/v1/limits/tiers` and the request-rate part of a tier."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any


@dataclass(frozen=True)
class TierLimits:
    """The request-rate part of one row of Kyma's tier matrix."""

    tier: int
    rpm: int
    per_model_rpm: int

    @property
    def label(self) -> str:
        return f"{self.rpm} requests/min ({self.per_model_rpm} per model) on Tier {self.tier}"


TIER_0 = TierLimits(tier=0, rpm=30, per_model_rpm=25)


def tier_limits(tier: int) -> TierLimits:
    """Rate limits of a tier from the bundled tier matrix (Kyma's /v1/limits/tiers)."""
    row = next(row for row in bundled_tiers() if row["tier"] == tier)
    return TierLimits(tier=tier, rpm=row["rpm"], per_model_rpm=row["per_model_rpm"])


@cache
def bundled_tiers() -> list[dict[str, Any]]:
    return json.loads((resources.files("kyma_mcp") / "data" / "tiers.json").read_text("utf-8"))["tiers"]
