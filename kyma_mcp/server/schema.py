"""Tool schemas trimmed for the model's context window.

Hosts put every tool's input and output schema in front of the model on every turn. Pydantic's
schemas carry a `title` on every field and spell an optional field as `anyOf [T, null]`; neither
tells the model anything its name and type don't. Output schemas also lose their descriptions:
they validate structured content for programs, while the model reads the text content.
"""

from __future__ import annotations

from typing import Any, cast

JSONSchema = dict[str, Any]


def compact(schema: JSONSchema, *, keep_descriptions: bool = True) -> JSONSchema:
    """A smaller schema that accepts exactly the same documents."""
    return cast(JSONSchema, _compact(schema, keep_descriptions))


def _compact(node: object, keep_descriptions: bool) -> object:
    if isinstance(node, list):
        return [_compact(item, keep_descriptions) for item in cast(list[object], node)]
    if not isinstance(node, dict):
        return node
    schema = cast(dict[str, object], node)
    out: dict[str, object] = {}
    for key, value in schema.items():
        if key == "title" and isinstance(value, str):
            continue
        if key == "description" and not keep_descriptions:
            continue
        if key == "default" and value is None:
            continue
        if key in ("properties", "$defs") and isinstance(value, dict):
            named = cast(dict[str, object], value)
            out[key] = {name: _compact(sub, keep_descriptions) for name, sub in named.items()}
        else:
            out[key] = _compact(value, keep_descriptions)
    return _nullable_as_type_list(out)


def _nullable_as_type_list(schema: dict[str, object]) -> dict[str, object]:
    """`{"anyOf": [{"type": T, ...}, {"type": "null"}]}` → `{"type": [T, "null"], ...}` (null joins an enum)."""
    options = schema.get("anyOf")
    if not isinstance(options, list) or len(cast(list[object], options)) != 2:
        return schema
    first, second = cast(list[object], options)
    if second != {"type": "null"} or not isinstance(first, dict):
        return schema
    inner = cast(dict[str, object], first)
    if not isinstance(inner.get("type"), str) or "const" in inner:
        return schema
    merged = {key: value for key, value in schema.items() if key != "anyOf"}
    nullable: dict[str, object] = {**inner, **merged, "type": [inner["type"], "null"]}
    if isinstance(inner.get("enum"), list):
        nullable["enum"] = [*cast(list[object], inner["enum"]), None]
    return nullable
