"""Reading MCP tool results in tests: the text a model sees, the structured content, the error text."""

from typing import Any

from mcp.types import CallToolResult, TextContent


def text_of(result: CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, TextContent))


def structured(result: CallToolResult) -> dict[str, Any]:
    """The structured content of a successful result (fails the test, showing the text, otherwise)."""
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    return result.structured_content


def error_text(result: CallToolResult) -> str:
    """The text of a failed result (fails the test, showing the text, otherwise)."""
    assert result.is_error, text_of(result)
    return text_of(result)
