"""Reading Kyma's JSON defensively: a value of the wrong type reads as missing, never as a crash.

Every JSON body kyma-mcp reads (successful answers, stream chunks, the error envelope) goes
through these functions, so no module reads untyped JSON by hand.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, cast

JSONObject = dict[str, Any]


def number(value: object) -> float | None:
    """A finite JSON number as a float (booleans, `1e999` read as infinity, and NaN are not numbers)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    try:
        result = float(value)
    except OverflowError:  # an integer literal too large for a float
        return None
    return result if math.isfinite(result) else None


def integer(value: object) -> int | None:
    """A JSON integer (booleans and floats are not)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def string(value: object) -> str | None:
    """A JSON string."""
    return value if isinstance(value, str) else None


def json_object(value: object) -> JSONObject:
    """A JSON object, or an empty one."""
    return cast(JSONObject, value) if isinstance(value, dict) else {}


def json_list(value: object) -> list[object]:
    """A JSON array, or an empty one."""
    return cast(list[object], value) if isinstance(value, list) else []


def objects(value: object) -> list[JSONObject]:
    """The JSON objects in a JSON array (anything else yields nothing)."""
    return [cast(JSONObject, item) for item in json_list(value) if isinstance(item, dict)]


def finishes(choices: object) -> bool:
    """Whether a chunk's `choices` (a JSON array, or anything) holds one with a `finish_reason`.

    Per streamed token: one type check and a lookup per choice, no list built, no `typing.cast` per
    choice (a function call at run time): a choice is checked by exact class, as `json` decodes it.
    """
    if not isinstance(choices, list):
        return False
    items: list[Any] = cast(list[Any], choices)
    for choice in items:  # noqa: SIM110 - a loop, not any(): no generator made per token
        if choice.__class__ is dict and choice.get("finish_reason"):
            return True
    return False


def strings(value: object) -> tuple[str, ...]:
    """The items of a JSON array as strings (a non-array yields nothing)."""
    return tuple(str(item) for item in json_list(value))


DECODER = json.JSONDecoder()
"""One decoder for every read of Kyma's JSON (`raw_decode` reads a value where it lies in a string)."""
_JSON_SPACE = " \t\n\r"


def parse(text: str | bytes) -> object:
    """Parsed JSON, or `None` when the text is not JSON.

    Raises nothing: a body that is not JSON is a value the caller reads as missing.
    """
    try:
        if isinstance(text, bytes):
            return cast(object, json.loads(text))
        # `json.loads` without its two whitespace scans (one per stream chunk adds up): same result.
        start = len(text) - len(text.lstrip(_JSON_SPACE)) if text[:1] in _JSON_SPACE else 0
        value, end = DECODER.raw_decode(text, start)
        if end != len(text) and text[end:].strip(_JSON_SPACE):
            return None
        return cast(object, value)
    except (ValueError, RecursionError):  # RecursionError: nested too deeply to read
        return None


def as_object(value: object) -> JSONObject | None:
    """A JSON object, or `None` when the value is something else."""
    return cast(JSONObject, value) if isinstance(value, dict) else None


def as_list(value: object) -> list[object] | None:
    """A JSON array, or `None` when the value is something else."""
    return cast(list[object], value) if isinstance(value, list) else None


@dataclass(frozen=True)
class ErrorEnvelope:
    """Kyma's error body `{"error": {"message", "type", "code", "cta_url"?}}`, read once per failure."""

    message: str
    """Kyma's message (or the raw body when it is not the envelope)."""
    cta_url: str | None
    """Where to top up, sent with a 402."""

    @classmethod
    def read(cls, body: bytes) -> ErrorEnvelope:
        text = body.decode("utf-8", "replace").strip()
        error = json_object(parse(text)).get("error")
        if isinstance(error, str):
            return cls(error, None)
        fields = json_object(error)
        return cls(string(fields.get("message")) or text, string(fields.get("cta_url")))
