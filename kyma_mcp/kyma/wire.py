"""Reading fields of Kyma's JSON defensively: a value of the wrong type reads as missing, never as a crash."""

from __future__ import annotations

from typing import Any, cast

JSONObject = dict[str, Any]


def number(value: object) -> float | None:
    """A JSON number as a float (booleans are not numbers)."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


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
