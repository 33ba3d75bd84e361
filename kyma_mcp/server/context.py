"""What every tool call shares: the server's state, the call's deadline and progress, and the
translation of Kyma errors into the `ToolError` text the model reads."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import logging
from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Annotated, Any

import anyio
from mcp.server import MCPServer
from mcp.server.elicitation import AcceptedElicitation
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, ContentBlock, ImageContent, TextContent, ToolAnnotations
from pydantic import BaseModel, Field, WithJsonSchema

from kyma_mcp.budget import Budget
from kyma_mcp.catalog import Catalog
from kyma_mcp.errors import KymaError, deadline_error, redact
from kyma_mcp.images.jobs import ImageJobs
from kyma_mcp.images.journal import JobJournal
from kyma_mcp.kyma.client import KymaClient, Transport
from kyma_mcp.progress import Progress, reporting
from kyma_mcp.server.confirm import Confirmations
from kyma_mcp.settings import Settings
from kyma_mcp.spend import Quote, dry_run_text
from kyma_mcp.store import StoreHandle
from kyma_mcp.store.behind import WriteBehind
from kyma_mcp.usage import SessionUsage

READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=True)
BILLED = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True)
"""Billed tools spend money and are not idempotent (generate_image is only with an idempotency_key,
and hints cannot depend on arguments); the rest only read."""

ModelId = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")]
MaxCost = Annotated[float | None, Field(gt=0, le=10_000, description="USD cap"), WithJsonSchema({"type": "number"})]
DryRun = bool
"""`dry_run`: the estimate, nothing sent. The name says it; a description would cost three tools' context."""
FunctionTools = str | list[dict[str, Any]] | None
ToolChoice = str | dict[str, Any] | None
"""`tools` and `tool_choice`, as `chat` and `compare` take them (JSON text or the objects)."""
AS_TEXT = WithJsonSchema({"type": "string"})
AS_TEXT_OR_NULL = WithJsonSchema({"type": ["string", "null"]})
"""Free-form JSON (function tools, a json_schema) is declared as JSON text: strict-mode hosts cannot
describe an open object. The server also takes the objects themselves (`chat.json_argument`)."""
ConfirmToken = Annotated[str | None, Field(max_length=64), WithJsonSchema({"type": "string"})]
"""The token a refusal above KYMA_CONFIRM_ABOVE_USD hands out (see `confirm`); the refusal explains it,
so the schema spends no description on it. Optional arguments declared without `null` save context."""


@dataclass
class AppState:
    """What every tool call shares: settings, the pooled Kyma client, the catalog cache, the tally."""

    settings: Settings
    client: KymaClient
    catalog: Catalog
    usage: SessionUsage
    images: ImageJobs
    store: StoreHandle
    """Threads, ledger and job journal; opened on the first call that needs it."""
    budget: Budget
    """KYMA_BUDGET_USD, kept in the store's spend ledger."""
    confirmations: Confirmations
    """KYMA_CONFIRM_ABOVE_USD's outstanding `confirm` tokens."""


AppContext = Context[AppState]


@dataclass(frozen=True)
class ToolSpec:
    """One tool as a tool module declares it: the function, its title and its hints, and the arguments
    its schema asks for always though the function may do without (`prompt` when `messages` is given)."""

    function: Callable[..., Any]
    title: str
    annotations: ToolAnnotations
    required: tuple[str, ...] = ()


@dataclass(frozen=True)
class ResourceSpec:
    """One resource (or template) as a tool module declares it."""

    uri: str
    name: str
    title: str
    mime_type: str
    function: Callable[..., Any]


resource_state: ContextVar[AppState] = ContextVar("kyma_resource_state")
"""The state of the server reading a resource, set by `KymaServer.read_resource` for the read."""


PREPARE_DELAY_SECONDS = 0.02
"""The pause before the background preparation starts: the tools/list answer goes out first. A call that
comes sooner does its first-use work itself (starting the preparation beside it measured no faster:
that work is ~40 ms of CPU either way)."""


async def _background_part(part: Callable[[], object]) -> None:
    """Run one part of the background preparation: a coroutine function on the event loop, a plain
    one on a worker thread; a failure is the first call's to meet and report, so it is only logged."""
    try:
        if inspect.iscoroutinefunction(part):
            await part()
        else:
            await anyio.to_thread.run_sync(part)
    except Exception:
        logging.getLogger(__name__).debug("background preparation failed", exc_info=True)


def warm_first_call() -> None:
    """Build what the SDK builds on a tool's first call with a `Resolve` parameter (`chat`'s consent):
    the parametrised `AcceptedElicitation[Any]` (a pydantic class, cached once built)."""
    _ = AcceptedElicitation[Any]


def load_recommender() -> None:
    """Import the recommender (not imported at start-up), with its ranking and task profiles."""
    importlib.import_module("kyma_mcp.recommend.guide")


class SharedState:
    """One `AppState` per server, however often the SDK enters the lifespan.

    stdio and Streamable HTTP enter it once; SSE enters it per connection. Sharing keeps one HTTP
    pool, one catalog cache, one usage tally and, above all, one rate limiter for every client of
    the server; the Kyma client closes when the last user leaves.
    """

    def __init__(self, settings: Settings, transport: Transport | None) -> None:
        self._settings = settings
        self._transport = transport
        self._state: AppState | None = None
        self._users = 0
        self._preparing: set[asyncio.Task[None]] = set()
        self.behind = WriteBehind()
        """The store's records left to write after their replies; stdio turns it on (`serve_stdio`)."""

    def prepare_soon(self) -> asyncio.Task[None] | None:
        """Prepare, in the background, what the first call would otherwise wait for; called when the
        first `tools/list` is answered (the server is serving). Returns the task doing it."""
        state = self._state
        if state is None:
            return None
        task = asyncio.get_running_loop().create_task(self._prepare(state))  # the SDK serves on asyncio
        self._preparing.add(task)
        task.add_done_callback(self._preparing.discard)
        return task

    @staticmethod
    async def _prepare(state: AppState) -> None:
        """What the first call would otherwise do itself, in steps whose parts run side by side: on
        worker threads, make the HTTP client (httpcore2 import, then the TLS context, which loads the CA
        bundle without holding the GIL) and import the store's modules; then, on the event loop, open
        (and migrate) the store and read the catalog: Kyma's public model list, which every chat reads
        for its retirement notes, and whose read leaves pooled connections to the gateway for the chat;
        last, the recommender's modules. A part that fails is logged and left to the first call that
        needs it, which reports it."""
        await anyio.sleep(PREPARE_DELAY_SECONDS)  # the tools/list answer goes out first

        def importing() -> None:
            state.store.prepare()
            warm_first_call()

        steps: tuple[tuple[Callable[[], object], ...], ...] = (
            (state.client.prepare, importing),
            (state.store.get, state.catalog.view),
            (load_recommender,),
        )
        for parts in steps:
            async with anyio.create_task_group() as group:
                for part in parts:
                    group.start_soon(_background_part, part)

    @asynccontextmanager
    async def lifespan(self, _: MCPServer) -> AsyncGenerator[AppState]:
        if self._state is None:
            client = KymaClient(self._settings, transport=self._transport)
            catalog = Catalog(client.list_models, pricing=client.get_pricing)
            store = StoreHandle(self._settings, self.behind)
            self._state = AppState(
                self._settings,
                client,
                catalog,
                SessionUsage(),
                ImageJobs(client, self._settings, JobJournal(store)),
                store,
                Budget(self._settings, store),
                Confirmations(store),
            )
        state = self._state
        self._users += 1
        try:
            yield state
        finally:
            self._users -= 1
            if self._users == 0:
                self._state = None
                await self._stop_preparing()
                await state.client.aclose()
                await state.store.aclose()

    async def _stop_preparing(self) -> None:
        """Cancel a background preparation still running: it must not use the client being closed."""
        tasks = list(self._preparing)
        for task in tasks:
            task.cancel()
        with anyio.CancelScope(shield=True):
            for task in tasks:
                with suppress(asyncio.CancelledError):
                    await task


RESULT_META = "kyma-mcp/result"
"""The `_meta` key of a text-first tool's result: its facts as JSON for programs (hosts do not show
`_meta` to the model, the way OpenAI's Apps SDK keeps component data from it)."""


def lean(result: BaseModel, *, exclude: set[str] | None = None) -> dict[str, Any]:
    """`result` as JSON without the fields left at their defaults (nulls, empty lists, `fallback` unused):
    the model class reads it back whole (`model_validate`)."""
    return result.model_dump(mode="json", exclude_defaults=True, exclude=exclude)


def structured_result(text: str, result: BaseModel) -> CallToolResult:
    """A data tool's result (compare, get_limits): `text` for hosts that show text, `result` as structured
    content for the hosts that show that instead and for the programs that read it, every field present
    (a stable shape to read, as the output schema says)."""
    return CallToolResult(
        content=[TextContent(type="text", text=text)], structured_content=result.model_dump(mode="json")
    )


def confirming(state: AppState) -> bool:
    """Whether calls are quoted for KYMA_CONFIRM_ABOVE_USD."""
    return state.settings.confirm_above_usd is not None


def text_result(
    settings: Settings,
    text: str,
    result: BaseModel,
    previews: Sequence[ImageContent] = (),
    *,
    exclude: set[str] | None = None,
) -> CallToolResult:
    """A text-first tool's result: what the model reads is `text` (and `previews`), in every host.

    No structured content: Claude Code, Codex, fast-agent and pydantic-ai would show it *instead of*
    the text, and Codex would drop the previews. With KYMA_RESULT_FACTS=1, `result` (less `exclude`,
    which the text carries whole) goes to programs in `_meta`.
    """
    content: list[ContentBlock] = [TextContent(type="text", text=text), *previews]
    meta = {RESULT_META: lean(result, exclude=exclude)} if settings.result_facts else None
    return CallToolResult(content=content, _meta=meta)


def dry_run_result(
    settings: Settings, result: BaseModel, quotes: Sequence[Quote], notes: Sequence[str]
) -> CallToolResult:
    """A text-first billed tool's answer to `dry_run: true`: the estimate as text, `result` as its facts."""
    return text_result(settings, dry_run_text(quotes, notes), result)


def progress_of(ctx: AppContext) -> Progress:
    timing = ctx.request_context.lifespan_context.settings.timing
    return Progress(ctx.report_progress, interval_seconds=timing.progress_interval_seconds)


@asynccontextmanager
async def tool_errors(state: AppState, tool: str, progress: Progress | None = None) -> AsyncGenerator[float]:
    """Run a call under its deadline (yielded as an anyio clock time), showing waits as `progress`;
    turn Kyma errors and the deadline into `ToolError`s the model can act on."""
    deadline_at = anyio.current_time() + state.settings.tool_timeout_seconds
    with reporting(progress):
        try:
            with anyio.fail_at(deadline_at):
                yield deadline_at
        except KymaError as exc:
            state.usage.record(tool, failed=True)
            raise ToolError(redact(str(exc), state.client.secrets)) from None
        except TimeoutError:
            state.usage.record(tool, failed=True)
            raise ToolError(str(deadline_error(state.settings.tool_timeout_seconds))) from None
