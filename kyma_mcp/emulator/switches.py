"""The emulator's behaviour switches: one mutable object, shared live with the running app.

Tests flip fields directly on the object a `running_emulator` yields; a subprocess emulator
is driven through `POST /_emulator/switches`, which goes through `Switches.update` so a bad
value is refused with a message instead of breaking later requests.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast, get_type_hints

from kyma_mcp.emulator.catalog import load_catalog
from kyma_mcp.emulator.dialects import DIALECTS

INJECTABLE_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
IMAGE_OUTCOMES = frozenset({"succeeded", "failed", "expired", "refunded"})
JOB_OUTPUT_SHAPES = frozenset({"kyma", "url", "list", "images"})


@dataclass
class Switches:
    """How the emulated gateway behaves; the defaults are a healthy Tier 0 account with $10.

    `balance_usd` is the live balance, not an opening one: charges deduct from it and
    setting it is a top-up (or a drain). `fail_next` is consumed one status per chat or
    image-submit request. Fallback layer 2 is undocumented; the emulator treats it like
    layer 1 (same model, headers only) — INFERRED.
    """

    dialect: str = "kyma"
    """How much of Kyma the gateway shows: kyma, documented or openai (see `emulator.dialects`)."""
    latency_ms: float = 0
    """Delay before every /v1 response, before its headers."""
    token_interval_ms: float = 0
    """Delay between streamed chunks."""
    slow_models: list[str] = field(default_factory=list[str])
    """Models (ids as requested) whose streams wait `slow_token_interval_ms` between chunks instead."""
    slow_token_interval_ms: float = 250
    first_byte_delay_ms: float = 0
    """Extra delay before the first streamed chunk, after the headers."""
    model_first_byte_ms: dict[str, float] = field(default_factory=dict[str, float])
    """Per model (id as requested): more delay before its first streamed chunk, e.g. to time a fan-out."""
    reply_words: int = 24
    """Reply length in words (= tokens) unless the prompt says `[[words=N]]`."""
    fail_next: list[int] = field(default_factory=list[int])
    """Statuses (408, 409, 429, 500, 502, 503, 504) for the next chat/image-submit requests, one each."""
    retry_after_seconds: float = 1
    """`Retry-After` of an injected 429."""
    retry_after_ms: int | None = None
    """When set, every 429 also carries `retry-after-ms`."""
    fallback_layer: int = 0
    """0 primary; 1 (and 2) same model via another source; 3 a different model: `fallback_model`."""
    fallback_model: str = "llama-3.3-70b"
    tier: int = 0
    """Row of the tier matrix used by /v1/auth/limits and the rate limiter."""
    enforce_rate_limits: bool = False
    rate_window_seconds: float = 60
    """The sliding window in which `rpm` (and per-model RPM, TPM) apply; tests shorten it."""
    balance_usd: float = 10.0
    drop_stream_after_chunks: int | None = None
    """Close the connection after this many streamed chunks, without [DONE]."""
    error_event_after_chunks: int | None = None
    """Send a `data: {"error": …}` event after this many streamed chunks, then end the stream."""
    send_done: bool = True
    """End streams with `data: [DONE]` (not documented for Kyma; off, a stream ends after finish_reason)."""
    reject_stream_options: bool = False
    """Answer 400 to any chat request that carries `stream_options` (a gateway that does not accept it)."""
    hang: bool = False
    """Accept /v1 requests and never answer (until the client leaves or the server stops)."""
    gather_chats: int = 0
    """Hold each chat completion (after `latency_ms`) until this many are held at once, then let them
    all go on together: only a client that really sends them in parallel gets answers. 0: off."""
    image_delay_seconds: float = 0.3
    """Submit to finish: pending for the first third, processing after."""
    image_outcome: str = "succeeded"
    """Or "failed", "expired", "refunded": forced, with the hold refunded."""
    job_not_found_polls: int = 0
    """Answer 404 to this many polls of each new job (replica lag)."""
    job_output_shape: str = "kyma"
    """A succeeded job's `output`: kyma ({url, urls}), url ({url}), list ([{url}]) or images ({images: [...]})."""
    job_success_word: str = "succeeded"
    """The status word a succeeded job reports (other gateways say `completed`, or something unknown)."""
    echo_key_in_errors: bool = False
    """Put the caller's key in error messages, to test that clients redact it."""

    def problems(self) -> list[str]:
        """What is out of range, as sentences; empty when every field is usable."""
        found: list[str] = []
        delays = (
            "latency_ms",
            "token_interval_ms",
            "slow_token_interval_ms",
            "first_byte_delay_ms",
            "retry_after_seconds",
            "image_delay_seconds",
        )
        for name in delays:
            value: float = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                found.append(f"{name} must be a finite number >= 0")
        for model, value in self.model_first_byte_ms.items():
            if not (math.isfinite(value) and value >= 0):
                found.append(f"model_first_byte_ms[{model!r}] must be a finite number >= 0")
        if not (math.isfinite(self.rate_window_seconds) and self.rate_window_seconds > 0):
            found.append("rate_window_seconds must be > 0")
        if self.reply_words < 1:
            found.append("reply_words must be >= 1")
        if bad := sorted(set(self.fail_next) - INJECTABLE_STATUSES):
            found.append(f"fail_next may only hold {sorted(INJECTABLE_STATUSES)}, not {bad}")
        if self.retry_after_ms is not None and self.retry_after_ms < 0:
            found.append("retry_after_ms must be >= 0")
        if self.fallback_layer not in (0, 1, 2, 3):
            found.append("fallback_layer must be 0, 1, 2 or 3")
        if load_catalog().chat_model(self.fallback_model) is None:
            found.append(f"fallback_model {self.fallback_model!r} is not a chat model of the catalog")
        if not 0 <= self.tier <= 4:
            found.append("tier must be 0-4")
        for name, count in (
            ("drop_stream_after_chunks", self.drop_stream_after_chunks),
            ("error_event_after_chunks", self.error_event_after_chunks),
        ):
            if count is not None and count < 0:
                found.append(f"{name} must be >= 0")
        if self.dialect not in DIALECTS:
            found.append(f"dialect must be one of {', '.join(DIALECTS)}")
        if self.job_output_shape not in JOB_OUTPUT_SHAPES:
            found.append(f"job_output_shape must be one of {sorted(JOB_OUTPUT_SHAPES)}")
        if self.gather_chats < 0:
            found.append("gather_chats must be >= 0")
        if self.job_not_found_polls < 0:
            found.append("job_not_found_polls must be >= 0")
        if self.image_outcome not in IMAGE_OUTCOMES:
            found.append(f"image_outcome must be one of {sorted(IMAGE_OUTCOMES)}")
        return found

    def update(self, changes: Mapping[str, object]) -> None:
        """Apply `changes` all at once, or none of them.

        Raises:
            ValueError: an unknown field, a value of the wrong JSON type, or a value out of range.
        """
        hints = _field_types()
        if unknown := sorted(set(changes) - set(hints)):
            raise ValueError(f"unknown switch(es): {', '.join(unknown)}; known: {', '.join(hints)}")
        converted = {name: _convert(name, hints[name], value) for name, value in changes.items()}
        candidate = dataclasses.replace(self, **converted)
        if found := candidate.problems():
            raise ValueError("; ".join(found))
        self.restore(candidate)

    def restore(self, other: Switches) -> None:
        """Copy every field of `other` into this object, keeping its identity (the app holds it)."""
        for item in dataclasses.fields(self):
            setattr(self, item.name, copy.copy(getattr(other, item.name)))  # fail_next must not be shared

    def clone(self) -> Switches:
        clone = Switches()
        clone.restore(self)
        return clone

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _field_types() -> dict[str, object]:
    hints = get_type_hints(Switches)
    return {item.name: hints[item.name] for item in dataclasses.fields(Switches)}


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError
    return float(value)


def _integer(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError
    return value


def _optional_integer(value: object) -> int | None:
    return None if value is None else _integer(value)


def _boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError
    return value


def _string(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError
    return value


def _strings(value: object) -> list[str]:
    if not isinstance(value, list):
        raise TypeError
    return [_string(item) for item in cast(list[object], value)]


def _integers(value: object) -> list[int]:
    if not isinstance(value, list):
        raise TypeError
    return [_integer(item) for item in cast(list[object], value)]


def _delays(value: object) -> dict[str, float]:
    if not isinstance(value, dict):
        raise TypeError
    return {_string(key): _number(item) for key, item in cast(dict[object, object], value).items()}


# Per declared field type: what JSON it takes (for the error message) and how to check it.
_CONVERTERS: dict[object, tuple[str, Callable[[object], object]]] = {
    float: ("a number", _number),
    int: ("an integer", _integer),
    int | None: ("an integer or null", _optional_integer),
    bool: ("true or false", _boolean),
    str: ("a string", _string),
    list[int]: ("a list of integers", _integers),
    list[str]: ("a list of strings", _strings),
    dict[str, float]: ("an object of numbers", _delays),
}


def _convert(name: str, declared: object, value: object) -> object:
    expected, converter = _CONVERTERS[declared]
    try:
        return converter(value)
    except TypeError:
        raise ValueError(f"switch {name} expects {expected}, got {type(value).__name__}") from None
