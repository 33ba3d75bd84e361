"""The `compare` tool: one question to several models at once, over `compare`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

import anyio
from mcp.server.mcpserver.resolve import Elicit, Resolve
from mcp.types import CallToolResult
from pydantic import Field

from kyma_mcp import compare as fanout
from kyma_mcp import conversations
from kyma_mcp.catalog import CatalogView
from kyma_mcp.chat import ChatResult, RequestOptions, build_messages, has_images, stream_reply
from kyma_mcp.errors import KymaError, too_few_models_error
from kyma_mcp.kyma.tiers import bundled_tiers
from kyma_mcp.kyma.wire import JSONObject
from kyma_mcp.limits import request_caps
from kyma_mcp.progress import Progress
from kyma_mcp.server.confirm import Consent, ConsentOutcome, SpendConfirmation, ask, fingerprint
from kyma_mcp.server.context import (
    AS_TEXT,
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
    progress_of,
    structured_result,
    tool_errors,
)
from kyma_mcp.spend import Quote, dry_run_text, quote_chat

if TYPE_CHECKING:
    from kyma_mcp.store.records import Turn


@dataclass(frozen=True)
class _Planned:
    """The fan-out as it will be sent: each model's plan (or refusal), the judge's quote, the question."""

    entrants: list[fanout.Entrant]
    judge: Quote | None
    current: list[JSONObject]

    def quote(self) -> Quote:
        """The whole call's estimate: every model that will be sent, and the judge."""
        quotes = [e.plan.quote for e in self.entrants if e.plan is not None and e.plan.quote is not None]
        quotes += [self.judge] if self.judge is not None else []
        priced = [q.cost_usd for q in quotes if q.cost_usd is not None]
        return Quote(
            model=" + ".join(q.model for q in quotes),
            input_tokens=sum(q.input_tokens or 0 for q in quotes),
            output_tokens=sum(q.output_tokens or 0 for q in quotes),
            cost_usd=sum(priced) if priced else None,
            price_source=quotes[0].price_source if quotes else "catalog",
        )

    def request(self, max_tokens: int | None, judge_model: str | None) -> object:
        """What the call sends, for its fingerprint."""
        sent = [(e.model, e.messages, e.plan.max_tokens) for e in self.entrants if e.plan is not None]
        return [sent, max_tokens, judge_model]


async def _plan(
    state: AppState,
    prompt: str,
    models: list[str] | None,
    system: str | None,
    max_tokens: int | None,
    max_cost_usd: float | None,
    conversation_id: str | None,
    judge_model: str | None,
) -> _Planned:
    """Choose the models, read the thread, and quote and fit every model's request to its share of the cap.

    Raises:
        InvalidRequestError: fewer than two models, or no such conversation.
        StoreUnavailableError: a thread was named and the store cannot be used.
    """
    current = build_messages(prompt=prompt, messages=None, system=None, image_urls=())
    view = await state.catalog.view()
    chosen = _models(models, current, view, state)
    system, earlier = await _thread(state, conversation_id, system)
    messages_for = [
        conversations.fit_to_model(
            view.find(model), system=system, earlier=earlier, current=current, max_tokens=max_tokens
        ).messages
        for model in chosen
    ]
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
    return _Planned(entrants, judge, current)


async def _consent(
    ctx: AppContext,
    prompt: str,
    models: list[str] | None,
    system: str | None,
    max_tokens: int | None,
    max_cost_usd: float | None,
    conversation_id: str | None,
    judge_model: str | None,
    dry_run: bool,
    confirm: str | None,
) -> Elicit[SpendConfirmation] | Consent:
    """Before the body runs: ask the user when the whole fan-out's estimate is above KYMA_CONFIRM_ABOVE_USD."""
    state = ctx.request_context.lifespan_context

    async def estimate() -> Quote:
        planned = await _plan(state, prompt, models, system, max_tokens, max_cost_usd, conversation_id, judge_model)
        return planned.quote()

    return await ask(
        ctx,
        "compare",
        threshold=state.settings.confirm_above_usd,
        cap=max_cost_usd,
        skip=dry_run or confirm is not None,
        estimate=estimate,
        answer_seconds=state.settings.tool_timeout_seconds,
    )


async def compare(
    ctx: AppContext,
    consent: Annotated[ConsentOutcome, Resolve(_consent)],
    prompt: Annotated[str, Field(min_length=1, max_length=400_000, description="The question")],
    models: Annotated[
        list[ModelId] | None,
        Field(min_length=fanout.MIN_MODELS, max_length=fanout.MAX_MODELS, description="2-5 ids; default: recommended"),
    ] = None,
    system: Annotated[str | None, Field(max_length=100_000)] = None,
    max_tokens: Annotated[int | None, Field(ge=1, le=1_000_000)] = None,
    max_cost_usd: MaxCost = None,
    conversation_id: Annotated[
        str | None, Field(pattern=conversations.CONVERSATION_ID_PATTERN, description="Ask about a thread")
    ] = None,
    judge_model: Annotated[ModelId | None, Field(description="Summarises")] = None,
    tools: Annotated[FunctionTools, AS_TEXT] = None,
    tool_choice: Annotated[ToolChoice, AS_TEXT] = None,
    dry_run: DryRun = False,
    confirm: ConfirmToken = None,
) -> Annotated[CallToolResult, fanout.CompareResult]:
    """Ask 2-5 models one question at once; compare answers, cost and speed.

    Each model streams in parallel under one deadline; a model that fails or runs out of time is
    reported in its own section. `conversation_id` asks about a thread's history without adding to
    it. There is no `messages` argument (the context budget of tools/list): a thread gives history.
    """
    state = ctx.request_context.lifespan_context
    progress = progress_of(ctx)
    async with tool_errors(state, "compare", progress) as deadline_at:
        options = RequestOptions.from_arguments(tools=tools, tool_choice=tool_choice)
        planned = await _plan(state, prompt, models, system, max_tokens, max_cost_usd, conversation_id, judge_model)
        entrants, judge, current = planned.entrants, planned.judge, planned.current
        if dry_run:
            return _dry_run(entrants, judge)
        await state.confirmations.check(
            consent,
            planned.quote(),
            threshold=state.settings.confirm_above_usd,
            call=lambda: fingerprint(
                "compare", [planned.request(max_tokens, judge_model), options.tools, options.tool_choice]
            ),
            token=confirm,
        )
        estimate = planned.quote().cost_usd or 0.0
        models_sent = " + ".join(e.model for e in entrants if e.plan is not None)
        async with state.budget.reserved("compare", estimate, model=models_sent) as held:
            sections, failures = await fanout.run_entrants(
                state.client,
                state.catalog,
                progress,
                entrants,
                deadline_at=deadline_at,
                deadline_seconds=state.settings.tool_timeout_seconds,
                options=options,
            )
            fanout.check_some_answered(sections, failures)
            verdict, notes = await _judge(state, judge_model, judge, current, sections, deadline_at)
            answers = [s.answer for s in sections if s.answer is not None] + ([verdict] if verdict else [])
            # One answer of unknown cost makes the call's charge unknown (never the others' sum alone).
            known = all(a.usage.cost_usd is not None for a in answers)
            held.charged_usd = fanout.total_cost(sections, verdict) if known else None
            held.input_tokens = sum(a.usage.prompt_tokens or 0 for a in answers)
            held.output_tokens = sum(a.usage.completion_tokens or 0 for a in answers)
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
    return structured_result(result.text(), result)


def _models(models: list[str] | None, current: list[JSONObject], view: CatalogView, state: AppState) -> list[str]:
    """The models asked for (each once), else the recommender's pick, cheaper and stronger for the prompt.

    Raises:
        InvalidRequestError: fewer than two distinct models.
    """
    if models:
        chosen = list(dict.fromkeys(models))
    else:
        from kyma_mcp.recommend.ranking import recommend  # the recommender loads on its first use

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
    return await conversations.read_thread(
        await state.store.get(), conversation_id, system, conversation_days=state.settings.conversation_days
    )


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
    payload = RequestOptions().payload(
        judge_model, fanout.judge_messages(question, answered), max_tokens=fanout.JUDGE_MAX_TOKENS
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
    return structured_result(dry_run_text(quotes, notes), result)


TOOLS = (ToolSpec(compare, "Compare Kyma models", BILLED),)
