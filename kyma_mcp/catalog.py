"""The model catalog: Kyma's `/models` normalised into `ModelInfo`, cached, with a bundled fallback.

The filters and paging are pure functions so the tools, the resources and the recommender all
read the same rows.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal

import anyio
from pydantic import BaseModel, ConfigDict, Field

from kyma_mcp.errors import KymaError
from kyma_mcp.kyma.wire import number

Kind = Literal["chat", "image"]
Capability = Literal["vision", "tools", "reasoning", "caching", "long_context", "image_generation", "image_edit"]
Source = Literal["live", "cached", "bundled"]

LONG_CONTEXT_TOKENS = 256_000
"""A model with at least this context window counts as `long_context`."""

CACHE_TTL_SECONDS = 300.0
RETRY_AFTER_FAILURE_SECONDS = 30.0
"""After a failed fetch, answer from the snapshot for this long instead of asking Kyma again."""


class ModelInfo(BaseModel):
    """One catalog entry, normalised from whatever shape `/models` returned."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    kind: Kind
    context_window: int | None = None
    max_output_tokens: int | None = None
    input_modalities: tuple[str, ...] = ("text",)
    capabilities: tuple[Capability, ...] = ()
    input_usd_per_1m: float | None = None
    output_usd_per_1m: float | None = None
    image_usd: float | None = None
    best_for: str | None = None

    def has(self, capability: Capability) -> bool:
        return capability in self.capabilities


class ModelRow(BaseModel):
    """The compact shape `list_models` returns; empty fields are left out of the text."""

    id: str
    name: str
    kind: Kind
    context_window: int | None = None
    max_output_tokens: int | None = None
    input_modalities: list[str]
    capabilities: list[Capability]
    input_usd_per_1m: float | None = Field(default=None, description="USD per 1M input tokens")
    output_usd_per_1m: float | None = Field(default=None, description="USD per 1M output tokens")
    image_usd: float | None = Field(default=None, description="USD per generated image")
    best_for: str | None = None

    @classmethod
    def of(cls, model: ModelInfo) -> ModelRow:
        return cls.model_validate(
            model.model_dump()
            | {"input_modalities": list(model.input_modalities), "capabilities": list(model.capabilities)}
        )


def normalise(entry: Mapping[str, Any]) -> ModelInfo | None:
    """Read one `/models` entry; unknown extra fields are ignored, unusable entries dropped."""
    model_id = entry.get("id")
    if not isinstance(model_id, str) or not model_id:
        return None
    outputs = _strings(entry.get("output_modalities")) or ("text",)
    inputs = _strings(entry.get("input_modalities")) or ("text",)
    pricing = entry.get("pricing")
    prices: Mapping[str, Any] = pricing if isinstance(pricing, Mapping) else {}  # pyright: ignore[reportUnknownVariableType]
    kind: Kind = "image" if "image" in outputs else "chat"
    context = _int(entry.get("context_window") or entry.get("context_length"))
    caps: list[Capability] = []
    if kind == "chat":
        if entry.get("supports_vision") or "image" in inputs:
            caps.append("vision")
        flags: tuple[tuple[str, Capability], ...] = (
            ("supports_tools", "tools"),
            ("supports_reasoning", "reasoning"),
            ("supports_caching", "caching"),
        )
        caps.extend(cap for flag, cap in flags if entry.get(flag))
        if context is not None and context >= LONG_CONTEXT_TOKENS:
            caps.append("long_context")
    else:
        caps.append("image_edit" if entry.get("capability") == "image_edit" else "image_generation")
    return ModelInfo(
        id=model_id,
        name=str(entry.get("name") or model_id),
        kind=kind,
        context_window=context,
        max_output_tokens=_int(entry.get("max_output_tokens")),
        input_modalities=inputs,
        capabilities=tuple(caps),
        input_usd_per_1m=number(prices.get("input_per_1m")),
        output_usd_per_1m=number(prices.get("output_per_1m")),
        image_usd=number(prices.get("per_image_usd")),
        best_for=entry.get("best_for") if isinstance(entry.get("best_for"), str) else None,
    )


def normalise_all(entries: Iterable[Mapping[str, Any]]) -> list[ModelInfo]:
    models = [m for m in (normalise(e) for e in entries) if m is not None]
    return sorted(models, key=lambda m: m.id)


@cache
def bundled_document() -> dict[str, Any]:
    """The catalog snapshot shipped in the package (`data/catalog.json`), also served by the emulator."""
    text = (resources.files("kyma_mcp") / "data" / "catalog.json").read_text("utf-8")
    return json.loads(text)


@cache
def bundled_models() -> tuple[ModelInfo, ...]:
    return tuple(normalise_all(bundled_document()["data"]))


def aliases() -> dict[str, str]:
    """Kyma's documented model aliases (`best`, `fast`, …) and what they resolved to in the snapshot."""
    return dict(bundled_document()["aliases"])


def find(models: Iterable[ModelInfo], model_id: str) -> ModelInfo | None:
    wanted = aliases().get(model_id, model_id)
    return next((m for m in models if m.id == wanted), None)


def select(
    models: Iterable[ModelInfo],
    *,
    kind: Kind | Literal["all"] = "all",
    capability: Capability | None = None,
    search: str | None = None,
    min_context: int | None = None,
    min_output: int | None = None,
) -> list[ModelInfo]:
    """The models that pass every given filter, in catalog order."""
    needle = search.casefold().strip() if search else ""
    chosen: list[ModelInfo] = []
    for model in models:
        if kind != "all" and model.kind != kind:
            continue
        if capability is not None and not model.has(capability):
            continue
        if min_context is not None and (model.context_window or 0) < min_context:
            continue
        if min_output is not None and (model.max_output_tokens or 0) < min_output:
            continue
        haystack = f"{model.id} {model.name} {model.best_for or ''}".casefold()
        if needle and needle not in haystack:
            continue
        chosen.append(model)
    return chosen


@dataclass(frozen=True)
class CatalogView:
    models: Sequence[ModelInfo]
    source: Source


class Catalog:
    """The live catalog, cached for a few minutes; the bundled snapshot when Kyma can't be reached."""

    def __init__(
        self,
        fetch: Callable[[], Awaitable[list[dict[str, Any]]]],
        *,
        ttl_seconds: float = CACHE_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._ttl = ttl_seconds
        self._clock = clock
        self._cached: Sequence[ModelInfo] | None = None
        self._fetched_at = 0.0
        self._failed_at: float | None = None
        self._lock = anyio.Lock()

    async def view(self) -> CatalogView:
        if self._fresh():
            return CatalogView(self._cached or (), "cached")
        async with self._lock:
            if self._fresh():  # another call refreshed it while we waited
                return CatalogView(self._cached or (), "cached")
            if not self._recently_failed():
                models = await self._try_fetch()
                if models:
                    self._cached, self._fetched_at, self._failed_at = models, self._clock(), None
                    return CatalogView(models, "live")
                self._failed_at = self._clock()
            if self._cached is not None:
                return CatalogView(self._cached, "cached")
            return CatalogView(bundled_models(), "bundled")

    async def _try_fetch(self) -> list[ModelInfo]:
        try:
            return normalise_all(await self._fetch())
        except KymaError:
            return []

    def _fresh(self) -> bool:
        return self._cached is not None and self._clock() - self._fetched_at < self._ttl

    def _recently_failed(self) -> bool:
        return self._failed_at is not None and self._clock() - self._failed_at < RETRY_AFTER_FAILURE_SECONDS


def _strings(value: object) -> tuple[str, ...]:
    if isinstance(value, list | tuple):
        return tuple(str(v) for v in value)  # pyright: ignore[reportUnknownVariableType, reportUnknownArgumentType]
    return ()


def _int(value: object) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) and value > 0 else None


class ListModelsResult(BaseModel):
    models: list[ModelRow]
    total: int = Field(description="Models matching the filters, before paging")
    next_offset: int | None = Field(description="Pass as offset for the next page; null on the last page")
    source: Source = Field(description="live, cached (fetched < 5 min ago) or bundled (offline snapshot)")


def page(
    chosen: Sequence[ModelInfo], *, limit: int, offset: int, source: Source
) -> tuple[Sequence[ModelInfo], ListModelsResult]:
    """One page of `chosen`: the models on it and the `list_models` result describing it."""
    rows = chosen[offset : offset + limit]
    next_offset = offset + limit if offset + limit < len(chosen) else None
    result = ListModelsResult(
        models=[ModelRow.of(m) for m in rows], total=len(chosen), next_offset=next_offset, source=source
    )
    return rows, result


def models_text(page: Sequence[ModelInfo], result: ListModelsResult) -> str:
    """One compact line per model: what an agent needs to choose, nothing more."""
    lines = [f"{result.total} models match (source: {result.source})."]
    for m in page:
        if m.kind == "image":
            price = f"${m.image_usd:g}/image" if m.image_usd is not None else "price n/a"
            limits = "image"
        else:
            price = (
                f"${m.input_usd_per_1m:g}/${m.output_usd_per_1m:g} per 1M in/out"
                if m.input_usd_per_1m is not None and m.output_usd_per_1m is not None
                else "price n/a"
            )
            limits = f"ctx {m.context_window or 0:,} · out {m.max_output_tokens or 0:,}"
        caps = ",".join(m.capabilities) or "-"
        lines.append(f"{m.id} · {limits} · {price} · {caps}" + (f" · {m.best_for}" if m.best_for else ""))
    if result.next_offset is not None:
        lines.append(f"More: call list_models with offset={result.next_offset}.")
    return "\n".join(lines)
