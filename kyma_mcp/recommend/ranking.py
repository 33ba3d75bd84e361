"""`recommend_model`'s logic: which catalog model fits a task, a cheaper and a stronger one, and why.

Pure and deterministic: a task, constraints and a catalog in, a `Recommendation` out. Hard
constraints come first (a model lacking a needed capability, or whose context window or output
cap is too small, is never picked); the rest are ranked by fit and price for the priority. Fit
comes from Kyma's decision guide (`tasks.GUIDE`) and, for models the guide does not name (a live
catalog changes), from the catalog's own numbers and `best_for` text.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

from kyma_mcp.catalog import Capability, Kind, ModelInfo, Source
from kyma_mcp.patterns import LazyPattern
from kyma_mcp.recommend import Priority
from kyma_mcp.recommend.profile import (
    COMMON_OUTPUT_CAP,
    CUES,
    GUIDE,
    IMAGE_TRAITS,
    LONG_INPUT_TOKENS,
    GuideRow,
    TaskProfile,
    Trait,
    understand,
)

DEFAULT_INPUT_TOKENS = 2_000
DEFAULT_OUTPUT_TOKENS = 1_000
LONG_OUTPUT_TOKENS = 16_000
"""Token counts assumed for the cost estimate when the task states none."""
KYMA_DEFAULT_MAX_TOKENS = 4_096
"""What Kyma writes when a request sends no `max_tokens`; more must be asked for."""
FULL_CONTEXT = 1_048_576
FULL_OUTPUT = 65_536
"""The sizes that earn a long-context / long-output task full marks for size."""
CHEAPER_BY = 0.9
"""A cheaper alternative costs at most this fraction of the pick."""
MAX_EXCLUSIONS = 6

_FLAGSHIP = LazyPattern(r"\b(?:flagship|top|frontier)\b", re.IGNORECASE)
_SPEEDY = LazyPattern(r"flash|\bair\b|lite|mini|turbo|fast|instant|latency", re.IGNORECASE)
_IMAGE_CAPABILITIES: frozenset[Capability] = frozenset({"image_generation", "image_edit"})
_NEED_TRAITS: dict[Capability, Trait] = {
    "tools": "agentic",
    "vision": "vision",
    "reasoning": "reasoning",
    "long_context": "long_context",
}


# The result models carry no docstrings or titles in their fields: their JSON schema is sent
# with every tools/list, and the text content already explains each answer.
class Option(BaseModel):
    model: str
    name: str
    reason: str
    estimated_cost_usd: float | None = None
    chat: dict[str, Any] | None = Field(default=None, description="chat arguments; add a prompt")
    generate_image: dict[str, Any] | None = Field(default=None, description="generate_image arguments; add a prompt")


class Understood(BaseModel):
    kind: Kind
    traits: list[str]
    needs: list[str] = Field(description="every option has these")
    min_context: int | None = None
    min_output: int | None = None
    sizes: list[str] = Field(default_factory=list[str], description="sizes read from the task, token assumptions")


class Exclusion(BaseModel):
    model: str
    why: str


class Recommendation(BaseModel):
    pick: Option | None
    cheaper: Option | None = None
    stronger: Option | None = None
    understood: Understood
    excluded: list[Exclusion] = Field(default_factory=list[Exclusion], description="ruled out by a hard constraint")
    notes: list[str] = Field(default_factory=list[str])
    source: Source

    def text(self) -> str:
        """The readable result: the options with their arguments, notes, then what was understood and excluded."""
        lines: list[str] = []
        for label, option in (("Pick", self.pick), ("Cheaper", self.cheaper), ("Stronger", self.stronger)):
            if option is None:
                continue
            lines.append(f"{label}: {option.model}. {option.reason}")
            tool, arguments = (
                ("chat", option.chat) if option.chat is not None else ("generate_image", option.generate_image)
            )
            lines.append(f"  {tool} arguments: {_compact_json(arguments or {})}")
        lines.extend(self.notes)
        understood = self.understood
        told = [f"{understood.kind} task", "traits " + ", ".join(understood.traits)]
        if understood.needs:
            told.append("needs " + ", ".join(understood.needs))
        if understood.min_context:
            told.append(f"context ≥ {understood.min_context:,}")
        if understood.min_output:
            told.append(f"output ≥ {understood.min_output:,}")
        told.extend(understood.sizes)
        lines.append("Understood: " + "; ".join(told) + ".")
        if self.excluded:
            lines.append("Excluded: " + "; ".join(f"{e.model} ({e.why})" for e in self.excluded) + ".")
        lines.append(f"(catalog: {self.source})")
        return "\n".join(lines)


@dataclass(frozen=True)
class Requirements:
    """The hard constraints: a model that misses any of them is never recommended."""

    kind: Kind
    needs: frozenset[Capability]
    min_context: int | None
    min_output: int | None

    def failures(self, model: ModelInfo) -> list[str]:
        """Why `model` cannot do the task, as short phrases; empty when it can."""
        if model.kind != self.kind:
            return [f"an {model.kind} model" if model.kind == "image" else "a chat model, not an image model"]
        found = [f"no {need}" for need in sorted(self.needs) if not model.has(need)]
        if self.min_context and (model.context_window or 0) < self.min_context:
            found.append(f"context {_tokens(model.context_window)} < {self.min_context:,} needed")
        if self.min_output and (model.max_output_tokens or 0) < self.min_output:
            found.append(f"max output {_tokens(model.max_output_tokens)} < {self.min_output:,} needed")
        return found


@dataclass(frozen=True)
class _Candidate:
    model: ModelInfo
    fit: float
    cost: float
    """Estimated USD for the task; a stand-in above every known price when the catalog gives none."""
    strength: float
    speed: float


def recommend(
    task: str,
    models: Iterable[ModelInfo],
    *,
    needs: Iterable[Capability] = (),
    min_context: int | None = None,
    min_output: int | None = None,
    priority: Priority = "balanced",
    source: Source = "bundled",
    request_caps: Sequence[tuple[int, int]] = (),
) -> Recommendation:
    """Recommend a model from `models` for `task`.

    `request_caps` is Kyma's tier ladder as (tier, max_single_request) pairs; when given, a task
    too large for Tier 0 gets a note naming the tier it needs.
    """
    # First of an id wins; legacy, retiring and non-chat/image models (audio, video, unknown) are never offered.
    catalog = sorted({m.id: m for m in reversed(list(models)) if m.offered()}.values(), key=lambda m: m.id)
    profile = understand(task)
    requirements, traits = _requirements(profile, frozenset(needs), min_context, min_output)
    tokens = _assumed_tokens(profile, requirements)
    qualifying = [model for model in catalog if not requirements.failures(model)]
    costs = {model.id: _cost(model, tokens) for model in qualifying}
    known = [cost for cost in costs.values() if cost is not None]
    unpriced = 2 * max(known) if known else 1.0  # unknown prices rank behind every known one
    candidates = [_candidate(model, traits, _or(costs[model.id], unpriced)) for model in qualifying]
    pick = _best(candidates, priority)
    understood = Understood(
        kind=requirements.kind,
        traits=sorted(traits),
        needs=sorted(requirements.needs),
        min_context=requirements.min_context,
        min_output=requirements.min_output,
        sizes=[*profile.sizes, *_assumption(requirements, tokens)],
    )
    notes = _size_notes(requirements, request_caps)
    if pick is None:
        return Recommendation(
            pick=None,
            understood=understood,
            excluded=_exclusions(catalog, requirements, traits, limit=MAX_EXCLUSIONS, closest_first=True),
            notes=[_nothing_fits(catalog, requirements), *notes],
            source=source,
        )
    cheaper = _cheaper(candidates, pick, requirements.kind)
    stronger = _stronger(candidates, pick, cheaper, requirements.kind)
    build = _OptionBuilder(traits, requirements, profile, priority, candidates)
    if pick.model.has("image_edit"):
        notes.insert(0, f"{pick.model.id} edits an image: pass image_url (an https URL of the image to change).")
    return Recommendation(
        pick=build.pick(pick),
        cheaper=build.cheaper(cheaper, pick) if cheaper else None,
        stronger=build.stronger(stronger, pick) if stronger else None,
        understood=understood,
        excluded=_exclusions(catalog, requirements, traits, limit=MAX_EXCLUSIONS, closest_first=False),
        notes=notes,
        source=source,
    )


def _requirements(
    profile: TaskProfile, needs: frozenset[Capability], min_context: int | None, min_output: int | None
) -> tuple[Requirements, frozenset[Trait]]:
    """The hard constraints from the task's words and the caller's arguments, and the traits to score by."""
    needs = profile.needs | needs
    if needs & _IMAGE_CAPABILITIES or profile.kind == "image":
        traits = profile.traits & IMAGE_TRAITS or frozenset({"image_edit" if "image_edit" in needs else "photo"})
        # sizes in an image prompt ("a poster with 20 words") are not token budgets
        return Requirements("image", needs, min_context, min_output), traits
    stated_context = None
    if profile.input_tokens or profile.output_tokens:
        stated_context = (profile.input_tokens or DEFAULT_INPUT_TOKENS) + (
            profile.output_tokens or KYMA_DEFAULT_MAX_TOKENS
        )
    requirements = Requirements(
        kind="chat",
        needs=needs,
        min_context=_largest(min_context, profile.context_tokens, stated_context),
        min_output=_largest(min_output, profile.output_tokens),
    )
    return requirements, _chat_traits(profile.traits, requirements)


def _chat_traits(traits: frozenset[Trait], requirements: Requirements) -> frozenset[Trait]:
    """The task's traits plus what the constraints say: needing tools means an agent, a big window long context."""
    implied: set[Trait] = {trait for need, trait in _NEED_TRAITS.items() if need in requirements.needs}
    if (requirements.min_context or 0) >= LONG_INPUT_TOKENS:
        implied.add("long_context")
    if (requirements.min_output or 0) > COMMON_OUTPUT_CAP:
        implied.add("long_output")
    combined = traits | implied
    return combined - {"general"} if len(combined) > 1 else combined


def _assumed_tokens(profile: TaskProfile, requirements: Requirements) -> tuple[int, int]:
    """Input and output tokens for the cost estimate: what the task states, else typical sizes."""
    output = requirements.min_output or (LONG_OUTPUT_TOKENS if "long_output" in profile.traits else None)
    return profile.input_tokens or DEFAULT_INPUT_TOKENS, output or DEFAULT_OUTPUT_TOKENS


def _assumption(requirements: Requirements, tokens: tuple[int, int]) -> list[str]:
    if requirements.kind == "image":
        return ["costs are for one image"]
    return [f"costs assume {tokens[0]:,} input and {tokens[1]:,} output tokens"]


def _candidate(model: ModelInfo, traits: frozenset[Trait], cost: float) -> _Candidate:
    return _Candidate(
        model=model,
        fit=_fit(model, traits),
        cost=cost,
        strength=_strength(model),
        speed=_guide_weight(model, "fast")
        + (0.5 if _SPEEDY.search(f"{model.id} {model.name} {model.best_for}") else 0),
    )


def _fit(model: ModelInfo, traits: frozenset[Trait]) -> float:
    """How well a model suits the task: the guide's word first, then the catalog's numbers and text."""
    total = sum(_rank_weight(row, model.id) for row in GUIDE if row.traits <= traits)
    best_for = (model.best_for or "").casefold()
    total += sum(0.3 for trait in traits if CUES[trait].search(best_for))
    if "long_context" in traits:
        total += 0.3 * min(1.0, (model.context_window or 0) / FULL_CONTEXT)
    if "long_output" in traits:
        total += 0.3 * min(1.0, (model.max_output_tokens or 0) / FULL_OUTPUT)
    if "reasoning" in traits and model.has("reasoning"):
        total += 0.1
    return total


def _rank_weight(row: GuideRow, model_id: str) -> float:
    """The guide's first choice counts 1.0, the alternatives it names a little less, in order."""
    if model_id not in row.models:
        return 0.0
    position = row.models.index(model_id)
    return 1.0 if position == 0 else max(0.4, 0.8 - 0.1 * position)


def _guide_weight(model: ModelInfo, trait: Trait) -> float:
    return max((_rank_weight(row, model.id) for row in GUIDE if trait in row.traits), default=0.0)


def _cost(model: ModelInfo, tokens: tuple[int, int]) -> float | None:
    """Estimated USD for the task: tokens at the catalog's prices, or one image."""
    if model.kind == "image":
        return max(model.image_usd, 0.0) if model.image_usd is not None else None
    if model.input_usd_per_1m is None or model.output_usd_per_1m is None:
        return None
    return max(tokens[0] * model.input_usd_per_1m + tokens[1] * model.output_usd_per_1m, 0.0) / 1e6


def _strength(model: ModelInfo) -> float:
    """A proxy for capability, since the catalog has no quality score: price level, plus "flagship"/"top"."""
    if model.kind == "image":
        price = model.image_usd
    elif model.input_usd_per_1m is not None and model.output_usd_per_1m is not None:
        price = (3 * model.input_usd_per_1m + model.output_usd_per_1m) / 4
    else:
        price = None
    level = math.log(max(price, 1e-6)) if price is not None else 0.0
    return level + (0.5 if _FLAGSHIP.search(model.best_for or "") else 0.0)


def _log_cost(candidate: _Candidate) -> float:
    return math.log(max(candidate.cost, 1e-9))


def _score(candidate: _Candidate, priority: Priority) -> float:
    match priority:
        case "balanced":
            return candidate.fit - 0.15 * _log_cost(candidate)
        case "cheapest":
            return 0.25 * candidate.fit - _log_cost(candidate)
        case "fastest":
            return candidate.speed + 0.5 * candidate.fit - 0.1 * _log_cost(candidate)
        case "best":
            return candidate.fit + 0.5 * candidate.strength


def _best(candidates: Iterable[_Candidate], priority: Priority) -> _Candidate | None:
    """The top scorer; ties go to the cheaper model, then the first id, so catalog order never matters."""
    ranked = sorted(candidates, key=lambda c: (-round(_score(c, priority), 9), c.cost, c.model.id))
    return ranked[0] if ranked else None


def _relevant(candidate: _Candidate, kind: Kind) -> bool:
    """Image models are specialists: an alternative must suit the task; any qualifying chat model can."""
    return kind == "chat" or candidate.fit > 0


def _cheaper(candidates: Sequence[_Candidate], pick: _Candidate, kind: Kind) -> _Candidate | None:
    limit = pick.cost * CHEAPER_BY
    options = [c for c in candidates if c is not pick and _relevant(c, kind) and c.cost < limit]
    return _best(options, "balanced")


def _stronger(
    candidates: Sequence[_Candidate], pick: _Candidate, cheaper: _Candidate | None, kind: Kind
) -> _Candidate | None:
    options = [
        c
        for c in candidates
        if c is not pick and c is not cheaper and _relevant(c, kind) and c.strength > pick.strength + 0.1
    ]
    return _best(options, "best")


class _OptionBuilder:
    """Turns ranked candidates into `Option`s with reasons grounded in the catalog's numbers."""

    def __init__(
        self,
        traits: frozenset[Trait],
        requirements: Requirements,
        profile: TaskProfile,
        priority: Priority,
        candidates: Sequence[_Candidate],
    ) -> None:
        self._traits = traits
        self._requirements = requirements
        self._profile = profile
        self._priority = priority
        self._qualifying = len(candidates)
        self._lowest_cost = min(c.cost for c in candidates)

    def pick(self, candidate: _Candidate) -> Option:
        return self._option(candidate, f"{self._why(candidate)}; {_numbers(candidate)}.")

    def cheaper(self, candidate: _Candidate, pick: _Candidate) -> Option:
        saving = 1 - candidate.cost / pick.cost  # a cheaper option exists only below a positive pick cost
        said = f" ({candidate.model.best_for})" if candidate.model.best_for else ""
        return self._option(
            candidate, f"About {saving:.0%} cheaper than {pick.model.id} for this task{said}; {_numbers(candidate)}."
        )

    def stronger(self, candidate: _Candidate, pick: _Candidate) -> Option:
        said = f'the catalog calls it "{candidate.model.best_for}"' if candidate.model.best_for else "a pricier model"
        return self._option(
            candidate,
            f"A step up from {pick.model.id} ({_price(candidate.model)}, vs {_price(pick.model, unit=False)}): "
            f"{said}; {_numbers(candidate, with_price=False)}.",
        )

    def _why(self, candidate: _Candidate) -> str:
        model = candidate.model
        rows = [row for row in GUIDE if row.traits <= self._traits and model.id in row.models]
        if self._priority == "cheapest" and candidate.cost == self._lowest_cost:
            return f"The cheapest of the {self._qualifying} models that meet every constraint"
        if self._priority == "fastest" and _guide_weight(model, "fast"):
            return "Kyma's guide names it for the lowest latency (alias `fast`)"
        if rows:
            row = max(rows, key=lambda r: (len(r.traits), -r.models.index(model.id)))
            verb = "picks" if row.models[0] == model.id else "lists"
            return f"Kyma's guide {verb} it for {row.job}"
        if model.best_for:
            return f'The catalog lists it for "{model.best_for}"'
        return f"It meets every constraint ({self._qualifying} models do)"

    def _option(self, candidate: _Candidate, reason: str) -> Option:
        model = candidate.model
        return Option(
            model=model.id,
            name=model.name,
            reason=reason,
            estimated_cost_usd=_estimate(candidate),
            chat=self._chat_arguments(model) if model.kind == "chat" else None,
            generate_image=self._image_arguments(model) if model.kind == "image" else None,
        )

    def _chat_arguments(self, model: ModelInfo) -> dict[str, Any]:
        """`chat` arguments; `max_tokens` only when the task needs more than Kyma's default 4,096."""
        arguments: dict[str, Any] = {"model": model.id}
        wanted = self._requirements.min_output
        if wanted is None and "long_output" in self._traits:
            wanted = model.max_output_tokens
        if wanted and wanted > KYMA_DEFAULT_MAX_TOKENS:
            arguments["max_tokens"] = min(wanted, model.max_output_tokens or wanted)
        return arguments

    def _image_arguments(self, model: ModelInfo) -> dict[str, Any]:
        arguments: dict[str, Any] = {"model": model.id}
        if self._profile.image_size:
            arguments["size"] = self._profile.image_size
        return arguments


def _estimate(candidate: _Candidate) -> float | None:
    """The cost estimate, or `None` when the catalog gives no price (a stand-in was used to rank)."""
    model = candidate.model
    if model.kind == "image":
        priced = model.image_usd is not None
    else:
        priced = model.input_usd_per_1m is not None and model.output_usd_per_1m is not None
    return round(candidate.cost, 6) if priced else None


def _numbers(candidate: _Candidate, *, with_price: bool = True) -> str:
    """The catalog facts behind a reason: context, output cap, price, estimated cost."""
    model = candidate.model
    parts: list[str] = []
    if model.context_window:
        parts.append(f"{model.context_window:,}-token context")
    if model.max_output_tokens:
        parts.append(f"{model.max_output_tokens:,}-token output")
    if with_price:
        parts.append(_price(model))
    estimate = _estimate(candidate)
    if estimate is not None and model.kind == "chat":
        parts.append(f"about ${estimate:.4f} for this task")
    return ", ".join(parts) if parts else "no limits or prices in the catalog"


def _price(model: ModelInfo, *, unit: bool = True) -> str:
    """ "$0.68/$4.05 per 1M tokens in/out" or "$0.081 per image"; without the unit: "$0.68/$4.05"."""
    if model.kind == "image":
        price = f"${model.image_usd:g}" if model.image_usd is not None else "price unknown"
        return f"{price} per image" if unit and model.image_usd is not None else price
    if model.input_usd_per_1m is None or model.output_usd_per_1m is None:
        return "price unknown"
    pair = f"${model.input_usd_per_1m:g}/${model.output_usd_per_1m:g}"
    return f"{pair} per 1M tokens in/out" if unit else pair


def _exclusions(
    catalog: Sequence[ModelInfo],
    requirements: Requirements,
    traits: frozenset[Trait],
    *,
    limit: int,
    closest_first: bool,
) -> list[Exclusion]:
    """Why notable models were ruled out: the ones the guide names for this task, and (when nothing
    fits) the models that came closest."""
    named = [model_id for row in GUIDE if row.traits <= traits for model_id in row.models]
    by_id = {m.id: m for m in catalog}
    notable = [by_id[model_id] for model_id in dict.fromkeys(named) if model_id in by_id]
    if closest_first:
        same_kind = [m for m in catalog if m.kind == requirements.kind]
        notable += sorted(same_kind, key=lambda m: (len(requirements.failures(m)), m.id))
    found: list[Exclusion] = []
    for model in dict.fromkeys(notable):
        if failures := requirements.failures(model):
            found.append(Exclusion(model=model.id, why=", ".join(failures)))
    return found[:limit]


def _nothing_fits(catalog: Sequence[ModelInfo], requirements: Requirements) -> str:
    """Which constraint nothing in the catalog meets, with the best the catalog offers instead."""
    same_kind = [m for m in catalog if m.kind == requirements.kind]
    if not same_kind:
        return f"No {requirements.kind} model is in the catalog."
    problems: list[str] = []
    if requirements.needs and not any(all(m.has(n) for n in requirements.needs) for m in same_kind):
        for need in sorted(requirements.needs):
            having = [m.id for m in same_kind if m.has(need)]
            problems.append(f"{need}: {', '.join(having[:4]) or 'none'}")
        problems.insert(0, f"no {requirements.kind} model has {' + '.join(sorted(requirements.needs))} together")
    if requirements.min_context:
        widest = max(same_kind, key=lambda m: (m.context_window or 0, m.id))
        if (widest.context_window or 0) < requirements.min_context:
            problems.append(f"the largest context window is {_tokens(widest.context_window)} ({widest.id})")
    if requirements.min_output:
        longest = max(same_kind, key=lambda m: (m.max_output_tokens or 0, m.id))
        if (longest.max_output_tokens or 0) < requirements.min_output:
            problems.append(
                f"the largest output is {_tokens(longest.max_output_tokens)} tokens ({longest.id}): split the work"
            )
    detail = "; ".join(problems) or "no model meets all of them at once"
    return f"No model meets every constraint: {detail}. Relax a constraint, or see list_models."


def _size_notes(requirements: Requirements, request_caps: Sequence[tuple[int, int]]) -> list[str]:
    """A note when the request is larger than Tier 0 lets one request be (`max_single_request`)."""
    size = requirements.min_context
    if not size or not request_caps:
        return []
    ladder = sorted(request_caps)
    if size <= ladder[0][1]:
        return []
    enough = next(((tier, cap) for tier, cap in ladder if cap >= size), None)
    first = f"Kyma caps one request at {ladder[0][1]:,} tokens on Tier {ladder[0][0]}"
    if enough is None:
        return [f"{first}; about {size:,} tokens is more than any tier allows: split the input."]
    return [f"{first}; about {size:,} tokens needs Tier {enough[0]} or higher ({enough[1]:,}); see get_limits."]


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


def _largest(*values: int | None) -> int | None:
    present = [v for v in values if v]
    return max(present) if present else None


def _tokens(value: int | None) -> str:
    return f"{value:,}" if value else "unknown"


def _compact_json(value: dict[str, Any]) -> str:
    return json.dumps(value, separators=(", ", ": "))
