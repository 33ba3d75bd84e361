"""The `chat` tool: arguments in, `chat.stream_reply` does the work, `conversations` keeps the thread.

Its value is the reply, so the result is text first: the reply, then the notes and the thread id
after `---`; no structured content (the hosts that show it instead of the text would repeat the reply
in JSON). The other facts (model served, usage, cost, latency) go to programs in `_meta`, without the reply.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Annotated, Any, get_args

from mcp.server.mcpserver.resolve import Elicit, Resolve
from mcp.types import CallToolResult
from pydantic import Field, WithJsonSchema

from kyma_mcp import conversations
from kyma_mcp.chat import (
    ChatMessage,
    ChatResult,
    PartialReply,
    RequestOptions,
    Role,
    build_messages,
    check_vision,
    has_images,
    stream_reply,
)
from kyma_mcp.errors import InvalidRequestError, StoreUnavailableError, unsaved_thread_error
from kyma_mcp.server.confirm import Consent, ConsentOutcome, SpendConfirmation, ask, fingerprint
from kyma_mcp.server.context import (
    AS_TEXT,
    AS_TEXT_OR_NULL,
    BILLED,
    AppContext,
    AppState,
    ConfirmToken,
    DryRun,
    FunctionTools,
    MaxCost,
    ModelId,
    ToolChoice,
    ToolSpec,
    confirming,
    dry_run_result,
    progress_of,
    text_result,
    tool_errors,
)
from kyma_mcp.spend import Plan, Quote, plan_chat
from kyma_mcp.vision import to_image_urls

if TYPE_CHECKING:
    from kyma_mcp.store import Store
    from kyma_mcp.store.records import Turn

MESSAGES_SCHEMA = {
    "type": ["array", "null"],
    "items": {
        "type": "object",
        "properties": {
            "role": {"type": "string", "enum": list(get_args(Role))},
            "content": {"type": ["string", "null"]},
        },
    },
}
"""`messages` as the model reads it: OpenAI-style role/content objects, flat. The server also takes
content parts and tool messages' fields (`ChatMessage`); listing them would cost every turn's context."""


async def _consent(
    ctx: AppContext,
    prompt: str | None,
    messages: list[ChatMessage] | None,
    conversation_id: str | None,
    model: str | None,
    system: str | None,
    images: list[str] | None,
    max_tokens: int | None,
    max_cost_usd: float | None,
    dry_run: bool,
    confirm: str | None,
) -> Elicit[SpendConfirmation] | Consent:
    """Before the body runs: ask the user when this chat's estimate is above KYMA_CONFIRM_ABOVE_USD."""
    state = ctx.request_context.lifespan_context

    async def estimate() -> Quote | None:
        model_id = model or state.settings.default_model
        # Images count a fixed number of tokens each: their sources stand in for the files.
        current = build_messages(prompt=prompt, messages=messages, system=None, image_urls=list(images or ()))
        thread_system, earlier = system, []
        if conversation_id is not None:
            thread_system, earlier = await conversations.read_thread(
                await state.store.get(), conversation_id, system, conversation_days=state.settings.conversation_days
            )
        view = await state.catalog.view()
        fitted = conversations.fit_to_model(
            view.find(model_id), system=thread_system, earlier=earlier, current=current, max_tokens=max_tokens
        )
        plan = await _plan(state, model_id, fitted.messages, max_tokens, max_cost_usd)
        return plan.quote

    return await ask(
        ctx,
        "chat",
        threshold=state.settings.confirm_above_usd,
        cap=max_cost_usd,
        skip=dry_run or confirm is not None,
        estimate=estimate,
        answer_seconds=state.settings.tool_timeout_seconds,
    )


async def _plan(state: AppState, model_id: str, messages: list[Any], max_tokens: int | None, cap: float | None) -> Plan:
    return await plan_chat(
        state.catalog,
        model_id,
        messages,
        max_tokens=max_tokens,
        cap=cap,
        needs_vision=has_images(messages),
        allow_unpriced=state.settings.allow_unpriced,
        budgeted=state.budget.active,
    )


async def chat(
    ctx: AppContext,
    consent: Annotated[ConsentOutcome, Resolve(_consent)],
    prompt: Annotated[str | None, Field(max_length=400_000, description="The user message")] = None,
    messages: Annotated[
        list[ChatMessage] | None,
        Field(min_length=1, max_length=500, description="Instead of prompt"),
        WithJsonSchema(MESSAGES_SCHEMA),
    ] = None,
    conversation_id: Annotated[
        str | None, Field(pattern=conversations.CONVERSATION_ID_PATTERN, description="Continue a thread")
    ] = None,
    model: Annotated[ModelId | None, Field(description="Model id or alias")] = None,
    system: Annotated[str | None, Field(max_length=100_000)] = None,
    images: Annotated[list[str] | None, Field(max_length=8, description="Paths or URLs")] = None,
    max_tokens: Annotated[int | None, Field(ge=1, le=1_000_000)] = None,
    temperature: Annotated[float | None, Field(ge=0, le=2)] = None,
    top_p: Annotated[float | None, Field(ge=0, le=1)] = None,
    stop: Annotated[list[Annotated[str, Field(min_length=1, max_length=200)]] | None, Field(max_length=4)] = None,
    response_format: Annotated[
        str | dict[str, Any], Field(description="text, json_object, or json_schema as JSON"), AS_TEXT
    ] = "text",
    reasoning_effort: Annotated[str | None, Field(max_length=100, description="e.g. low, medium, high")] = None,
    tools: Annotated[FunctionTools, Field(description="OpenAI function tools, a JSON array"), AS_TEXT_OR_NULL] = None,
    tool_choice: Annotated[
        ToolChoice, Field(description="auto, none, required, or a tool name"), AS_TEXT_OR_NULL
    ] = None,
    max_cost_usd: MaxCost = None,
    dry_run: DryRun = False,
    confirm: ConfirmToken = None,
) -> CallToolResult:
    """Ask a Kyma model: a second opinion, cheaper bulk work, reasoning, or reading images (vision models).

    The reply comes back with the model served, tokens and cost.
    """
    state = ctx.request_context.lifespan_context
    model_id = model or state.settings.default_model
    progress = progress_of(ctx)
    async with tool_errors(state, "chat", progress) as deadline_at:
        conversations.check_arguments(conversation_id, bool(messages))
        sources = list(images or ())
        image_urls = await to_image_urls(sources, state.settings)
        current = build_messages(prompt=prompt, messages=messages, system=None, image_urls=image_urls)
        # The catalog is read only when needed: to refuse images for a text model, to fit a history.
        view = await state.catalog.view() if image_urls or conversation_id else None
        if view is not None and image_urls:
            check_vision(model_id, current, view)
        store, unavailable = await _store(state, conversation_id)
        # A record written after its reply (over stdio) that failed: this thread's next call is told.
        unsaved = state.store.unsaved(conversation_id) if conversation_id is not None else None
        turn = None
        earlier: list[Turn] = []
        if store is not None and dry_run:  # a dry run reads the thread, never starts a turn in it
            earlier = await store.turns(conversation_id) if conversation_id else []
        elif store is not None:
            try:
                turn = await conversations.begin(
                    store,
                    conversation_id=conversation_id,
                    messages=conversations.recorded(current, dict(zip(image_urls, sources, strict=True))),
                    system=system,
                    model_requested=model_id,
                    lease_seconds=state.settings.tool_timeout_seconds,
                    progress=progress,
                    conversation_days=state.settings.conversation_days,
                    wait_seconds=state.settings.timing.turn_wait_seconds,
                )
            except StoreUnavailableError as exc:  # opened, but cannot write now (a full disk, a lock held)
                if conversation_id is not None:
                    raise
                store, unavailable = None, str(exc)
            except InvalidRequestError:  # no such thread: say why, if its first record failed after the reply
                if conversation_id is not None and unsaved is not None:
                    raise unsaved_thread_error(conversation_id, unsaved) from None
                raise
        info = view.find(model_id) if view is not None else None
        window = info.context_window if info else None
        fitted = conversations.fit_to_model(
            info,
            system=turn.system if turn else system,
            earlier=turn.earlier if turn else earlier,
            current=current,
            max_tokens=max_tokens,
        )
        partial = PartialReply()
        try:
            plan = Plan(None, max_tokens)
            if max_cost_usd is not None or dry_run or state.budget.active or confirming(state):
                plan = await _plan(state, model_id, fitted.messages, max_tokens, max_cost_usd)
            if dry_run and plan.quote is not None:
                return dry_run_result(
                    state.settings, ChatResult.dry_run(model_id, plan.quote, plan.notes), [plan.quote], plan.notes
                )
            options = RequestOptions.from_arguments(
                temperature=temperature,
                top_p=top_p,
                stop=stop,
                response_format=response_format,
                reasoning_effort=reasoning_effort,
                tools=tools,
                tool_choice=tool_choice,
            )
            payload = options.payload(model_id, fitted.messages, max_tokens=plan.max_tokens)
            await state.confirmations.check(
                consent,
                plan.quote,
                threshold=state.settings.confirm_above_usd,
                call=lambda: fingerprint("chat", payload),
                token=confirm,
            )
            estimate = plan.quote.cost_usd if plan.quote is not None else None
            async with state.budget.reserved("chat", estimate or 0.0, model=model_id) as held:
                result = await stream_reply(
                    state.client,
                    state.catalog,
                    progress,
                    payload,
                    max_tokens=plan.max_tokens,
                    deadline_at=deadline_at,
                    deadline_seconds=state.settings.tool_timeout_seconds,
                    partial=partial,
                )
                held.charged_usd = result.usage.cost_usd
                held.model = result.model_served or model_id
                held.input_tokens, held.output_tokens = result.usage.prompt_tokens, result.usage.completion_tokens
        except BaseException as exc:
            if store is not None and turn is not None:
                if partial.result is not None:  # cancelled by the client mid-reply: keep what arrived
                    outcome = conversations.cancelled_of(partial.result, fitted.estimate)
                else:
                    outcome = conversations.failure_of(exc)
                await conversations.finish_failed(store, turn, outcome)
            raise
        result.notes[:0] = plan.notes
        if unsaved is not None:
            result.notes.append(f"The previous reply in this thread is not kept in it: {unsaved}")
        if store is not None and turn is not None:
            result.conversation_id = turn.conversation_id
            written = conversations.outcome_of(result, fitted.estimate)
            try:  # over stdio, after the reply has been sent (`store/behind.py`)
                await state.store.later(
                    functools.partial(conversations.finish, store, turn, written),
                    thread=turn.conversation_id,
                    failed="a turn",
                )
            except StoreUnavailableError as exc:  # the reply is paid for: deliver it, say it was not kept
                if turn.new_thread is not None:  # a new thread exists only once written
                    result.conversation_id = None
                which = "the" if turn.new_thread is None else "a"
                result.notes.append(f"This reply is not kept in {which} thread: {exc}")
            if fitted.left_out:
                result.notes.append(
                    conversations.left_out_note(fitted.left_out, model_id, window, turn.conversation_id)
                )
        elif unavailable is not None:
            result.notes.append(f"This reply is not kept in a thread: {unavailable}")
    state.usage.record("chat", cost_usd=result.usage.cost_usd)
    return text_result(state.settings, result.text(), result, exclude={"reply"})


async def _store(state: AppState, conversation_id: str | None) -> tuple[Store | None, str | None]:
    """The store, or why it is unavailable: a thread needs it, a fresh chat goes on without one.

    Raises:
        StoreUnavailableError: continuing a thread, and the store cannot be used.
    """
    try:
        return await state.store.get(), None
    except StoreUnavailableError as exc:
        if conversation_id is not None:
            raise
        return None, str(exc)


TOOLS = (ToolSpec(chat, "Chat with a Kyma model", BILLED, required=("prompt",)),)
