"""The MCP server: tool definitions, their arguments and results. The only module that imports `mcp`.

Tools stay thin: they validate arguments (pydantic), call the Kyma client and the pure logic
modules, and turn every `KymaError` into a `ToolError` whose text the model reads.
"""

from __future__ import annotations

import difflib
import inspect
import json
import time
from collections.abc import AsyncGenerator, Iterable, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import anyio
import httpx2
from mcp.server import MCPServer
from mcp.server.lowlevel.helper_types import ReadResourceContents
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ResourceNotFoundError, ToolError, UnexpectedToolError
from mcp.types import CallToolResult, ImageContent, InputRequiredResult, TextContent, ToolAnnotations
from mcp.types import Tool as MCPTool
from pydantic import BaseModel, Field, ValidationError
from pydantic_core import ErrorDetails

from kyma_mcp import __version__
from kyma_mcp.catalog import Capability, Catalog, Kind, ModelInfo, ModelRow, Source, find, select
from kyma_mcp.chat import ChatMessage, ChatResult, ReplyBuilder, build_messages, check_vision, finish
from kyma_mcp.client import KymaClient, RouteInfo, bundled_tiers
from kyma_mcp.errors import KymaError, ModelNotFoundError, UpstreamTimeoutError, UpstreamUnavailableError, redact
from kyma_mcp.guide import guide_markdown
from kyma_mcp.images import Delivery, IdempotencyKey, ImageJobs, ImageRequest, ImageResult, ImageSize, JobId
from kyma_mcp.jsonvalues import JSONObject
from kyma_mcp.limits import LimitsResult, collect_parts, request_caps, shape_limits
from kyma_mcp.pacing import wait_reporter
from kyma_mcp.recommend import Priority, Recommendation, recommend
from kyma_mcp.schema import compact
from kyma_mcp.settings import Settings
from kyma_mcp.usage import SessionUsage
from kyma_mcp.vision import to_image_url

INSTRUCTIONS = (
    "Tools for the Kyma API gateway's open models (qwen, kimi, deepseek, glm, gemma, llama, gemini) and image models. "
    "Use chat to ask a second model, list_models to see limits and prices, recommend_model to pick one "
    "for a task. Errors start with a [word] "
    "and say what to do next."
)
PARTIAL_REPLY_MARGIN_SECONDS = 0.5
"""A streamed reply stops this long before the deadline, so what arrived can still be returned."""
PROGRESS_INTERVAL_SECONDS = 0.25
"""Streamed tokens are reported at most this often (the first one at once)."""

_READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=True)
_BILLED = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True)
"""Billed tools spend money and are not idempotent (generate_image is only with an idempotency_key,
and hints cannot depend on arguments); the rest only read."""

ModelId = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")]


@dataclass
class AppState:
    """What every tool call shares: settings, the pooled Kyma client, the catalog cache, the tally."""

    settings: Settings
    client: KymaClient
    catalog: Catalog
    usage: SessionUsage
    images: ImageJobs


AppContext = Context[AppState]


class ListModelsResult(BaseModel):
    models: list[ModelRow]
    total: int = Field(description="Models matching the filters, before paging")
    next_offset: int | None = Field(description="Pass as offset for the next page; null on the last page")
    source: Source = Field(description="live, cached (fetched < 5 min ago) or bundled (offline snapshot)")


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
        token = _resource_state.set(context.request_context.lifespan_context)
        try:
            return await super().read_resource(uri, context)
        finally:
            _resource_state.reset(token)


_resource_state: ContextVar[AppState] = ContextVar("kyma_resource_state")
"""The state of the server reading a resource, set by `KymaServer.read_resource` for the read."""


def _problem(error: ErrorDetails) -> str:
    """One validation problem without the rejected value, which may be huge or private."""
    where = ".".join(str(part) for part in error["loc"]) or "arguments"
    return f"{where}: {error['msg']}"


class _SharedState:
    """One `AppState` per server, however often the SDK enters the lifespan.

    stdio and Streamable HTTP enter it once; SSE enters it per connection. Sharing keeps one HTTP
    pool, one catalog cache, one usage tally and, above all, one rate limiter for every client of
    the server; the Kyma client closes when the last user leaves.
    """

    def __init__(self, settings: Settings, transport: httpx2.AsyncBaseTransport | None) -> None:
        self._settings = settings
        self._transport = transport
        self._state: AppState | None = None
        self._users = 0

    @asynccontextmanager
    async def lifespan(self, _: MCPServer) -> AsyncGenerator[AppState]:
        if self._state is None:
            client = KymaClient(self._settings, transport=self._transport)
            catalog = Catalog(client.list_models)
            self._state = AppState(self._settings, client, catalog, SessionUsage(), ImageJobs(client, self._settings))
        state = self._state
        self._users += 1
        try:
            yield state
        finally:
            self._users -= 1
            if self._users == 0:
                self._state = None
                await state.client.aclose()


def build_server(settings: Settings, *, transport: httpx2.AsyncBaseTransport | None = None) -> MCPServer:
    """A ready-to-run server; `transport` replaces the network in tests."""

    shared = _SharedState(settings, transport)
    server = KymaServer("kyma", version=__version__, instructions=INSTRUCTIONS, lifespan=shared.lifespan)
    tools = (
        (chat, "Chat with a Kyma model", _BILLED),
        (list_models, "List Kyma models", _READ_ONLY),
        (generate_image, "Generate images with Kyma", _BILLED),
        (get_image_job, "Get a Kyma image job", _READ_ONLY),
        (recommend_model, "Recommend a Kyma model", _READ_ONLY),
        (get_limits, "Kyma tier, limits and balance", _READ_ONLY),
    )
    for function, title, hints in tools:
        server.add_tool(function, title=title, annotations=hints)
    server.resource("kyma://models", name="models", title="Kyma model catalog", mime_type="application/json")(
        models_resource
    )
    server.resource("kyma://models/{model_id}", name="model", title="One Kyma model", mime_type="application/json")(
        model_resource
    )
    server.resource("kyma://guide", name="guide", title="Which Kyma model for which job", mime_type="text/markdown")(
        guide_resource
    )
    return server


async def chat(
    ctx: AppContext,
    prompt: Annotated[str | None, Field(max_length=400_000, description="User message; or use messages")] = None,
    messages: Annotated[
        list[ChatMessage] | None, Field(min_length=1, max_length=500, description="OpenAI-style conversation")
    ] = None,
    model: Annotated[ModelId | None, Field(description="Model id or alias; default KYMA_DEFAULT_MODEL")] = None,
    system: Annotated[str | None, Field(max_length=100_000)] = None,
    images: Annotated[
        list[str] | None, Field(max_length=8, description="Local image paths, https or data URLs (vision models)")
    ] = None,
    max_tokens: Annotated[int | None, Field(ge=1, le=1_000_000)] = None,
    temperature: Annotated[float | None, Field(ge=0, le=2)] = None,
    top_p: Annotated[float | None, Field(ge=0, le=1)] = None,
    stop: Annotated[list[Annotated[str, Field(min_length=1, max_length=200)]] | None, Field(max_length=4)] = None,
    response_format: Literal["text", "json_object"] = "text",
    reasoning_effort: Literal["none", "low", "medium", "high", "max"] | None = None,
) -> Annotated[CallToolResult, ChatResult]:
    """Ask a Kyma-hosted model and get its reply, with the model served, tokens and cost.
    Use for a second opinion, cheaper bulk work, a reasoning model, or images (vision models)."""
    state = ctx.request_context.lifespan_context
    model_id = model or state.settings.default_model
    progress = _Progress(ctx)
    async with _tool_errors(state, "chat", progress) as deadline_at:
        image_urls = [await to_image_url(source) for source in images or ()]
        wire = build_messages(prompt=prompt, messages=messages, system=system, image_urls=image_urls)
        catalog = (await state.catalog.view()).models if image_urls else ()
        check_vision(find(catalog, model_id), wire, catalog)
        payload: JSONObject = {"model": model_id, "messages": wire, "stream_options": {"include_usage": True}}
        optional = {"max_tokens": max_tokens, "temperature": temperature, "top_p": top_p, "stop": stop}
        payload |= {key: value for key, value in optional.items() if value is not None}
        if response_format != "text":
            payload["response_format"] = {"type": response_format}
        if reasoning_effort is not None:
            payload["reasoning_effort"] = reasoning_effort
        result = await _stream_chat(state, progress, payload, max_tokens, deadline_at)
    state.usage.record("chat", cost_usd=result.usage.cost_usd)
    return CallToolResult(
        content=[TextContent(type="text", text=result.text())], structured_content=result.model_dump(mode="json")
    )


async def _stream_chat(
    state: AppState, progress: _Progress, payload: JSONObject, max_tokens: int | None, deadline_at: float
) -> ChatResult:
    """Stream one completion, reporting progress; keep what arrived if the stream breaks or the deadline hits."""
    model_id: str = payload["model"]
    builder = ReplyBuilder()
    started = time.monotonic()
    interruption: str | None = None
    deadline = state.settings.tool_timeout_seconds
    route = RouteInfo(model_served=None, alias=None, fallback_used=False, fallback_layer=None)
    try:
        async with state.client.chat_stream(payload) as stream:
            route = stream.route
            with anyio.move_on_at(deadline_at - PARTIAL_REPLY_MARGIN_SECONDS) as scope:
                async for chunk in stream.chunks():
                    first = not builder.started
                    builder.add(chunk)
                    if first and builder.started:
                        await progress.report(f"first tokens from {route.model_served or model_id}")
                    elif builder.started and progress.due():
                        await progress.report(f"{builder.characters} characters from {model_id}")
            if scope.cancelled_caught:
                if not builder.started:
                    raise _deadline_error(deadline)
                interruption = f"The {deadline:g} s deadline (KYMA_TOOL_TIMEOUT_SECONDS) passed mid-reply."
    except ModelNotFoundError:
        raise await _unknown_model(state, model_id) from None
    except UpstreamUnavailableError as exc:
        if not builder.started:
            raise
        interruption = str(exc).removeprefix(f"[{exc.word}] ")
    catalog = (await state.catalog.view()).models if builder.finish_reason == "length" else ()
    return finish(
        builder,
        model_requested=model_id,
        route=route,
        latency_ms=round((time.monotonic() - started) * 1000),
        max_tokens=max_tokens,
        catalog=catalog,
        interruption=interruption,
    )


async def list_models(
    ctx: AppContext,
    capability: Capability | None = None,
    search: Annotated[str | None, Field(max_length=100, description="Substring of id, name or use")] = None,
    min_context: Annotated[int | None, Field(ge=1, description="Minimum context window, tokens")] = None,
    min_output: Annotated[int | None, Field(ge=1, description="Minimum max_output_tokens")] = None,
    kind: Kind | Literal["all"] = "all",
    limit: Annotated[int, Field(ge=1, le=100)] = 50,
    offset: Annotated[int, Field(ge=0)] = 0,
) -> Annotated[CallToolResult, ListModelsResult]:
    """List Kyma's models with context window, output cap, modalities and prices; filter and page.
    Use to pick a model id for chat or generate_image, or to check a model's limits."""
    state = ctx.request_context.lifespan_context
    async with _tool_errors(state, "list_models"):
        view = await state.catalog.view()
    chosen = select(
        view.models, kind=kind, capability=capability, search=search, min_context=min_context, min_output=min_output
    )
    page = chosen[offset : offset + limit]
    next_offset = offset + limit if offset + limit < len(chosen) else None
    result = ListModelsResult(
        models=[ModelRow.of(m) for m in page], total=len(chosen), next_offset=next_offset, source=view.source
    )
    state.usage.record("list_models")
    return CallToolResult(
        content=[TextContent(type="text", text=_models_text(page, result))],
        structured_content=result.model_dump(mode="json"),
    )


def _models_text(page: Sequence[ModelInfo], result: ListModelsResult) -> str:
    """One compact line per model: what an agent needs to choose, nothing more."""
    lines = [f"{result.total} models match (source: {result.source})."]
    for m in page:
        if m.kind == "image":
            price = f"${m.image_usd:g}/image" if m.image_usd is not None else "price n/a"
            limits = "image"
        else:
            price = (
                f"${m.input_usd_per_1m:g}/${m.output_usd_per_1m:g} per 1M in/out"
                if m.input_usd_per_1m is not None and m.output_usd_per_1m is not None
                else "price n/a"
            )
            limits = f"ctx {m.context_window or 0:,} · out {m.max_output_tokens or 0:,}"
        caps = ",".join(m.capabilities) or "-"
        lines.append(f"{m.id} · {limits} · {price} · {caps}" + (f" · {m.best_for}" if m.best_for else ""))
    if result.next_offset is not None:
        lines.append(f"More: call list_models with offset={result.next_offset}.")
    return "\n".join(lines)


async def generate_image(
    ctx: AppContext,
    prompt: Annotated[str, Field(min_length=1, max_length=4000)],
    model: Annotated[ModelId | None, Field(description="Image model; default KYMA_DEFAULT_IMAGE_MODEL")] = None,
    size: ImageSize | None = None,
    n: Annotated[int, Field(ge=1, le=4, description="Images to make, each billed")] = 1,
    image_url: Annotated[
        str | None, Field(max_length=4096, description="https source image for edit models (flux-kontext-pro)")
    ] = None,
    idempotency_key: Annotated[
        IdempotencyKey | None, Field(description="Same key = same job, never billed twice")
    ] = None,
) -> Annotated[CallToolResult, ImageResult]:
    """Generate images with a Kyma image model; returns previews and saves full-size files locally.
    Use for pictures, posters, logos, or edits (flux-kontext-pro + image_url); status running: call get_image_job."""
    state = ctx.request_context.lifespan_context
    request = ImageRequest(prompt, model or state.settings.default_image_model, size, n, image_url, idempotency_key)
    progress = _Progress(ctx)
    async with _tool_errors(state, "generate_image", progress) as deadline_at:
        catalog = (await state.catalog.view()).models
        delivery = await state.images.generate(request, catalog, deadline_at=deadline_at, progress=progress.report)
    state.usage.record("generate_image", cost_usd=delivery.newly_charged_usd)
    return _image_result(delivery)


async def get_image_job(
    ctx: AppContext,
    job_id: JobId,
    wait_seconds: Annotated[
        float | None, Field(ge=0, le=3600, description="Longest wait for the job; default: until the call's deadline")
    ] = None,
) -> Annotated[CallToolResult, ImageResult]:
    """Check a Kyma image job, wait for it, and deliver its images as generate_image does.
    Use when generate_image returned status running, or to fetch a job's images again."""
    state = ctx.request_context.lifespan_context
    progress = _Progress(ctx)
    async with _tool_errors(state, "get_image_job", progress) as deadline_at:
        delivery = await state.images.resume(
            job_id, wait_seconds=wait_seconds, deadline_at=deadline_at, progress=progress.report
        )
    state.usage.record("get_image_job", cost_usd=delivery.newly_charged_usd)
    return _image_result(delivery)


def _image_result(delivery: Delivery) -> CallToolResult:
    """The text (files, URLs, model, cost), one preview image per picture, and the structured result."""
    previews = [ImageContent(type="image", data=data, mime_type=mime) for data, mime in delivery.preview_base64()]
    return CallToolResult(
        content=[TextContent(type="text", text=delivery.result.text()), *previews],
        structured_content=delivery.result.model_dump(mode="json"),
    )


async def recommend_model(
    ctx: AppContext,
    task: Annotated[str, Field(min_length=1, max_length=4000, description="The job, in plain words")],
    needs: Annotated[list[Capability] | None, Field(max_length=7, description="Capabilities it must have")] = None,
    min_context: Annotated[int | None, Field(ge=1, description="Minimum context window, tokens")] = None,
    min_output: Annotated[int | None, Field(ge=1, description="Minimum max_output_tokens")] = None,
    priority: Priority = "balanced",
) -> Annotated[CallToolResult, Recommendation]:
    """Recommend a Kyma model for a task: a pick, a cheaper and a stronger one, with ready chat arguments.
    Use before chat or generate_image when unsure which model fits; needs no key."""
    state = ctx.request_context.lifespan_context
    async with _tool_errors(state, "recommend_model"):
        view = await state.catalog.view()
    result = recommend(
        task,
        view.models,
        needs=needs or (),
        min_context=min_context,
        min_output=min_output,
        priority=priority,
        source=view.source,
        request_caps=request_caps(bundled_tiers()),
    )
    state.usage.record("recommend_model")
    return CallToolResult(
        content=[TextContent(type="text", text=result.text())], structured_content=result.model_dump(mode="json")
    )


async def get_limits(ctx: AppContext) -> Annotated[CallToolResult, LimitsResult]:
    """Show the Kyma account's tier, rate limits and balance, and this server's calls and spend.
    Use before heavy work, or after a rate_limited or insufficient_balance error."""
    state = ctx.request_context.lifespan_context
    client = state.client
    has_key = state.settings.has_api_key
    async with _tool_errors(state, "get_limits"):
        account = {"account": client.get_auth_limits, "balance": client.get_balance} if has_key else {}
        parts = await collect_parts({"tiers": client.get_tiers, "capabilities": client.get_capabilities, **account})
    result = shape_limits(
        tiers=parts["tiers"],
        bundled_tiers=bundled_tiers(),
        account=parts.get("account"),
        balance=parts.get("balance"),
        capabilities=parts["capabilities"],
        usage=state.usage,
        configured_tier=state.settings.tier,
        has_key=has_key,
    )
    state.usage.record("get_limits")
    return CallToolResult(
        content=[TextContent(type="text", text=redact(result.text(), client.secrets))],
        structured_content=result.model_dump(mode="json"),
    )


async def models_resource() -> str:
    """Every Kyma model with its limits, modalities, capabilities and prices (JSON)."""
    view = await _resource_state.get().catalog.view()
    return json.dumps({"source": view.source, "models": [_model_json(m) for m in view.models]})


async def model_resource(model_id: str) -> str:
    """One Kyma model (by id or alias): limits, modalities, capabilities, prices (JSON)."""
    view = await _resource_state.get().catalog.view()
    model = find(view.models, model_id)
    if model is None:
        raise ResourceNotFoundError(f"Kyma serves no model '{model_id}'; read kyma://models for the valid ids.")
    return json.dumps(_model_json(model) | {"source": view.source})


async def guide_resource() -> str:
    """Which Kyma model for which job (Markdown), from the data recommend_model uses."""
    view = await _resource_state.get().catalog.view()
    return guide_markdown(view.models, view.source)


def _model_json(model: ModelInfo) -> dict[str, Any]:
    return ModelRow.of(model).model_dump(mode="json", exclude_none=True)


class _Progress:
    """MCP progress for one call: strictly increasing values; streamed tokens at most every 0.25 s."""

    def __init__(self, ctx: AppContext) -> None:
        self._ctx = ctx
        self._sent = 0
        self._last_sent = float("-inf")

    async def report(self, message: str) -> None:
        self._sent += 1
        self._last_sent = time.monotonic()
        await self._ctx.report_progress(self._sent, None, message)

    def due(self) -> bool:
        """Whether another streamed-token update may go out (they are throttled to one per interval)."""
        return time.monotonic() - self._last_sent >= PROGRESS_INTERVAL_SECONDS


@asynccontextmanager
async def _tool_errors(state: AppState, tool: str, progress: _Progress | None = None) -> AsyncGenerator[float]:
    """Run a call under its deadline (yielded as an anyio clock time), showing waits as `progress`;
    turn Kyma errors and the deadline into `ToolError`s the model can act on."""
    deadline_at = anyio.current_time() + state.settings.tool_timeout_seconds
    token = wait_reporter.set(progress.report if progress is not None else None)
    try:
        with anyio.fail_at(deadline_at):
            yield deadline_at
    except KymaError as exc:
        state.usage.record(tool, failed=True)
        raise ToolError(redact(str(exc), state.client.secrets)) from None
    except TimeoutError:
        state.usage.record(tool, failed=True)
        raise ToolError(str(_deadline_error(state.settings.tool_timeout_seconds))) from None
    finally:
        wait_reporter.reset(token)


def _deadline_error(seconds: float) -> UpstreamTimeoutError:
    return UpstreamTimeoutError(
        f"Kyma did not answer within the {seconds:g} s deadline (KYMA_TOOL_TIMEOUT_SECONDS). "
        "Retry, ask for fewer tokens, or use a faster model such as llama-3.3-70b."
    )


async def _unknown_model(state: AppState, model_id: str) -> ModelNotFoundError:
    ids = [m.id for m in (await state.catalog.view()).models if m.kind == "chat"]
    close = difflib.get_close_matches(model_id, ids, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return ModelNotFoundError(f"Kyma does not serve model '{model_id}'.{hint} Call list_models to see the valid ids.")
