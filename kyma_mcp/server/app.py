"""The MCP app: `KymaServer` (errors that start with their word, compact schemas) and `build_server`,
which registers every tool module's tools and resources. Adding a tool touches its tool module only."""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

import httpx2
from mcp.server import MCPServer
from mcp.server.lowlevel.helper_types import ReadResourceContents
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.types import CallToolResult, InputRequiredResult
from mcp.types import Tool as MCPTool
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from kyma_mcp import __version__
from kyma_mcp.server import chat, images, limits, models, recommend
from kyma_mcp.server.context import ResourceSpec, SharedState, ToolSpec, resource_state
from kyma_mcp.server.schema import compact
from kyma_mcp.settings import Settings

INSTRUCTIONS = (
    "Tools for the Kyma API gateway's open models (qwen, kimi, deepseek, glm, gemma, llama, gemini) and image models. "
    "Use chat to ask a second model, list_models to see limits and prices, recommend_model to pick one "
    "for a task. Errors start with a [word] "
    "and say what to do next."
)


class KymaServer(MCPServer):
    """`MCPServer` whose tool errors start with their `[word]`, argument-validation errors included.

    The SDK prefixes every `ToolError` with "Error executing tool <name>: "; the contract is that
    the text starts with the error word, so the prefix goes. Crashes (`UnexpectedToolError`) keep
    the SDK's opaque text.
    """

    async def list_tools(self) -> list[MCPTool]:
        """The tools with compact schemas: they are re-read by the model on every turn."""
        return [
            tool.model_copy(
                update={
                    "description": inspect.cleandoc(tool.description or ""),
                    "input_schema": compact(tool.input_schema),
                    "output_schema": compact(tool.output_schema, keep_descriptions=False)
                    if tool.output_schema is not None
                    else None,
                }
            )
            for tool in await super().list_tools()
        ]

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        try:
            return await super().call_tool(name, arguments, context)
        except UnexpectedToolError:
            raise
        except ToolError as exc:
            if isinstance(exc.__cause__, ValidationError):
                problems = "; ".join(_problem(error) for error in exc.__cause__.errors()[:5])
                message = f"[invalid_request] Bad arguments for {name}: {problems}. Fix them and call again."
                raise ToolError(message) from exc.__cause__
            message = str(exc).removeprefix(f"Error executing tool {name}: ")
            if message == str(exc):
                raise
            raise ToolError(message) from exc.__cause__

    async def read_resource(
        self, uri: Any, context: Context[Any, Any] | None = None
    ) -> Iterable[ReadResourceContents] | InputRequiredResult:
        """Lend the request's `AppState` to the resource functions: the SDK passes static resources no Context."""
        if context is None:
            return await super().read_resource(uri, context)
        token = resource_state.set(context.request_context.lifespan_context)
        try:
            return await super().read_resource(uri, context)
        finally:
            resource_state.reset(token)


def _problem(error: ErrorDetails) -> str:
    """One validation problem without the rejected value, which may be huge or private."""
    where = ".".join(str(part) for part in error["loc"]) or "arguments"
    return f"{where}: {error['msg']}"


TOOL_MODULES = (chat, models, images, recommend, limits)
"""Every tool group; each module declares `TOOLS` and may declare `RESOURCES`."""


def build_server(settings: Settings, *, transport: httpx2.AsyncBaseTransport | None = None) -> MCPServer:
    """A ready-to-run server; `transport` replaces the network in tests."""

    shared = SharedState(settings, transport)
    server = KymaServer("kyma", version=__version__, instructions=INSTRUCTIONS, lifespan=shared.lifespan)
    for module in TOOL_MODULES:
        tools: tuple[ToolSpec, ...] = module.TOOLS
        for tool in tools:
            server.add_tool(tool.function, title=tool.title, annotations=tool.annotations)
        resources: tuple[ResourceSpec, ...] = getattr(module, "RESOURCES", ())
        for resource in resources:
            server.resource(resource.uri, name=resource.name, title=resource.title, mime_type=resource.mime_type)(
                resource.function
            )
    return server
