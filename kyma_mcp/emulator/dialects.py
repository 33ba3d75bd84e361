"""The emulator's dialects: how much of Kyma a gateway shows (`Switches.dialect`, `--dialect`).

- `kyma`: Kyma as the corrections evidence shows it, INFERRED extras included (`tier` and
  `per_model_rpm` in `/v1/auth/limits`, `supports_vision`, `[DONE]`, `/v1/capabilities`).
- `documented`: only what a source documents: `/v1/models` entries with the documented fields
  and `pricing.{mode,input,output,per_image_usd,per_second_usd}`, `/v1/auth/limits` as the
  rate-limits page shows it (no `tier`), streams without `[DONE]`, jobs with `output.url` only,
  no `/v1/capabilities` (its shape is undocumented).
- `openai`: a plain OpenAI-compatible server: the key is required on `/v1/models`, whose entries
  are `{id, object, created, owned_by}`; no Kyma endpoints, no `X-Kyma-*` headers, no
  `usage.cost`; images are answered at once as `{"created", "data": [{"url"}]}`.
"""

from __future__ import annotations

from typing import Any

DIALECTS = ("kyma", "documented", "openai")

DOCUMENTED_MODEL_FIELDS = frozenset(
    {
        "id",
        "object",
        "created",
        "owned_by",
        "name",
        "context_window",
        "max_output_tokens",
        "input_modalities",
        "output_modalities",
        "supports_tools",
        "supports_caching",
        "capability",
        "best_for",
        "quality_tier",
        "release_stage",
        "recommended_for",
        "retires_on",
    }
)
"""watch-cli bin/models, haynoi check-model-retirements, models.dev, the image registry."""
DOCUMENTED_PRICE_FIELDS = frozenset({"mode", "input", "output", "per_image_usd", "per_second_usd"})
DOCUMENTED_LIMITS_FIELDS = ("rpm_limit", "rpm_used", "rpm_remaining", "has_credits", "used_today")
DOCUMENTED_BALANCE_FIELDS = ("balance", "low_balance")

_NOT_SERVED: dict[str, frozenset[str]] = {
    "kyma": frozenset(),
    "documented": frozenset({"/v1/capabilities"}),
    "openai": frozenset(
        {
            "/v1/pricing",
            "/v1/limits/tiers",
            "/v1/capabilities",
            "/v1/auth/limits",
            "/v1/credits/balance",
            "/v1/jobs/{job_id}",
        }
    ),
}


def serves(dialect: str, route: str) -> bool:
    """Whether a gateway of this dialect has the endpoint (by route template)."""
    return route not in _NOT_SERVED[dialect]


def model_entry(dialect: str, entry: dict[str, Any]) -> dict[str, Any]:
    """One `/v1/models` entry as the dialect shows it."""
    if dialect == "openai":
        return {
            "id": entry["id"],
            "object": "model",
            "created": entry.get("created", 0),
            "owned_by": entry.get("owned_by"),
        }
    if dialect == "documented":
        shown = {key: value for key, value in entry.items() if key in DOCUMENTED_MODEL_FIELDS}
        prices: dict[str, Any] = entry.get("pricing") or {}
        shown["pricing"] = {key: value for key, value in prices.items() if key in DOCUMENTED_PRICE_FIELDS}
        return shown
    return entry


def picked(body: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    return {key: body[key] for key in fields if key in body}
