"""The `compare` tool: one question to several models at once, over `compare`."""

from __future__ import annotations

from typing import Annotated

import anyio
from mcp.types import CallToolResult, TextContent
from pydantic import Field

from kyma_mcp import compare as fanout
from kyma_mcp import conversations
from kyma_mcp.catalog import CatalogView
from kyma_mcp.chat import ChatResult, build_messages, build_payload, has_images, stream_reply
from kyma_mcp.errors import KymaError, too_few_models_error, unknown_conversation_error
from kyma_mcp.kyma.tiers import bundled_tiers
from kyma_mcp.kyma.wire import JSONObject
from kyma_mcp.limits import request_caps
from kyma_mcp.progress import Progress
from kyma_mcp.recommend.ranking import recommend
from kyma_mcp.server.context import (
    BILLED,
    AppContext,
    AppState,
    DryRun,
    ModelId,
    ToolSpec,
    dry_run_result,
    progress_of,
    tool_errors,
)
from kyma_mcp.spend import Quote, quote_chat
from kyma_mcp.store.records import Turn


async def compare(
    ctx: AppContext,
    prompt: Annotated[str, Field(min_length=1, max_length=400_000, description="The question")],
    models: Annotated[
        list[ModelId] | None,
        Field(min_length=fanout.MIN_MODELS, max_length=fanout.MAX_MODELS, description="2-5 ids; default: recommended"),
    ] = None,
    system: Annotated[str | None, Field(max_length=100_000)] = None,
    max_tokens: Annotated[int | None, Field(ge=1, le=1_000_000)] = None,
    max_cost_usd: Annotated[float | None, Field(gt=0, le=10_000, description="USD cap, all models")] = None,
    conversation_id: Annotated[
        str | None, Field(pattern=conversations.CONVERSATION_ID_PATTERN, description="Ask about a thread")
    ] = None,
    judge_model: Annotated[ModelId | None, Field(description="Sums up the answers")] = None,
    dry_run: DryRun = False,
) -> Annotated[CallToolResult, fanout.CompareResult]:
    """Ask 2-5 models one question at once; compare answers, cost and speed.

    Each model streams in parallel under one deadline; a model that fails or runs out of time is
    reported in its own section. `conversation_id` asks about a thread's history without adding to
    it. There is no `messages` argument (the context budget of tools/list): a thread gives history.
    """
    state = ctx.request_context.lifespan_context
    progress = progress_of(ctx)
    async with tool_errors(state, "compare", progress) as deadline_at:
        current = build_messages(prompt=prompt, messages=None, system=None, image_urls=())
        view = await state.catalog.view()
        chosen = _models(models, current, view, state)
        system, earlier = await _thread(state, conversation_id, system)
        messages_for = [_messages(view, model, system, earlier, current, max_tokens) for model in chosen]
        judge = _judge_quote(view, judge_model, current, chosen, max_tokens)
        entrants = fanout.plan_entrants(
            view,
            chosen,
            messages_for,
            max_tokens=max_tokens,
            cap=max_cost_usd,
            needs_vision=has_images(current),
            allow_unpriced=state.settings.allow_unpriced,
            extra=[judge] if judge is not None else [],
        )
        if dry_run:
            return _dry_run(entrants, judge)
        planned = [e.plan.quote for e in entrants if e.plan is not None and e.plan.quote is not None]
        estimate = sum(q.cost_usd or 0 for q in [*planned, *([judge] if judge else [])])
        async with state.budget.reserved("compare", estimate) as held:
            sections, failures = await fanout.run_entrants(
                state.client,
                state.catalog,
                progress,
                entrants,
                deadline_at=deadline_at,
                deadline_seconds=state.settings.tool_timeout_seconds,
                payload_options=_options(),
            )
            fanout.check_some_answered(sections, failures)
            verdict, notes = await _judge(state, judge_model, judge, current, sections, deadline_at)
            held.charged_usd = fanout.total_cost(sections, verdict)
        notes[:0] = fanout.trim(sections, "the same prompt")
        if conversation_id:
            notes.append(f"Asked about conversation {conversation_id}; nothing was added to it.")
    result = fanout.CompareResult(
        sections=sections,
        total_cost_usd=fanout.total_cost(sections, verdict),
        comparison=fanout.comparison(sections),
        judge=verdict,
        notes=notes,
    )
    state.usage.record("compare", cost_usd=result.total_cost_usd)
    return CallToolResult(
        content=[TextContent(type="text", text=result.text())], structured_content=result.model_dump(mode="json")
    )


def _options() -> JSONObject:
    return {"temperature": None, "top_p": None, "stop": None, "response_format": "text", "reasoning_effort": None}


def _models(models: list[str] | None, current: list[JSONObject], view: CatalogView, state: AppState) -> list[str]:
    """The models asked for (each once), else the recommender's pick, cheaper and stronger for the prompt.

    Raises:
        InvalidRequestError: fewer than two distinct models.
    """
    if models:
        chosen = list(dict.fromkeys(models))
    else:
        task = " ".join(str(m["content"]) for m in current if isinstance(m.get("content"), str))[:4000] or "chat"
        advice = recommend(task, view.models, source=view.source, request_caps=request_caps(bundled_tiers()))
        chosen = [o.model for o in (advice.pick, advice.cheaper, advice.stronger) if o is not None]
        chosen = list(dict.fromkeys([*chosen, state.settings.default_model]))[: max(2, len(chosen))]
    if len(chosen) < fanout.MIN_MODELS:
        raise too_few_models_error()
    return chosen


async def _thread(state: AppState, conversation_id: str | None, system: str | None) -> tuple[str | None, list[Turn]]:
    """The thread's system message and turns, read only (compare never adds a turn).

    Raises:
        InvalidRequestError: no such conversation.
        StoreUnavailableError: the store cannot be used.
    """
    if conversation_id is None:
        return system, []
    store = await state.store.get()
    found = await store.conversation(conversation_id)
    if found is None:
        raise unknown_conversation_error(conversation_id, state.settings.conversation_days)
    return (system if system is not None else found.system), await store.turns(conversation_id)


def _messages(
    view: CatalogView,
    model: str,
    system: str | None,
    earlier: list[Turn],
    current: list[JSONObject],
    max_tokens: int | None,
) -> list[JSONObject]:
    """What `model` is sent: the thread's history fitted to its context window, then the question."""
    info = view.find(model)
    allowance = min(max_tokens or conversations.DEFAULT_OUTPUT_ALLOWANCE, (info and info.max_output_tokens) or 1 << 30)
    return conversations.fit_history(
        system=system,
        earlier=earlier,
        current=current,
        context_window=info.context_window if info else None,
        output_allowance=allowance,
    ).messages


def _judge_quote(
    view: CatalogView, judge_model: str | None, current: list[JSONObject], models: list[str], max_tokens: int | None
) -> Quote | None:
    """The judge's estimate: the question plus every model's longest possible reply in, a short summary out."""
    if judge_model is None:
        return None
    quotes = [quote_chat(m, view.find(m), [], max_tokens, view.source) for m in models]
    replies = [{"role": "user", "content": "x" * 3 * (q.output_tokens or 0)} for q in quotes]
    return quote_chat(judge_model, view.find(judge_model), [*current, *replies], fanout.JUDGE_MAX_TOKENS, view.source)


async def _judge(
    state: AppState,
    judge_model: str | None,
    quote: Quote | None,
    current: list[JSONObject],
    sections: list[fanout.Section],
    deadline_at: float,
) -> tuple[ChatResult | None, list[str]]:
    """One more call summarising agreements and differences, when a judge was named and time is left."""
    answered = [s for s in sections if s.answer is not None and s.answer.reply]
    if judge_model is None or quote is None:
        return None, []
    if len(answered) < fanout.MIN_MODELS or deadline_at - anyio.current_time() < fanout.JUDGE_MIN_SECONDS:
        return None, [f"The judge ({judge_model}) was not asked: fewer than two answers, or too little time left."]
    question = " ".join(str(m["content"]) for m in current if isinstance(m.get("content"), str))
    payload = build_payload(
        judge_model, fanout.judge_messages(question, answered), max_tokens=fanout.JUDGE_MAX_TOKENS, **_options()
    )

    async def quiet(_: float, __: float | None, ___: str) -> None:
        return None

    try:
        verdict = await stream_reply(
            state.client,
            state.catalog,
            Progress(quiet),
            payload,
            max_tokens=fanout.JUDGE_MAX_TOKENS,
            deadline_at=deadline_at,
            deadline_seconds=state.settings.tool_timeout_seconds,
        )
    except KymaError as exc:
        return None, [f"The judge ({judge_model}) failed: {exc}"]
    return verdict, []


def _dry_run(entrants: list[fanout.Entrant], judge: Quote | None) -> CallToolResult:
    quotes = [e.plan.quote for e in entrants if e.plan is not None and e.plan.quote is not None]
    notes = [note for e in entrants if e.plan is not None for note in e.plan.notes]
    notes += [f"{e.model} would be refused: {e.refusal}" for e in entrants if e.refusal is not None]
    if judge is not None:
        quotes.append(judge)
    result = fanout.CompareResult(
        sections=[
            fanout.Section(
                model=e.model, status="refused" if e.refusal else "dry_run", error=str(e.refusal or "") or None
            )
            for e in entrants
        ],
        total_cost_usd=round(sum(q.cost_usd or 0 for q in quotes), 8),
        comparison="dry run: nothing sent",
        notes=notes,
    )
    return dry_run_result(result, quotes, notes)


TOOLS = (ToolSpec(compare, "Compare Kyma models", BILLED),)
