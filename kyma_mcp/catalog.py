"""The model catalog: Kyma's `/models` normalised into `ModelInfo`, cached, with a bundled fallback.

The reader is tolerant: `/models` entries are read in every documented and plausible shape
(prices as `pricing.{input,output}` or the older `*_per_1m` names, the kind from
`output_modalities`, `capability` or `pricing.mode`), and `/v1/pricing`, Kyma's "single source
of truth" for prices, overrides what `/models` says. What a source does not say stays unknown:
an entry with no sign of its kind is `unknown`, never a chat model.

The gateway is the judge: the catalog feeds the tools' pre-checks, and they refuse a call only on
live knowledge (`CatalogView.live`); the bundled snapshot informs, it never refuses.

The filters and paging are pure functions so the tools, the resources and the recommender all
read the same rows.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cache
from importlib import resources
from typing import Any, Literal

import anyio
from pydantic import BaseModel, ConfigDict, Field

from kyma_mcp.errors import KymaError
from kyma_mcp.kyma.wire import JSONObject, json_object, number, objects, strings
from kyma_mcp.patterns import LazyPattern

Kind = Literal["chat", "image", "audio", "video", "unknown"]
"""Only `chat` models are offered for chat and only `image` models for images; the rest are listed."""
Capability = Literal["vision", "tools", "reasoning", "caching", "long_context", "image_generation", "image_edit"]
Source = Literal["live", "cached", "stale", "bundled"]
"""live: fetched now; cached: fetched within the cache time; stale: older than that, because the
gateway could not be reached since; bundled: the snapshot shipped in the package."""

LONG_CONTEXT_TOKENS = 256_000
"""A model with at least this context window counts as `long_context`."""

CACHE_TTL_SECONDS = 300.0
RETRY_AFTER_FAILURE_SECONDS = 30.0
"""After a failed fetch, answer from the snapshot for this long instead of asking Kyma again."""
RETIRING_WITHIN_DAYS = 14
"""A model retiring this soon (or already retired) is never recommended, and a call to it gets a note."""


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
    second_usd: float | None = None
    best_for: str | None = None
    retires_on: str | None = None
    legacy: bool = False
    successor: str | None = None
    """The id Kyma names as the replacement ("Use flux-2-pro instead"), when it names one."""

    def has(self, capability: Capability) -> bool:
        return capability in self.capabilities

    def retiring(self, today: date | None = None) -> bool:
        """Retired, or retiring within `RETIRING_WITHIN_DAYS` of `today` (default: today, UTC)."""
        when = _date(self.retires_on)
        today = today or datetime.now(UTC).date()
        return when is not None and when <= today + timedelta(days=RETIRING_WITHIN_DAYS)

    def offered(self, today: date | None = None) -> bool:
        """Fit to recommend: a chat or image model that is neither legacy nor retiring."""
        return self.kind in ("chat", "image") and not self.legacy and not self.retiring(today)


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
    second_usd: float | None = Field(default=None, description="USD per second (video)")
    best_for: str | None = None
    retires_on: str | None = None

    @classmethod
    def of(cls, model: ModelInfo) -> ModelRow:
        return cls.model_validate(
            model.model_dump(exclude={"legacy", "successor"})
            | {"input_modalities": list(model.input_modalities), "capabilities": list(model.capabilities)}
        )


def normalise(entry: Mapping[str, Any], price: Mapping[str, Any] | None = None) -> ModelInfo | None:
    """Read one `/models` entry (with its `/v1/pricing` row, which wins); unusable entries are dropped."""
    model_id = entry.get("id")
    if not isinstance(model_id, str) or not model_id:
        return None
    inputs = strings(entry.get("input_modalities")) or ("text",)
    prices = json_object(entry.get("pricing"))
    row = price or {}
    kind = _kind(entry, prices, row)
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
    elif kind == "image":
        caps.append("image_edit" if entry.get("capability") == "image_edit" else "image_generation")
    best_for = entry.get("best_for") if isinstance(entry.get("best_for"), str) else None
    stage = str(entry.get("release_stage") or "").casefold()
    note = f"{best_for or ''} {entry.get('description') or ''}"
    successor = _SUCCESSOR.search(note)
    call = number(row.get("usd_per_call"))
    return ModelInfo(
        id=model_id,
        name=str(entry.get("name") or model_id),
        kind=kind,
        context_window=context,
        max_output_tokens=_int(entry.get("max_output_tokens")),
        input_modalities=inputs,
        capabilities=tuple(caps),
        input_usd_per_1m=_first(row.get("input_per_1m"), prices.get("input"), prices.get("input_per_1m")),
        output_usd_per_1m=_first(row.get("output_per_1m"), prices.get("output"), prices.get("output_per_1m")),
        image_usd=_first(call if kind == "image" else None, prices.get("per_image_usd")),
        second_usd=_first(call if kind == "video" else None, prices.get("per_second_usd")),
        best_for=best_for,
        retires_on=str(entry["retires_on"])[:10] if _date(entry.get("retires_on")) else None,
        legacy=stage in _LEGACY_STAGES or note.lstrip().casefold().startswith("legacy"),
        successor=successor.group(1) if successor else None,
    )


_LEGACY_STAGES = frozenset({"legacy", "deprecated", "retired"})
_SUCCESSOR = LazyPattern(r"[Uu]se ([A-Za-z0-9][A-Za-z0-9._:-]*) instead")
_MODE_KINDS: dict[str, Kind] = {
    "per-image": "image",
    "per-mp": "image",
    "per-quality": "image",
    "per-second": "video",
    "per-minute": "audio",
    "per-char": "audio",
    "per-token": "chat",
}


def _kind(entry: Mapping[str, Any], prices: Mapping[str, Any], row: Mapping[str, Any]) -> Kind:
    """What an entry makes, from the first field that says: modality, capability, pricing mode, token prices."""
    outputs = strings(entry.get("output_modalities"))
    mode = str(prices.get("mode") or entry.get("pricing_mode") or row.get("pricing_mode") or "")
    capability = str(entry.get("capability") or row.get("modality") or "")
    for media in ("image", "video", "audio"):
        if media in outputs or capability.startswith(media):
            return media
    if mode in _MODE_KINDS:
        return _MODE_KINDS[mode]
    if capability.startswith(("transcri", "speech", "tts")):
        return "audio"
    said_chat = "text" in outputs or entry.get("context_window") or entry.get("context_length")
    priced_per_token = any(key in prices or key in row for key in ("input", "input_per_1m", "output_per_1m"))
    return "chat" if said_chat or priced_per_token else "unknown"


def normalise_all(entries: Iterable[Mapping[str, Any]], pricing: Mapping[str, Any] | None = None) -> list[ModelInfo]:
    """Every usable entry, with its row of the `/v1/pricing` document (`text` and `media`) when given."""
    rows = {
        row["id"]: row
        for part in ("text", "media")
        for row in objects((pricing or {}).get(part))
        if isinstance(row.get("id"), str)
    }
    models = [m for m in (normalise(e, rows.get(str(e.get("id")))) for e in entries) if m is not None]
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


def find(models: Iterable[ModelInfo], model_id: str, alias_map: Mapping[str, str] | None = None) -> ModelInfo | None:
    """The model an id or alias names; aliases from `alias_map` (the live map), else the snapshot's."""
    wanted = (aliases() if alias_map is None else alias_map).get(model_id, model_id)
    return next((m for m in models if m.id == wanted), None)


def successor_of(model: ModelInfo, models: Iterable[ModelInfo], today: date | None = None) -> ModelInfo | None:
    """What to use instead of a legacy or retiring model: the one Kyma names, else the closest offered sibling."""
    offered = [m for m in models if m.kind == model.kind and m.id != model.id and m.offered(today)]
    named = next((m for m in offered if m.id == model.successor), None)
    if named is not None:
        return named
    family = model.id.split("-")[0]
    siblings = [m for m in offered if m.id.split("-")[0] == family]
    return max(siblings, key=lambda m: (m.context_window or 0, m.id), default=None)


def retirement_note(model: ModelInfo, models: Iterable[ModelInfo], today: date | None = None) -> str | None:
    """A note for a call to a legacy or retiring model, naming a successor; None for a current model."""
    if not (model.legacy or model.retiring(today)):
        return None
    when = _date(model.retires_on)
    if when is None:
        what = "is legacy"
    else:
        what = f"retired on {when}" if when <= (today or datetime.now(UTC).date()) else f"retires on {when}"
    instead = successor_of(model, models, today)
    use = f" Use {instead.id} instead." if instead else " Pick a current model with recommend_model."
    return f"{model.id} {what} (Kyma's catalog).{use}"


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
    aliases: Mapping[str, str] = field(default_factory=aliases)
    """The live `aliases` map when the gateway sent one, else the snapshot's."""
    failure: str | None = None
    """Why the gateway's list could not be read, when the view is stale or the bundled snapshot."""
    age_seconds: float | None = None
    """How old a stale list is."""

    @property
    def live(self) -> bool:
        """The gateway's own list (fetched now or cached): the only knowledge a pre-check may refuse on."""
        return self.source != "bundled"

    def find(self, model_id: str) -> ModelInfo | None:
        return find(self.models, model_id, self.aliases)


class Catalog:
    """The live catalog, cached for a few minutes; the bundled snapshot when Kyma can't be reached."""

    def __init__(
        self,
        fetch: Callable[[], Awaitable[JSONObject]],
        *,
        pricing: Callable[[], Awaitable[JSONObject]] | None = None,
        ttl_seconds: float = CACHE_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._pricing = pricing
        self._live_aliases: Mapping[str, str] | None = None
        """The gateway's aliases from the last list read; the snapshot's until then (read when first needed,
        not at start-up: the snapshot is 18 KB of JSON)."""
        self._failure: str | None = None
        self._ttl = ttl_seconds
        self._clock = clock
        self._cached: Sequence[ModelInfo] | None = None
        self._fetched_at = 0.0
        self._failed_at: float | None = None
        self._lock = anyio.Lock()

    @property
    def _aliases(self) -> Mapping[str, str]:
        if self._live_aliases is None:
            self._live_aliases = aliases()
        return self._live_aliases

    async def view(self) -> CatalogView:
        if self._fresh():
            return CatalogView(self._cached or (), "cached", self._aliases)
        async with self._lock:
            if self._fresh():  # another call refreshed it while we waited
                return CatalogView(self._cached or (), "cached", self._aliases)
            if not self._recently_failed():
                models = await self._try_fetch()
                if models:
                    self._cached, self._fetched_at, self._failed_at = models, self._clock(), None
                    return CatalogView(models, "live", self._aliases)
                self._failed_at = self._clock()
            if self._cached is not None:
                age = self._clock() - self._fetched_at
                return CatalogView(self._cached, "stale", self._aliases, self._failure, age)
            return CatalogView(bundled_models(), "bundled", aliases(), self._failure)

    async def _try_fetch(self) -> list[ModelInfo]:
        """The gateway's list with `/v1/pricing` merged in (both read at once); empty when `/models` failed."""
        parts: dict[str, JSONObject | KymaError] = {}

        async def read(name: str, fetch: Callable[[], Awaitable[JSONObject]]) -> None:
            try:
                parts[name] = await fetch()
            except KymaError as exc:
                parts[name] = exc

        async with anyio.create_task_group() as group:
            group.start_soon(read, "models", self._fetch)
            if self._pricing is not None:
                group.start_soon(read, "pricing", self._pricing)
        document, prices = parts["models"], parts.get("pricing")
        if isinstance(document, KymaError):
            self._failure = str(document)
            return []
        try:
            live_aliases = json_object(document.get("aliases"))
            models = normalise_all(objects(document.get("data")), prices if isinstance(prices, dict) else None)
        except Exception as exc:  # any failure to read the live list falls back to the snapshot, never crashes
            self._failure = f"its model list could not be read ({type(exc).__name__})"
            return []
        self._live_aliases = {str(k): v for k, v in live_aliases.items() if isinstance(v, str)} or aliases()
        self._failure = None if models else "its model list was empty"
        return models

    def _fresh(self) -> bool:
        return self._cached is not None and self._clock() - self._fetched_at < self._ttl

    def _recently_failed(self) -> bool:
        return self._failed_at is not None and self._clock() - self._failed_at < RETRY_AFTER_FAILURE_SECONDS


def _first(*values: object) -> float | None:
    """The first of `values` that is a JSON number."""
    return next((n for v in values if (n := number(v)) is not None), None)


def _date(value: object) -> date | None:
    if not isinstance(value, str):
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def _int(value: object) -> int | None:
    number_value = number(value)
    return int(number_value) if number_value is not None and number_value > 0 else None


class ListModelsResult(BaseModel):
    models: list[ModelRow]
    total: int = Field(description="Models matching the filters, before paging")
    next_offset: int | None = Field(description="Pass as offset for the next page; null on the last page")
    source: Source = Field(
        description="live, cached (fetched < 5 min ago), stale (older; Kyma unreachable since) or bundled (snapshot)"
    )
    note: str | None = None


def page(
    chosen: Sequence[ModelInfo],
    *,
    limit: int,
    offset: int,
    source: Source,
    failure: str | None = None,
    age_seconds: float | None = None,
) -> tuple[Sequence[ModelInfo], ListModelsResult]:
    """One page of `chosen`: the models on it and the `list_models` result describing it."""
    rows = chosen[offset : offset + limit]
    next_offset = offset + limit if offset + limit < len(chosen) else None
    result = ListModelsResult(
        models=[ModelRow.of(m) for m in rows],
        total=len(chosen),
        next_offset=next_offset,
        source=source,
        note=bundled_note(failure) if source == "bundled" else stale_note(failure, age_seconds),
    )
    return rows, result


def stale_note(failure: str | None, age_seconds: float | None) -> str | None:
    """How old a stale list is and why it was not refreshed; None when the list is not stale."""
    if age_seconds is None:
        return None
    why = f" ({_failure_text(failure)})" if failure else ""
    return (
        f"This is the gateway's list from {_age(age_seconds)} ago: it could not be reached since{why}. "
        "Models or prices may have changed."
    )


def _age(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 120 else f"{minutes // 60} h {minutes % 60} min"


def _failure_text(failure: str) -> str:
    return failure.removeprefix("[").split("] ", 1)[-1][:200]


def bundled_note(failure: str | None) -> str:
    """Why a list is the snapshot, and that it is Kyma's list of that date, not this gateway's."""
    taken = json_object(bundled_document().get("snapshot")).get("taken", "an earlier date")
    why = f" ({_failure_text(failure)})" if failure else ""
    return (
        f"This is Kyma's own model list as of {taken}, bundled with kyma-mcp, not this gateway's: the gateway's "
        f"list could not be read{why}. The gateway may serve other models; calls go to it unchanged."
    )


def models_text(page: Sequence[ModelInfo], result: ListModelsResult) -> str:
    """One compact line per model: what an agent needs to choose, nothing more."""
    lines = [f"{result.total} models match (source: {result.source})."]
    if result.note:
        lines.append(result.note)
    for m in page:
        if m.kind == "image":
            price = f"${m.image_usd:g}/image" if m.image_usd is not None else "price n/a"
            limits = "image"
        elif m.kind != "chat":
            price = f"${m.second_usd:g}/s" if m.second_usd is not None else "price n/a"
            limits = m.kind
        else:
            price = (
                f"${m.input_usd_per_1m:g}/${m.output_usd_per_1m:g} per 1M in/out"
                if m.input_usd_per_1m is not None and m.output_usd_per_1m is not None
                else "price n/a"
            )
            limits = f"ctx {m.context_window or 0:,} · out {m.max_output_tokens or 0:,}"
        caps = ",".join(m.capabilities) or "-"
        retires = f" · retires {m.retires_on}" if m.retires_on else ""
        lines.append(f"{m.id} · {limits} · {price} · {caps}{retires}" + (f" · {m.best_for}" if m.best_for else ""))
    if result.next_offset is not None:
        lines.append(f"More: call list_models with offset={result.next_offset}.")
    return "\n".join(lines)
