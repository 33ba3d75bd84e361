"""How a tool call's arguments and result pass the SDK: strings stay strings, results are not re-checked.

The SDK JSON-decodes every string argument whose annotation is not exactly `str`, so that a client
sending `'["a", "b"]'` for a list still works. For an argument that takes text (`str | None`, a
constrained `str`), that turns the prompt `{"city": "Paris"}` into a dict and rejects it as "not a
valid string". `ToolArguments` keeps the SDK's decoding for the other arguments and passes every
text-taking argument through as sent.

It also carries the output schema without an output model: the tools build their structured
content from pydantic models that are already validated, so the SDK's second validation of each
result would only cost time (the schema is still advertised; tests check results against it).
"""

from __future__ import annotations

import types
from functools import cached_property
from typing import Annotated, Any, Union, get_args, get_origin

from mcp.server.mcpserver.utilities.func_metadata import FuncMetadata


class ToolArguments(FuncMetadata):
    """`FuncMetadata` whose JSON pre-parsing leaves text-taking arguments alone."""

    @cached_property
    def text_arguments(self) -> frozenset[str]:
        """Names (and aliases) of the arguments that accept a plain string."""
        names: set[str] = set()
        for name, field in self.arg_model.model_fields.items():
            if takes_text(field.annotation):
                names.update({name, field.alias or name})
        return frozenset(names)

    def pre_parse_json(self, data: dict[str, Any]) -> dict[str, Any]:
        text = self.text_arguments
        others = {key: value for key, value in data.items() if key not in text or not isinstance(value, str)}
        if not others:
            return data
        parsed = super().pre_parse_json(others)
        return {key: parsed.get(key, value) for key, value in data.items()}


def takes_text(annotation: object) -> bool:
    """Whether `annotation` (maybe `Annotated`, maybe a union) admits a plain `str`."""
    if annotation is str:
        return True
    origin = get_origin(annotation)
    if origin is Annotated:
        return takes_text(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        return any(takes_text(arm) for arm in get_args(annotation))
    return False
