"""Reading fields of Kyma's JSON defensively: a value of the wrong type reads as missing, never as a crash."""

from __future__ import annotations

import math
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


def json_object(value: object) -> JSONObject:
    """A JSON object, or an empty one."""
    return cast(JSONObject, value) if isinstance(value, dict) else {}


def json_list(value: object) -> list[object]:
    """A JSON array, or an empty one."""
    return cast(list[object], value) if isinstance(value, list) else []


def objects(value: object) -> list[JSONObject]:
    """The JSON objects in a JSON array (anything else yields nothing)."""
    return [cast(JSONObject, item) for item in json_list(value) if isinstance(item, dict)]
