"""The endpoints anyone may call without a key: models, tiers, pricing, capabilities.

`/v1/models`, `/v1/limits/tiers` and `/v1/pricing` follow Kyma's documented shapes (headers
included; recorded answers: tests/fixtures/kyma/models_list.json, pricing_catalog.json).
`/v1/capabilities` has no documented shape; this one is a small INFERRED shape, naming only what
the emulator itself serves.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kyma_mcp.emulator.catalog import Catalog
from kyma_mcp.emulator.chat import DEFAULT_MAX_TOKENS
from kyma_mcp.emulator.dialects import model_entry
from kyma_mcp.emulator.parsing import authenticate
from kyma_mcp.emulator.state import EmulatorState


def pricing_catalog(catalog: Catalog) -> dict[str, Any]:
    """The `pricing.catalog` document: text and media rows, each sorted by id."""
    models = sorted(catalog.models.values(), key=lambda model: model.id)
    text = [
        {
            "id": model.id,
            "name": model.name,
            "input_per_1m": model.input_per_1m,
            "output_per_1m": model.output_per_1m,
            "cached_input_per_1m": model.cached_input_per_1m,
        }
        for model in models
        if model.kind == "chat"
    ]
    media = [
        {
            "id": model.id,
            "name": model.name,
            "modality": "image",
            "pricing_mode": "per-image",
            "usd_per_call": model.per_image_usd,
        }
        for model in models
        if model.kind == "image"
    ]
    return {
        "object": "pricing.catalog",
        "text_count": len(text),
        "media_count": len(media),
        "text": text,
        "media": media,
    }


CAPABILITIES: dict[str, Any] = {
    "object": "capabilities",
    "openai_compatible": True,
    "anthropic_compatible": False,
    "endpoints": [
        "/v1/chat/completions",
        "/v1/images/generations",
        "/v1/jobs/{id}",
        "/v1/models",
        "/v1/pricing",
        "/v1/limits/tiers",
        "/v1/auth/limits",
        "/v1/credits/balance",
        "/v1/capabilities",
    ],
    "streaming": True,
    "tool_calling": False,
    "vision": True,
    "prompt_caching": False,
    "max_tokens_default": DEFAULT_MAX_TOKENS,
    "gateway_output_limit": None,
    "max_tokens_passthrough": True,
    "fallback": {
        "headers": ["X-Kyma-Fallback", "X-Kyma-Fallback-Layer"],
        "layers": {"1": "same model, different source", "3": "different model"},
    },
    "image_generation": {"async": True, "endpoint": "/v1/images/generations", "poll": "/v1/jobs/{id}"},
}
"""INFERRED shape (Kyma documents none); `anthropic_compatible`, `tool_calling` and `prompt_caching`
are false because the emulator does not implement them, whatever the real gateway does."""


class PublicRoutes:
    def __init__(self, state: EmulatorState) -> None:
        self._state = state
        self._catalog = state.catalog
        self._pricing = pricing_catalog(state.catalog)

    def routes(self) -> list[Route]:
        return [
            Route("/v1/models", self.models, methods=["GET"]),
            Route("/v1/limits/tiers", self.tiers, methods=["GET"]),
            Route("/v1/pricing", self.pricing, methods=["GET"]),
            Route("/v1/capabilities", self.capabilities, methods=["GET"]),
        ]

    async def models(self, request: Request) -> Response:
        dialect = self._state.switches.dialect
        if dialect == "openai":
            authenticate(request)
            return JSONResponse({"object": "list", "data": [model_entry(dialect, e) for e in self._catalog.entries]})
        entries = [model_entry(dialect, entry) for entry in self._catalog.entries]
        return JSONResponse({"object": "list", "data": entries, "aliases": self._catalog.aliases})

    async def tiers(self, request: Request) -> Response:
        return JSONResponse(self._catalog.tiers, headers={"Cache-Control": "public, max-age=300"})

    async def pricing(self, request: Request) -> Response:
        return JSONResponse(self._pricing, headers={"Cache-Control": "public, max-age=60"})

    async def capabilities(self, request: Request) -> Response:
        return JSONResponse(CAPABILITIES)
