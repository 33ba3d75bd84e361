"""Reading MCP tool results in tests: the text a model sees, the result's data, the error text."""

from collections.abc import Mapping
from typing import Any

import jsonschema
from jsonschema.protocols import Validator
from mcp.types import CallToolResult, TextContent
from pydantic import BaseModel

from kyma_mcp.catalog import ListModelsResult
from kyma_mcp.chat import ChatResult
from kyma_mcp.images.jobs import ImageResult
from kyma_mcp.recommend.ranking import Recommendation
from kyma_mcp.server.context import RESULT_META

FOOTER = "\n\n---\n[kyma-mcp] "
"""Where chat's text ends its reply and starts its notes (`ChatResult.text`)."""
TOOL_CALLS = "Tool calls (send each result back"


def text_of(result: CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, TextContent))


def facts(result: CallToolResult) -> dict[str, Any]:
    """The `_meta` facts of a text-first tool's result (chat, list_models, recommend_model, the image tools)."""
    assert not result.is_error, text_of(result)
    assert result.structured_content is None, "a text-first tool returned structured content"
    assert result.meta is not None, "no _meta"
    assert RESULT_META in result.meta, "no facts in _meta"
    return dict(result.meta[RESULT_META])


def structured(result: CallToolResult) -> dict[str, Any]:
    """The whole result as its model dumps it (fails the test, showing the text, on an error).

    A data tool's structured content as it is; for a text-first tool, its `_meta` facts read back into
    their model (so defaults are back) and, for chat, the reply the text carries.
    """
    assert not result.is_error, text_of(result)
    if result.structured_content is not None:
        return result.structured_content
    data = facts(result)
    model: type[BaseModel]
    if "model_requested" in data:
        model, data["reply"] = ChatResult, reply_of(text_of(result), bool(data.get("tool_calls")))
    elif "job_id" in data:
        model = ImageResult
    elif "understood" in data:
        model = Recommendation
    else:
        model = ListModelsResult
    return model.model_validate(data).model_dump(mode="json")


def reply_of(text: str, has_tool_calls: bool) -> str:
    """chat's reply: its text before the tool-call lines and the notes."""
    reply = text.split(FOOTER, 1)[0]
    if has_tool_calls:
        reply = reply.split(TOOL_CALLS, 1)[0].removesuffix("\n")
    return reply


def error_text(result: CallToolResult) -> str:
    """The text of a failed result (fails the test, showing the text, otherwise)."""
    assert result.is_error, text_of(result)
    return text_of(result)


def schema_validator(schema: Mapping[str, Any]) -> Validator:
    """A JSON Schema 2020-12 validator, typed through jsonschema's `Validator` protocol (the package ships
    no type information of its own)."""
    return jsonschema.Draft202012Validator(schema)
