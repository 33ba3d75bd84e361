"""`compare`'s logic: one request to 2-5 models at once, each answer in its own section.

Every model streams at the same time through the same client, so the same pacer, retries and
deadline as a single `chat` call. A cap (`max_cost_usd`) covers the whole fan-out and is split
across the models in proportion to their estimates, so each is shortened (or refused) by the same
rule as one chat call. One deadline covers the whole call: what finished is returned, a model
still writing is cut off and marked `interrupted` with what arrived, and a model that failed says
why in its section; only when no model produced anything does the call itself fail, with each
model's error word. The comparison is machine-made (which finished, lengths, cost ratios, speed);
a judge model is asked only when the caller names one, and is costed like the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import anyio
from pydantic import BaseModel, Field

from kyma_mcp.catalog import Catalog, CatalogView, ModelInfo
from kyma_mcp.chat import ChatResult, RequestOptions, reply_margin, stream_reply
from kyma_mcp.errors import (
    BudgetExceededError,
    KymaError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
    no_tokens_before_deadline_error,
    nobody_answered_error,
    sent_nothing_error,
)
from kyma_mcp.kyma.client import KymaClient
from kyma_mcp.kyma.wire import JSONObject
from kyma_mcp.progress import Progress
from kyma_mcp.spend import Plan, Quote, fit_chat, quote_chat, usd

MIN_MODELS = 2
MAX_MODELS = 5
MAX_COMPARE_REPLY_CHARS = 36_000
"""All replies together (the result carries each twice, as text and structured, under ~25k tokens)."""
JUDGE_MAX_TOKENS = 600
JUDGE_MIN_SECONDS = 3.0
"""The judge is asked only if at least this much of the deadline is left."""

Status = Literal["finished", "interrupted", "failed", "refused", "dry_run"]


class Section(BaseModel):
    model: str
    status: Status
    answer: ChatResult | None = None
    error: str | None = Field(default=None, description="[word] text, when failed or refused")


class CompareResult(BaseModel):
    sections: list[Section]
    total_cost_usd: float
    comparison: str
    judge: ChatResult | None = None
    notes: list[str] = Field(default_factory=list[str])

    def text(self) -> str:
        parts: list[str] = []
        for section in self.sections:
            answer = section.answer
            if answer is None:
                parts.append(f"## {section.model} · {section.status}\n{section.error}")
                continue
            served = f" (served {answer.model_served})" if answer.model_served not in (None, section.model) else ""
            tokens = answer.usage.completion_tokens
            facts = [
                section.status if section.status != "finished" else (answer.finish_reason or "finished"),
                f"{tokens:,} tokens" if tokens is not None else None,
                usd(answer.usage.cost_usd) if answer.usage.cost_usd is not None else None,
                f"{answer.latency_ms / 1000:.1f} s",
            ]
            head = f"## {section.model}{served} · " + " · ".join(f for f in facts if f)
            notes = "".join(f"\n[kyma-mcp] {note}" for note in answer.notes)
            parts.append(f"{head}\n{answer.answer_text()}{notes}")
        if self.judge is not None:
            parts.append(f"## Judge ({self.judge.model_requested})\n{self.judge.reply}")
        tail = [f"Comparison: {self.comparison}", f"Total cost: {usd(self.total_cost_usd)}."]
        tail += [f"[kyma-mcp] {note}" for note in self.notes]
        return "\n\n".join(parts) + "\n\n---\n" + "\n".join(tail)


@dataclass(frozen=True)
class Entrant:
    """One model of the fan-out, planned: what it will be sent, or why it will not be."""

    model: str
    info: ModelInfo | None
    messages: list[JSONObject]
    plan: Plan | None
    refusal: BudgetExceededError | None = None


def plan_entrants(
    view: CatalogView,
    models: Sequence[str],
    messages_for: Sequence[list[JSONObject]],
    *,
    max_tokens: int | None,
    cap: float | None,
    needs_vision: bool,
    allow_unpriced: bool,
    extra: Sequence[Quote] = (),
) -> list[Entrant]:
    """Quote each model and split `cap` across them (and the `extra` quotes, e.g. a judge) by estimate."""
    quotes = [
        quote_chat(model, view.find(model), messages, max_tokens, view.source)
        for model, messages in zip(models, messages_for, strict=True)
    ]
    priced = sum(q.cost_usd or 0 for q in [*quotes, *extra])
    entrants: list[Entrant] = []
    for model, messages, quote in zip(models, messages_for, quotes, strict=True):
        info = view.find(model)
        share = None if cap is None else (cap * (quote.cost_usd or 0) / priced if priced > 0 else cap)
        try:
            plan = fit_chat(
                quote,
                info,
                share,
                requested_max_tokens=max_tokens,
                catalog=view.models,
                needs_vision=needs_vision,
                allow_unpriced=allow_unpriced,
            )
        except BudgetExceededError as exc:
            share_note = f" (its share of max_cost_usd {usd(cap)}, split by estimate)" if cap is not None else ""
            refusal = exc.extended(share_note.strip()) if share_note else exc
            entrants.append(Entrant(model, info, messages, None, refusal))
            continue
        entrants.append(Entrant(model, info, messages, plan))
    return entrants


class Board:
    """Each model's latest progress line, sent together as one progress message."""

    def __init__(self, progress: Progress, models: Sequence[str]) -> None:
        self._progress = progress
        self._lines = {model: f"{model}: waiting for first tokens" for model in models}

    def reporter(self, model: str) -> Progress:
        async def send(_: float, __: float | None, message: str) -> None:
            self._lines[model] = message
            if self._progress.due() or message.startswith("first tokens"):
                await self._progress.report("; ".join(self._lines.values()))

        return Progress(send)

    async def finished(self, model: str, status: str) -> None:
        self._lines[model] = f"{model}: {status}"
        await self._progress.report("; ".join(self._lines.values()))


async def run_entrants(
    client: KymaClient,
    catalog: Catalog,
    progress: Progress,
    entrants: Sequence[Entrant],
    *,
    deadline_at: float,
    deadline_seconds: float,
    options: RequestOptions,
) -> tuple[list[Section], list[KymaError]]:
    """Stream every entrant at once; each ends as its own section, whatever the others do.

    Also returns the errors of the models that produced nothing, for `check_some_answered`.
    """
    board = Board(progress, [e.model for e in entrants if e.plan is not None])
    sections: list[Section | None] = [None] * len(entrants)
    failures: list[KymaError] = [e.refusal for e in entrants if e.refusal is not None]

    async def ask(index: int, entrant: Entrant, plan: Plan) -> None:
        payload = options.payload(entrant.model, entrant.messages, max_tokens=plan.max_tokens)
        section: Section | None = None
        # A model still waiting for its first byte is let go halfway through the reply's margin: after
        # a streaming one has stopped reading (and kept what arrived), before the deadline.
        with anyio.move_on_at(deadline_at - reply_margin(deadline_seconds) / 2):
            try:
                answer = await stream_reply(
                    client,
                    catalog,
                    board.reporter(entrant.model),
                    payload,
                    max_tokens=plan.max_tokens,
                    deadline_at=deadline_at,
                    deadline_seconds=deadline_seconds,
                )
                answer.notes[:0] = plan.notes
                status: Status = "interrupted" if answer.finish_reason == "interrupted" else "finished"
                section = Section(model=entrant.model, status=status, answer=answer)
            except UpstreamTimeoutError as exc:
                late = anyio.current_time() >= deadline_at - reply_margin(deadline_seconds) - 0.05
                failures.append(exc)
                section = _empty_interruption(entrant.model, deadline_seconds) if late else _failed(entrant.model, exc)
            except KymaError as exc:
                failures.append(exc)
                section = _failed(entrant.model, exc)
        if section is None:
            section = _empty_interruption(entrant.model, deadline_seconds)
            failures.append(sent_nothing_error(entrant.model))
        sections[index] = section
        await board.finished(entrant.model, section.status)

    async with anyio.create_task_group() as group:
        for index, entrant in enumerate(entrants):
            if entrant.plan is None:
                error = str(entrant.refusal) if entrant.refusal else "[budget_exceeded] not sent"
                sections[index] = Section(model=entrant.model, status="refused", error=error)
            else:
                group.start_soon(ask, index, entrant, entrant.plan)
    return [section for section in sections if section is not None], failures


def _failed(model: str, exc: KymaError) -> Section:
    return Section(model=model, status="failed", error=str(exc))


def _empty_interruption(model: str, deadline_seconds: float) -> Section:
    return Section(
        model=model,
        status="interrupted",
        error=str(no_tokens_before_deadline_error(deadline_seconds)),
    )


def check_some_answered(sections: Sequence[Section], failures: Sequence[KymaError]) -> None:
    """Fail the call when no model produced anything, naming each model's error word.

    Raises:
        KymaError: of the first failure's kind; the text lists every model's error.
    """
    if any(s.answer is not None and (s.answer.reply or s.answer.tool_calls) for s in sections):
        return
    words = "; ".join(f"{s.model}: {s.error or 'no reply'}" for s in sections)
    kind = type(failures[0]) if failures else UpstreamUnavailableError
    raise nobody_answered_error(kind, words)


def trim(sections: Sequence[Section], prompt_hint: str) -> list[str]:
    """Cut replies to an equal share of `MAX_COMPARE_REPLY_CHARS`; a note per cut reply."""
    answered = [s for s in sections if s.answer is not None]
    if not answered:
        return []
    share = MAX_COMPARE_REPLY_CHARS // len(answered)
    notes: list[str] = []
    for section in answered:
        answer = section.answer
        if answer is None or len(answer.reply) <= share:
            continue
        notes.append(
            f"{section.model}'s reply was cut from {len(answer.reply):,} to {share:,} characters to fit the result; "
            f'for the whole reply call chat with model="{section.model}" and {prompt_hint}.'
        )
        answer.reply = answer.reply[:share]
    return notes


def comparison(sections: Sequence[Section]) -> str:
    """Which finished, lengths, cost ratios and speed, in one or two sentences."""
    by_status: dict[str, list[str]] = {}
    for section in sections:
        by_status.setdefault(section.status, []).append(section.model)
    told = [f"{status} {', '.join(models)}" for status, models in by_status.items()]
    answered = [s for s in sections if s.answer is not None]
    lengths = ", ".join(f"{s.model} {len(s.answer.reply):,} chars" for s in answered if s.answer is not None)
    costs = [(s.model, s.answer.usage.cost_usd) for s in answered if s.answer and s.answer.usage.cost_usd]
    sentence = "; ".join(told) + "."
    if lengths:
        sentence += f" Lengths: {lengths}."
    if len(costs) > 1:
        cheapest = min(cost for _, cost in costs)
        ratios = ", ".join(f"{model} {cost / cheapest:.1f}x" for model, cost in costs)
        sentence += f" Cost vs the cheapest: {ratios}."
    finished = [s for s in answered if s.status == "finished" and s.answer is not None]
    if len(finished) > 1:
        fastest = min(finished, key=lambda s: s.answer.latency_ms if s.answer else 0)
        sentence += f" Fastest: {fastest.model}."
    return sentence


def judge_messages(question: str, sections: Sequence[Section]) -> list[JSONObject]:
    answers = "\n\n".join(
        f"### Answer from {s.model}\n{s.answer.reply}" for s in sections if s.answer is not None and s.answer.reply
    )
    return [
        {
            "role": "system",
            "content": "You compare answers from several AI models. In under 200 words: where they agree, where "
            "they differ, and which is most accurate or complete, and why. Do not answer the question yourself.",
        },
        {"role": "user", "content": f"## Question\n{question}\n\n{answers}"},
    ]


def total_cost(sections: Sequence[Section], judge: ChatResult | None) -> float:
    answers = [s.answer for s in sections if s.answer is not None] + ([judge] if judge else [])
    return round(sum(a.usage.cost_usd or 0 for a in answers), 8)
