"""The data the emulator serves: the bundled model catalog and tier matrix, read once.

The emulator reads `kyma_mcp/data/*.json` itself rather than through kyma-mcp's own catalog
code, so a bug in how the client reads a catalog cannot hide behind the same bug in the fake
server it is tested against.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal


@dataclass(frozen=True)
class Model:
    """The fields of a catalog entry that change how the emulator answers."""

    id: str
    name: str
    kind: Literal["chat", "image"]
    max_output_tokens: int
    supports_vision: bool
    needs_image_url: bool
    input_per_1m: float
    output_per_1m: float
    cached_input_per_1m: float
    per_image_usd: float


@dataclass(frozen=True)
class TierLimits:
    """One row of the tier matrix, as far as the emulator enforces or reports it."""

    tier: int
    rpm: int
    per_model_rpm: int
    tpm: int
    max_single_request: int
    image_concurrent: int
    image_jobs_in_flight: int
    """Running plus queued image jobs a caller may have; Tier 4 pools its queue with video."""
    min_deposit: float


@dataclass(frozen=True)
class Catalog:
    """The catalog document, its models by id, the aliases, and the tier matrix raw and parsed."""

    document: dict[str, Any]
    models: dict[str, Model]
    aliases: dict[str, str]
    tiers: dict[str, Any]
    limits: dict[int, TierLimits]

    @property
    def entries(self) -> list[dict[str, Any]]:
        return self.document["data"]

    def resolve(self, requested: str) -> tuple[Model, str | None] | None:
        """The model a request names, by id or alias, and the alias when one was used."""
        if requested in self.models:
            return self.models[requested], None
        target = self.aliases.get(requested)
        if target is not None and target in self.models:
            return self.models[target], requested
        return None

    def chat_model(self, model_id: str) -> Model | None:
        model = self.models.get(model_id)
        return model if model is not None and model.kind == "chat" else None

    def tier(self, number: int) -> TierLimits:
        return self.limits[number]


DEFAULT_MAX_OUTPUT_TOKENS = 8192
"""A model whose output cap the snapshot does not give (INFERRED)."""
CACHED_INPUT_SHARE = 0.1
"""Cached input at a tenth of the input price, as the 2026-04 pricing page showed (INFERRED since)."""


@functools.cache
def load_catalog() -> Catalog:
    document = _read("catalog.json")
    tiers = _read("tiers.json")
    return Catalog(
        document=document,
        models={entry["id"]: _model(entry) for entry in document["data"]},
        aliases=dict(document["aliases"]),
        tiers=tiers,
        limits={row["tier"]: _tier_limits(row) for row in tiers["tiers"]},
    )


def _read(name: str) -> dict[str, Any]:
    return json.loads((resources.files("kyma_mcp") / "data" / name).read_text(encoding="utf-8"))


def _model(entry: dict[str, Any]) -> Model:
    pricing: dict[str, Any] = entry.get("pricing") or {}
    is_image = "image" in entry.get("output_modalities", [])
    input_price = float(pricing.get("input", 0))
    return Model(
        id=entry["id"],
        name=entry.get("name") or entry["id"],
        kind="image" if is_image else "chat",
        max_output_tokens=int(entry.get("max_output_tokens") or DEFAULT_MAX_OUTPUT_TOKENS),
        supports_vision="image" in entry.get("input_modalities", []),
        needs_image_url=entry.get("capability") == "image_edit",
        input_per_1m=input_price,
        output_per_1m=float(pricing.get("output", 0)),
        cached_input_per_1m=round(input_price * CACHED_INPUT_SHARE, 6),
        per_image_usd=float(pricing.get("per_image_usd", 0)),
    )


def _tier_limits(row: dict[str, Any]) -> TierLimits:
    queue = row.get("image_queue_depth_cap") or row.get("combined_queue_depth_cap", 0)
    return TierLimits(
        tier=row["tier"],
        rpm=row["rpm"],
        per_model_rpm=row["per_model_rpm"],
        tpm=row["tpm"],
        max_single_request=row["max_single_request"],
        image_concurrent=row["image_concurrent"],
        image_jobs_in_flight=row["image_concurrent"] + queue,
        min_deposit=float(row["min_deposit"]),
    )
