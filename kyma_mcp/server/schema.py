"""Tool schemas trimmed for the model's context window.

Hosts put every tool's name, description and input schema in front of the model on every turn,
so the input schemas are what the model needs to call well and nothing more (`model_visible`):
no titles (the name says it), no defaults (the description says what absent means), no bounds
that only restate a check the server makes anyway (its error tells the model what to fix); enums
and small numeric ranges stay, because they change what the model writes. Optional fields are
spelled `type: [T, "null"]`, objects say `additionalProperties: false`, and there are no `$ref`s:
the form OpenAI strict mode and Ajv strict mode both take as it is.

Output schemas travel on the wire but few hosts show them to the model; `compact` keeps them
exact and small for the programs that validate structured content.

Neither keeps `format` (pydantic writes `date-time` for a datetime): in draft 2020-12 it is an
annotation that validates nothing, and Ajv in strict mode without its formats plugin refuses to
compile a schema that names one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

JSONSchema = dict[str, Any]

SMALL_RANGE = 10
"""A `minimum`..`maximum` range at most this wide (temperature 0..2, n 1..4) is kept for the model."""
BOUND_KEYWORDS = frozenset(
    {"minLength", "maxLength", "minItems", "maxItems", "pattern", "uniqueItems", "exclusiveMinimum", "exclusiveMaximum"}
)
"""Checks the server makes itself: advertising them costs context and tells the model little."""


@dataclass(frozen=True)
class _Rules:
    keep_descriptions: bool
    for_model: bool
    root: JSONSchema


def compact(schema: JSONSchema, *, keep_descriptions: bool = True) -> JSONSchema:
    """A smaller schema that accepts exactly the same documents (titles and null defaults go)."""
    return cast(JSONSchema, _walk(schema, _Rules(keep_descriptions, for_model=False, root=schema)))


def model_visible(schema: JSONSchema, *, required: Iterable[str] = ()) -> JSONSchema:
    """The input schema the model reads: flat, without defaults or restated bounds, closed to unknown
    arguments; `required` adds names the model should always send (nullable ones it may send as null)."""
    visible = cast(JSONSchema, _walk(schema, _Rules(keep_descriptions=True, for_model=True, root=schema)))
    visible.pop("$defs", None)
    names = list(cast(dict[str, object], visible.get("properties", {})))
    wanted = {*cast(list[str], visible.get("required", [])), *required}
    missing = wanted - set(names)
    if missing:
        raise ValueError(f"required names that are not arguments: {sorted(missing)}")
    visible.pop("required", None)
    if wanted:
        visible["required"] = [name for name in names if name in wanted]
    visible["additionalProperties"] = False
    return visible


def _walk(node: object, rules: _Rules) -> object:
    if isinstance(node, list):
        return [_walk(item, rules) for item in cast(list[object], node)]
    if not isinstance(node, dict):
        return node
    schema = cast(dict[str, object], node)
    ref = schema.get("$ref")
    if rules.for_model and isinstance(ref, str):
        return _walk({**_resolve(rules.root, ref), **{k: v for k, v in schema.items() if k != "$ref"}}, rules)
    out: dict[str, object] = {}
    for key, value in schema.items():
        if key in ("title", "format") and isinstance(value, str):
            continue
        if key == "description" and not rules.keep_descriptions:
            continue
        if key == "default" and (value is None or rules.for_model):
            continue
        if rules.for_model and (key in BOUND_KEYWORDS or (key in ("minimum", "maximum") and not _small(schema))):
            continue
        if key in ("properties", "$defs") and isinstance(value, dict):
            named = cast(dict[str, object], value)
            out[key] = {name: _walk(sub, rules) for name, sub in named.items()}
        else:
            out[key] = _walk(value, rules)
    return _string_choices_as_one_enum(_nullable_as_type_list(out))


def _resolve(root: JSONSchema, ref: str) -> dict[str, object]:
    target: object = root
    for part in ref.removeprefix("#/").split("/"):
        target = cast(dict[str, object], target)[part]
    return cast(dict[str, object], target)


def _small(schema: dict[str, object]) -> bool:
    low, high = schema.get("minimum"), schema.get("maximum")
    return isinstance(low, int | float) and isinstance(high, int | float) and high - low <= SMALL_RANGE


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


def _string_choices_as_one_enum(schema: dict[str, object]) -> dict[str, object]:
    """`{"anyOf": [{"enum": [a, b]}, {"const": c}]}` of strings → `{"type": "string", "enum": [a, b, c]}`."""
    options = schema.get("anyOf")
    if not isinstance(options, list):
        return schema
    choices: list[object] = []
    for option in cast(list[object], options):
        if not isinstance(option, dict):
            return schema
        arm = cast(dict[str, object], option)
        if arm.get("type") != "string" or set(arm) - {"type", "enum", "const"}:
            return schema
        choices += cast(list[object], arm["enum"]) if "enum" in arm else [arm.get("const")]
    if not choices or not all(isinstance(choice, str) for choice in choices):
        return schema
    rest = {key: value for key, value in schema.items() if key != "anyOf"}
    return {"type": "string", "enum": choices, **rest}
