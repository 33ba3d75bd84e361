"""The MCP app: `KymaServer` (errors that start with their word, compact schemas) and `build_server`,
which registers every tool module's tools and resources. Adding a tool touches its tool module only."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from functools import cache
from typing import Any

from mcp.server import MCPServer
from mcp.server.lowlevel.helper_types import ReadResourceContents
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.server.mcpserver.tools import Tool
from mcp.types import CallToolResult, InputRequiredResult, TextContent
from mcp.types import Tool as MCPTool
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from kyma_mcp import __version__
from kyma_mcp.errors import argument_problem, bad_arguments_error, redact, unknown_tool_error
from kyma_mcp.kyma.client import Transport
from kyma_mcp.redaction import redact_json
from kyma_mcp.server import chat, compare, conversations, images, limits, models, recommend, spend
from kyma_mcp.server.arguments import ToolArguments
from kyma_mcp.server.context import ResourceSpec, SharedState, ToolSpec, resource_state
from kyma_mcp.server.schema import compact, model_visible
from kyma_mcp.settings import Settings
from kyma_mcp.store.behind import WriteBehind

INSTRUCTIONS = (
    "Tools for the Kyma API gateway's open models (qwen, kimi, deepseek, glm, gemma, llama, gemini) and image models. "
    "Use chat to ask a second model, list_models to see limits and prices, recommend_model to pick one "
    "for a task. Errors start with a [word] "
    "and say what to do next."
)


class KymaServer(MCPServer):
    """`MCPServer` whose tool errors start with their `[word]`, argument-validation errors included.

    The SDK wraps every `ToolError` a tool raises in one reading "Error executing tool <name>: …";
    the contract is that the text starts with the error word, so the tool's own `ToolError` (the
    wrapper's cause) is raised instead. An unknown tool answers `[invalid_request]`. Crashes
    (`UnexpectedToolError`) keep the SDK's opaque text.
    """

    _listed: list[MCPTool] | None = None
    on_first_list: Callable[[], object] | None = None
    """Called once, when the first tools/list is answered: the server is serving (`prepare_soon`)."""

    async def list_tools(self) -> list[MCPTool]:
        """The tool list, built once: the tools do not change while the server runs."""
        if self._listed is None:
            self._listed = await super().list_tools()
            if self.on_first_list is not None:
                self.on_first_list()
        return self._listed

    def add_tool(self, *args: Any, **kwargs: Any) -> None:
        super().add_tool(*args, **kwargs)
        self._listed = None

    def remove_tool(self, name: str) -> None:
        super().remove_tool(name)
        self._listed = None

    behind: WriteBehind | None = None
    """The records written after their replies, which stdio turns on (`store/behind.py`)."""
    secrets: tuple[str, ...] = ()
    """The API key and bearer token: removed, in all their forms, from every result and resource."""
    stdio_drain_seconds: float = 55.0
    """How long, after stdin closed, requests already read may take to be answered (`serve_stdio`)."""

    async def run_stdio_async(self) -> None:
        """Serve stdio, answering every request read before stdin closed (`server/stdio.py`)."""
        from kyma_mcp.server.stdio import serve_stdio

        await serve_stdio(self, drain_seconds=self.stdio_drain_seconds, behind=self.behind)

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        try:
            result = await super().call_tool(name, arguments, context)
        except UnexpectedToolError:
            raise
        except ToolError as exc:
            if isinstance(exc.__cause__, ValidationError):
                problems = [_problem(error) for error in exc.__cause__.errors()[:5]]
                raise ToolError(str(bad_arguments_error(name, problems))) from exc.__cause__
            if isinstance(exc.__cause__, ToolError):  # ours, raised by `tool_errors`: its text as it is
                raise ToolError(redact(str(exc.__cause__), self.secrets)) from exc.__cause__
            known = [tool.name for tool in await super().list_tools()]
            if name not in known:
                raise ToolError(str(unknown_tool_error(name, known))) from None
            if not self.secrets:
                raise
            raise ToolError(redact(str(exc), self.secrets)) from exc.__cause__
        return self._redacted(result) if isinstance(result, CallToolResult) else result

    def _redacted(self, result: CallToolResult) -> CallToolResult:
        """The result with every secret form removed from its text, structured content and `_meta` facts
        (which pass gateway JSON through, e.g. get_limits); image data is ours, not upstream text."""
        if not self.secrets:
            return result
        content = [
            block.model_copy(update={"text": redact(block.text, self.secrets)})
            if isinstance(block, TextContent)
            else block
            for block in result.content
        ]
        structured = redact_json(result.structured_content, self.secrets)
        meta = redact_json(result.meta, self.secrets)
        return result.model_copy(update={"content": content, "structured_content": structured, "meta": meta})

    async def read_resource(
        self, uri: Any, context: Context[Any, Any] | None = None
    ) -> Iterable[ReadResourceContents] | InputRequiredResult:
        """Lend the request's `AppState` to the resource functions: the SDK passes static resources no Context."""
        if context is None:
            return await super().read_resource(uri, context)
        token = resource_state.set(context.request_context.lifespan_context)
        try:
            contents = await super().read_resource(uri, context)
        finally:
            resource_state.reset(token)
        if isinstance(contents, InputRequiredResult) or not self.secrets:
            return contents
        return [
            ReadResourceContents(redact(item.content, self.secrets), item.mime_type, item.meta)
            if isinstance(item.content, str)
            else item
            for item in contents
        ]


def _problem(error: ErrorDetails) -> str:
    """One validation problem without the rejected value, which may be huge or private."""
    where = ".".join(str(part) for part in error["loc"]) or "arguments"
    return argument_problem(where, error["msg"], error["type"])


STDIO_DRAIN_MARGIN_SECONDS = 5.0
"""After stdin closes, a request read before may run its whole deadline, and this much more, to be answered."""

TOOL_MODULES = (chat, compare, conversations, models, images, recommend, limits, spend)
"""Every tool group; each module declares `TOOLS` and may declare `RESOURCES`."""


def build_tool(spec: ToolSpec) -> Tool:
    """The SDK's tool for `spec`, as the model and the wire see it: a one-paragraph description (the
    rest of the docstring is for developers), the model-visible input schema, a compact output schema,
    and arguments read by `ToolArguments`."""
    tool = Tool.from_function(spec.function, title=spec.title, annotations=spec.annotations)
    sdk = tool.fn_metadata
    output = compact(sdk.output_schema, keep_descriptions=False) if sdk.output_schema is not None else None
    description = " ".join(inspect.cleandoc(tool.description).split("\n\n")[0].split())
    return tool.model_copy(
        update={
            "description": description,
            "parameters": model_visible(tool.parameters, required=spec.required),
            "fn_metadata": ToolArguments(arg_model=sdk.arg_model, output_schema=output, wrap_output=sdk.wrap_output),
        }
    )


@cache
def build_tools() -> tuple[Tool, ...]:
    """Every tool of every module in `TOOL_MODULES`, in order; built once, shared by every server."""
    specs: list[ToolSpec] = [spec for module in TOOL_MODULES for spec in module.TOOLS]
    return tuple(build_tool(spec) for spec in specs)


def build_server(settings: Settings, *, transport: Transport | None = None) -> MCPServer:
    """A ready-to-run server; `transport` replaces the network in tests."""

    shared = SharedState(settings, transport)
    server = KymaServer(
        "kyma", version=__version__, instructions=INSTRUCTIONS, lifespan=shared.lifespan, tools=list(build_tools())
    )
    server.secrets = settings.secrets
    server.behind = shared.behind
    server.on_first_list = shared.prepare_soon
    server.stdio_drain_seconds = settings.tool_timeout_seconds + STDIO_DRAIN_MARGIN_SECONDS
    for module in TOOL_MODULES:
        resources: tuple[ResourceSpec, ...] = getattr(module, "RESOURCES", ())
        for resource in resources:
            server.resource(resource.uri, name=resource.name, title=resource.title, mime_type=resource.mime_type)(
                resource.function
            )
    return server
