"""What a task asks of a model, read from plain words, and Kyma's decision guide as data.

`understand` turns a free-text task into a `TaskProfile`: its traits (code, reasoning, vision …),
the capabilities it cannot do without, and the token sizes it states ("a 300-page PDF"). `GUIDE`
is Kyma's "Which model should I use?" decision guide as rows; the recommender scores with it and the
`kyma://guide` resource is rendered from it, so the two cannot disagree. Pure and deterministic.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from kyma_mcp.catalog import Capability, Kind
from kyma_mcp.patterns import LazyPattern

Trait = Literal[
    "general",
    "code",
    "agentic",
    "reasoning",
    "long_context",
    "vision",
    "long_output",
    "fast",
    "bulk",
    "photo",
    "typography",
    "vector",
    "image_edit",
]
IMAGE_TRAITS: frozenset[Trait] = frozenset({"photo", "typography", "vector", "image_edit"})
_MADE_IMAGE_TRAITS: tuple[Trait, ...] = ("photo", "typography", "vector")
_CHAT_TRAITS: tuple[Trait, ...] = ("code", "agentic", "reasoning", "long_context", "long_output", "fast", "bulk")

LONG_INPUT_TOKENS = 100_000
"""A stated input at least this large makes the task a long-context one."""
COMMON_OUTPUT_CAP = 8_192
"""Most models stop here; a stated output above it makes the task a long-output one."""
TOKENS_PER_UNIT = {"token": 1.0, "word": 4 / 3, "page": 500.0, "character": 0.25, "char": 0.25, "line": 10.0}
"""Rough sizes: a page of prose ≈ 500 tokens, a word ≈ 1.33, a line of code ≈ 10."""


def _words(alternatives: str) -> LazyPattern:
    """A pattern matching any of the `|`-separated alternatives as whole words."""
    return LazyPattern(r"\b(?:" + alternatives + r")\b")


CUES: dict[Trait, LazyPattern] = {
    "general": _words(r"default|general|general[- ]purpose|all[- ]round|everyday|balanced"),
    "code": _words(
        r"code|coding|coder|programm\w*|refactor\w*|debug\w*|bugs?|python|javascript|typescript|golang|rust|java|"
        r"kotlin|sql|regex(?:es)?|unit tests?|test suites?|codebase|repo(?:sitory)?|pull requests?|stack traces?|"
        r"compil\w*|scripts?|functions?(?![- ]call)|implement\w*|endpoints?|algorithms?|frontend|backend"
    ),
    "agentic": _words(
        r"agents?|agentic|tool[- ]?(?:use|using|calls?|calling|heavy)|tools|function[- ]calling|mcp|multi[- ]step|"
        r"autonomous\w*|orchestrat\w*|workflows?|browser|brows\w*|api calls?"
    ),
    "reasoning": _words(
        r"reason\w*|math\w*|proofs?|prove|theorems?|puzzles?|riddles?|calculus|algebra\w*|equations?|olympiad|"
        r"step[- ]by[- ]step|deep analysis|hard problems?|physics|chess|probabilit\w*|derivations?|deduc\w*|logic"
    ),
    "long_context": _words(
        r"long[- ]context|long documents?|(?:entire|whole|full) (?:books?|codebases?|repos?|repositories|archives?|"
        r"documents?)|hundreds of pages|thousands of pages|large (?:documents?|files?|codebases?|pdfs?)|"
        r"1m(?:[- ]token)? context|1m tokens|millions? (?:of )?tokens?|transcripts?|many documents|long pdfs?"
    ),
    "vision": _words(r"vision|multimodal|images?|screenshots?|photos?|pictures?|diagrams?"),
    "long_output": _words(
        r"long[- ]form|long (?:outputs?|answers?|reports?|responses?|generations?|stor(?:y|ies)|essays?|articles?)|"
        r"novels?|chapters?|lengthy|very long|exhaustive|thousands of (?:words|lines)|big outputs?|"
        r"(?:whole|entire|full|complete) (?:book|manuscript|documentation|specification)"
    ),
    "fast": _words(
        r"fast\w*|quick\w*|low[- ]latency|latency|real[- ]?time|instant\w*|snappy|speed|autocomplet\w*|interactive"
    ),
    "bulk": _words(
        r"bulk|batch\w*|classif\w*|extract\w*|tagging|labell?ing|cheap\w*|budget|high[- ]volume|millions? of|"
        r"throughput|dedup\w*|sentiment|triage"
    ),
    "photo": _words(
        r"photos?|photograph\w*|photo-?realistic|realistic|cinematic|hero (?:shots?|images?)|editorial|portraits?|"
        r"landscapes?|product (?:shots?|photos?)|stock (?:photos?|images?)"
    ),
    "typography": _words(
        r"logos?|typograph\w*|posters?|lettering|wordmarks?|packaging|signage|flyers?|book covers?|t-shirts?|"
        r"headlines?|with the (?:words?|text)|text (?:in|on) (?:the |an? )?\w+|product labels?"
    ),
    "vector": _words(
        r"vectors?|svg|illustrations?|illustrated|icons?|flat (?:design|art|style)|brand assets?|clip ?art|"
        r"line art|infographics?|mascots?"
    ),
    "image_edit": _words(r"edit\w*|inpaint\w*|outpaint\w*|retouch\w*|modify|refine"),
}
"""What each trait sounds like, matched against a task and against a model's catalog `best_for`."""

_IMAGE_NOUN = (
    r"(?:images?|pictures?|photos?|photographs?|illustrations?|logos?|posters?|icons?|artwork|renders?|"
    r"wallpapers?|banners?|thumbnails?|drawings?|paintings?|sketch(?:es)?|avatars?|graphics?|covers?|shots?)"
)
_MAKE = LazyPattern(
    r"\b(?:generate|create|make|draw|design|render|paint|produce|illustrate|sketch|imagine)\w*"
    r"(?:\W+\w+){0,6}?\W+" + _IMAGE_NOUN + r"\b"
)
_MAKE_ALONE = LazyPattern(
    r"\b(?:cinematic|photo-?realistic|hero shots?|wallpapers?|concept art|clip ?art|line art|svg|text-to-image|"
    r"image generation|(?:flat|vector|digital) illustrations?|vector (?:art|graphics?|icons?|logos?)|book covers?)\b|"
    r"^\W*(?:an?|the)\s+(?:[\w-]+\s+){0,4}?" + _IMAGE_NOUN + r"\b"
)
"""Words that mean an image is to be made without a verb: "a cinematic hero shot of …", "a minimalist logo"."""
_EDIT = LazyPattern(
    r"\b(?:image[- ]edit\w*|inpaint\w*|outpaint\w*|retouch\w*|background removal)\b|"
    r"\b(?:edit|modify|change|replace|remove|erase|recolou?r|restyle|swap|touch up|clean up|turn|transform)\w*"
    r"(?:\W+\w+){0,6}?\W+" + _IMAGE_NOUN + r"\b"
)
_SEE = LazyPattern(
    r"\b(?:describe|read|extract|analy[sz]e|caption|transcribe|identify|detect|recogni[sz]e|look at|"
    r"understand|interpret|compare|count|parse|review|summari[sz]e|explain|inspect|what'?s in|what is in)\w*"
    r"(?:\W+\w+){0,6}?\W+" + _IMAGE_NOUN + r"\b|"
    r"\b(?:screenshots?|diagrams?|charts?|scans?|scanned|ocr|receipts?|handwrit\w*|whiteboards?|x-rays?|"
    r"ui mockups?|webcam|video frames?|vision|multimodal)\b"
)

_NUMBER = r"(?P<num>[0-9]{1,3}(?:,[0-9]{3})+|[0-9]{1,12}(?:\.[0-9]{1,6})?)\s*(?P<mult>k|m|thousand|million)?\b"
_SIZE = LazyPattern(_NUMBER + r"[\s-]*(?P<unit>tokens?|words?|pages?|characters?|chars?|lines?)\b")
_CONTEXT = LazyPattern(_NUMBER + r"[\s-]*(?:tokens?[\s-]*)?context\b")
_MULTIPLIERS = {"k": 1e3, "thousand": 1e3, "m": 1e6, "million": 1e6}
_OUTPUT_AFTER = LazyPattern(
    r"(?:[\s-]*\w+)??[\s-]*(?:of\s+)?(?:outputs?|responses?|repl(?:y|ies)|answers?|completions?)\b"
)
_VERBS = LazyPattern(
    r"\b(?P<out>write|writes|writing|generate|produce|draft|compose|output|return|emit|author|expand|create)\b|"
    r"\b(?:read|summari[sz]e|analy[sz]e|review|process|ingest|search|parse|extract|classify|translate|digest|"
    r"compare|audit|load|upload|feed|paste|attach)\b|"
    r"\b(?:of|about|from|in|across|over|on)\s+(?:an?|the|this|that|these|those|my|our|your|their)\b"
)
_CLAUSE_END = LazyPattern(r"[.;!?\n]")
# the aspect ratios Kyma's image models accept, or WxH
_ASPECT = LazyPattern(r"\b(1:1|16:9|9:16|4:3|3:4|21:9)\b|\b([0-9]{3,4})\s*[x\u00d7]\s*([0-9]{3,4})\b")


@dataclass(frozen=True)
class TaskProfile:
    """What the words of a task imply; sizes are `None` when the task states none."""

    traits: frozenset[Trait]
    kind: Kind
    needs: frozenset[Capability]
    """Capabilities the task cannot do without (a screenshot needs vision, an agent needs tools)."""
    input_tokens: int | None = None
    output_tokens: int | None = None
    context_tokens: int | None = None
    """A context window the task asks for outright ("a 200k context")."""
    sizes: tuple[str, ...] = ()
    """How the sizes were read, e.g. "300 pages ≈ 150,000 input tokens"."""
    image_size: str | None = None
    """An aspect ratio or WxH the task names, for `generate_image`."""


def understand(task: str) -> TaskProfile:
    """Read a task's traits, hard needs and stated sizes."""
    text = task.casefold()
    making = bool(_MAKE.search(text) or _MAKE_ALONE.search(text))
    seeing = bool(_SEE.search(text))
    if _EDIT.search(text) and not seeing:
        return TaskProfile(frozenset({"image_edit"}), "image", frozenset({"image_edit"}), image_size=_aspect(text))
    if making and not seeing:
        made: frozenset[Trait] = frozenset(trait for trait in _MADE_IMAGE_TRAITS if CUES[trait].search(text))
        return TaskProfile(
            made or frozenset({"photo"}), "image", frozenset({"image_generation"}), image_size=_aspect(text)
        )
    traits: set[Trait] = {trait for trait in _CHAT_TRAITS if CUES[trait].search(text)}
    needs: set[Capability] = set()
    if seeing:
        traits.add("vision")
        needs.add("vision")
    if "agentic" in traits:
        needs.add("tools")
    input_tokens, output_tokens, sizes = _sizes(text)
    if input_tokens is not None and input_tokens >= LONG_INPUT_TOKENS:
        traits.add("long_context")
    if output_tokens is not None and output_tokens > COMMON_OUTPUT_CAP:
        traits.add("long_output")
    return TaskProfile(
        traits=frozenset(traits) if traits else frozenset({"general"}),
        kind="chat",
        needs=frozenset(needs),
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        context_tokens=_stated_context(text),
        sizes=sizes,
    )


def _sizes(text: str) -> tuple[int | None, int | None, tuple[str, ...]]:
    """The largest input and output the text states, in tokens, and how each was read."""
    largest: dict[str, int] = {}
    readings: list[str] = []
    for match in _SIZE.finditer(text):
        if _CONTEXT.match(text, match.start()):
            continue
        unit = match["unit"].rstrip("s")
        amount = _amount(match)
        tokens = round(amount * TOKENS_PER_UNIT[unit])
        if tokens <= 0:
            continue
        direction = "output" if _is_output(text, match) else "input"
        largest[direction] = max(largest.get(direction, 0), tokens)
        shown = f"{amount:,.0f} {unit}s"
        readings.append(f"{shown} ≈ {tokens:,} {direction} tokens" if unit != "token" else f"{shown} of {direction}")
    return largest.get("input"), largest.get("output"), tuple(readings)


def _stated_context(text: str) -> int | None:
    found = [round(_amount(match)) for match in _CONTEXT.finditer(text)]
    return max(found) if found and max(found) > 0 else None


def _amount(match: re.Match[str]) -> float:
    return float(match["num"].replace(",", "")) * _MULTIPLIERS.get(match["mult"] or "", 1.0)


def _is_output(text: str, match: re.Match[str]) -> bool:
    """Whether a stated size is what the model should write: "a 40k-token output", "write a 40k-token report"."""
    if _OUTPUT_AFTER.match(text, match.end()):
        return True
    clause_start = max((m.end() for m in _CLAUSE_END.finditer(text, 0, match.start())), default=0)
    verbs = list(_VERBS.finditer(text, clause_start, match.start()))
    return bool(verbs) and verbs[-1]["out"] is not None


def _aspect(text: str) -> str | None:
    match = _ASPECT.search(text)
    if match is None:
        return None
    return match[1] or f"{match[2]}x{match[3]}"


@dataclass(frozen=True)
class GuideRow:
    """One row of Kyma's "which model should I use?" guide."""

    job: str
    """What the row is for, as a phrase that reads after "for": "tool-heavy agents"."""
    traits: frozenset[Trait]
    """The row applies to a task that has all of these traits."""
    models: tuple[str, ...]
    """The models the guide names, its first choice first."""
    source: str
    """What Kyma's documentation says, briefly."""
    example: str
    """A task this row answers; the guide shows what `recommend_model` picks for it."""


def _row(job: str, traits: set[Trait], models: tuple[str, ...], source: str, example: str) -> GuideRow:
    return GuideRow(job, frozenset(traits), models, source, example)


GUIDE: tuple[GuideRow, ...] = (
    _row(
        "a safe general default",
        {"general"},
        ("qwen-3.6-plus",),
        'FAQ: "the safest default"; pricing page: "Best default overall"; alias `best`',
        "Draft a friendly reply to a customer asking about our refund policy",
    ),
    _row(
        "tool-heavy agents and agentic loops",
        {"agentic"},
        ("kimi-k2.6", "kimi-k2.5"),
        'FAQ: the pick for tool-heavy agents; "Agentic flagship"; alias `agent` = kimi-k2.5',
        "Run a tool-heavy agent loop that calls our CRM and calendar tools",
    ),
    _row(
        "hard reasoning, math and deep analysis",
        {"reasoning"},
        ("deepseek-r1", "deepseek-v4-pro"),
        'FAQ: hard reasoning; "Deep reasoning"; alias `reasoning`; deepseek-v4-pro for top reasoning',
        "Prove that the square root of 2 is irrational, step by step",
    ),
    _row(
        "long documents (1M-token context)",
        {"long_context"},
        ("gemini-3-flash", "deepseek-v4-flash"),
        'FAQ: the long-context pick, "up to 1M tokens with Gemini models" (gemini-2.5-flash retired 2026-10-20)',
        "Summarize a 300-page PDF contract",
    ),
    _row(
        "reading images cheaply",
        {"vision"},
        ("gemma-4-31b",),
        'FAQ: "the cheapest strong multimodal option"; alias `vision`',
        "Extract the totals from a photo of a receipt",
    ),
    _row(
        "agents that see images and call tools",
        {"vision", "agentic"},
        ("kimi-k2.6",),
        "FAQ: vision when you also need tool-heavy agent behaviour",
        "An agent that reads UI screenshots and calls browser tools",
    ),
    _row(
        "long outputs",
        {"long_output"},
        ("glm-5.1", "deepseek-r1"),
        "FAQ: long generation, glm-5.1 writes up to 65K tokens, deepseek-r1 32K",
        "Write a 40k-token technical report",
    ),
    _row(
        "code",
        {"code"},
        ("qwen-3-coder", "qwen-3-32b", "kimi-k2.5"),
        'pricing page: "Code-specialized output", "Fast coding loops"; alias `code` = kimi-k2.5',
        "Refactor this Python module and add unit tests",
    ),
    _row(
        "the lowest latency",
        {"fast"},
        ("llama-3.3-70b", "qwen-3-32b"),
        "alias `fast` = llama-3.3-70b",
        "A real-time autocomplete that must answer with low latency",
    ),
    _row(
        "cheap bulk work and extraction",
        {"bulk"},
        ("glm-4.7-flash", "gemma-4-31b", "deepseek-v4-flash", "gpt-oss-120b", "glm-4.5-air"),
        'pricing page: "Cheapest useful models"; alias `cheap` = glm-4.7-flash',
        "Classify support tickets by topic in bulk",
    ),
    _row(
        "photos, hero shots and editorial images",
        {"photo"},
        ("flux-2-pro", "imagen-4"),
        'image guide: flux-2-pro replaces the legacy flux-1.1-ultra ("Cinematic photos, hero shots, editorial")',
        "A cinematic hero shot of a mountain cabin at dawn, 16:9",
    ),
    _row(
        "editing an existing image",
        {"image_edit"},
        ("flux-kontext-pro",),
        "image guide: inpaint, refine, modify; needs `image_url`",
        "Edit this photo to remove the background",
    ),
    _row(
        "typography, logos and posters",
        {"typography"},
        ("ideogram-v3",),
        'image guide: "Typography, logos, posters, packaging"',
        "Design a logo with the words 'Blue Fern Bakery'",
    ),
    _row(
        "vector art, illustration and brand assets",
        {"vector"},
        ("recraft-v4-vector", "recraft-v4"),
        "image guide: recraft-v4 (Kyma's default) replaces the legacy recraft-v3; recraft-v4-vector makes SVG",
        "A flat vector illustration for our onboarding screens",
    ),
)
