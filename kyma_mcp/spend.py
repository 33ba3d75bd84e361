"""What a call will cost before it is sent, and what a per-call cap (`max_cost_usd`) does to it.

The estimate uses the catalog's prices: input tokens from the request (`usage.estimate_message_tokens`,
the estimate the conversation store shares), output tokens from `max_tokens`, else Kyma's default
of 4,096, never above the model's own output cap. An image job costs the model's price per image
times `n`. Kyma's reported cost replaces the estimate once a call is done (see `budget`).

A cap first tries to keep the call by lowering `max_tokens` to what it pays for, when that still
leaves a useful reply (`MIN_USEFUL_TOKENS`); otherwise the call is refused with `[budget_exceeded]`
naming the estimate, the cap and what would fit: fewer tokens or a cheaper model of the catalog.
A model without a price cannot be held to a cap: such a call is refused unless
`KYMA_ALLOW_UNPRICED=1`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from kyma_mcp.catalog import Catalog, ModelInfo, Source
from kyma_mcp.errors import BudgetExceededError, over_cap_error, unpriced_error
from kyma_mcp.usage import estimate_message_tokens

DEFAULT_MAX_TOKENS = 4096
"""What Kyma writes at most when a request sets no max_tokens."""
MIN_USEFUL_TOKENS = 256
"""A cap may lower max_tokens down to this (or to what was asked, if less); below it the call is refused."""
SUGGESTED_MODELS = 3


class Quote(BaseModel):
    """One model's estimated cost for one call, as `dry_run` returns it."""

    model: str
    input_tokens: int | None = None
    output_tokens: int | None = None
    images: int | None = None
    cost_usd: float | None
    price_source: str

    def text(self, *, source: bool = True) -> str:
        """`model: ~N input + M output tokens, ≈ $c (catalog, live)`; `source=False` leaves out where the
        price came from (live or cached, which may change between two readings of one call)."""
        if self.images is not None:
            what = f"{self.images} image{'s' if self.images != 1 else ''}"
        else:
            what = f"~{self.input_tokens or 0:,} input + {self.output_tokens or 0:,} output tokens"
        cost = f"≈ {usd(self.cost_usd)}" if self.cost_usd is not None else "price unknown"
        return f"{self.model}: {what}, {cost}" + (f" ({self.price_source})" if source else "")


def usd(amount: float | None) -> str:
    """Money for people: `$0.0123`, four decimals below a dollar, cents above."""
    if amount is None:
        return "unknown"
    return f"${amount:,.2f}" if amount >= 1 else f"${amount:.4f}"


def with_unknown(known_usd: float, unknown: int, noun: str, *, money: Callable[[float | None], str] = usd) -> str:
    """A total that says what it knows: `$0.0123`, `$0.0123 + 2 turns of unknown cost` (`noun`: what
    `unknown` counts, singular), or `unknown` when no part of it is known."""
    if not unknown:
        return money(known_usd)
    if not known_usd:
        return "unknown"
    return f"{money(known_usd)} + {unknown} {noun}{'s' if unknown != 1 else ''} of unknown cost"


@dataclass(frozen=True)
class Plan:
    """What a call will send under its cap: its quote, the max_tokens to send, notes for the agent."""

    quote: Quote | None
    """None when nothing asked for an estimate (no cap, budget, confirmation or dry run)."""
    max_tokens: int | None
    notes: tuple[str, ...] = ()


def price_source(model: ModelInfo | None, source: Source) -> str:
    return f"catalog, {source}" if model is not None else "not in the catalog"


def chat_cost(model: ModelInfo, input_tokens: int, output_tokens: int) -> float | None:
    if model.input_usd_per_1m is None or model.output_usd_per_1m is None:
        return None
    return (input_tokens * model.input_usd_per_1m + output_tokens * model.output_usd_per_1m) / 1_000_000


def output_tokens(model: ModelInfo | None, max_tokens: int | None) -> int:
    """What a reply may run to: max_tokens or Kyma's default, never past the model's own cap."""
    asked = max_tokens or DEFAULT_MAX_TOKENS
    return min(asked, model.max_output_tokens) if model is not None and model.max_output_tokens else asked


def quote_chat(
    model_id: str,
    model: ModelInfo | None,
    messages: Sequence[Mapping[str, Any]],
    max_tokens: int | None,
    source: Source,
) -> Quote:
    inputs = estimate_message_tokens(messages)
    outputs = output_tokens(model, max_tokens)
    return Quote(
        model=model.id if model is not None else model_id,
        input_tokens=inputs,
        output_tokens=outputs,
        cost_usd=chat_cost(model, inputs, outputs) if model is not None else None,
        price_source=price_source(model, source),
    )


def quote_images(model_id: str, model: ModelInfo | None, n: int, source: Source) -> Quote:
    price = model.image_usd if model is not None else None
    return Quote(
        model=model.id if model is not None else model_id,
        images=n,
        cost_usd=price * n if price is not None else None,
        price_source=price_source(model, source),
    )


def check_priced(quote: Quote, *, why: str, allow_unpriced: bool) -> None:
    """Refuse to hold an unpriced call to a cap or budget (`why`), unless KYMA_ALLOW_UNPRICED=1.

    Raises:
        BudgetExceededError: the model has no price and unpriced calls are not allowed.
    """
    if quote.cost_usd is None and not allow_unpriced:
        raise unpriced_error(quote.model, quote.price_source, why)


def fit_chat(
    quote: Quote,
    model: ModelInfo | None,
    cap: float | None,
    *,
    requested_max_tokens: int | None,
    catalog: Sequence[ModelInfo],
    needs_vision: bool,
    allow_unpriced: bool,
) -> Plan:
    """The chat call that fits `cap`: as asked, with a lower max_tokens (and a note), or refused.

    Raises:
        BudgetExceededError: even `MIN_USEFUL_TOKENS` of output would cost more than the cap, or the
            model is unpriced; the text names the estimate, the cap and what would fit.
    """
    if cap is None:
        return Plan(quote, requested_max_tokens)
    check_priced(quote, why=f"max_cost_usd {usd(cap)}", allow_unpriced=allow_unpriced)
    cost = quote.cost_usd
    if model is None or cost is None or cost <= cap:
        return Plan(quote, requested_max_tokens)
    inputs = quote.input_tokens or 0
    affordable = _affordable_output(model, inputs, cap)
    useful = min(MIN_USEFUL_TOKENS, quote.output_tokens or MIN_USEFUL_TOKENS)
    if affordable >= useful:
        lowered = replace_output(quote, model, affordable)
        note = (
            f"max_cost_usd {usd(cap)}: max_tokens lowered from {quote.output_tokens:,} to {affordable:,} so the "
            f"estimate ({usd(lowered.cost_usd)}) fits; a longer reply needs a larger cap or a cheaper model."
        )
        return Plan(lowered, affordable, (note,))
    raise cap_refusal(quote, cap, affordable, cheaper_chat_models(quote, model, cap, catalog, needs_vision))


def fit_images(quote: Quote, cap: float | None, *, catalog: Sequence[ModelInfo], allow_unpriced: bool) -> Plan:
    """An image job within `cap`, or refused naming fewer images or a cheaper image model.

    Raises:
        BudgetExceededError: the job costs more than the cap, or the model is unpriced.
    """
    if cap is None:
        return Plan(quote, None)
    check_priced(quote, why=f"max_cost_usd {usd(cap)}", allow_unpriced=allow_unpriced)
    if quote.cost_usd is None or quote.cost_usd <= cap:
        return Plan(quote, None)
    n = quote.images or 1
    each = quote.cost_usd / n
    fewer = math.floor(cap / each + 1e-9) if each > 0 else 0
    options = [f"n={fewer} ({usd(each * fewer)})"] if fewer >= 1 else []
    cheaper = sorted(
        (m for m in catalog if m.kind == "image" and m.image_usd is not None and m.image_usd * n <= cap),
        key=lambda m: -(m.image_usd or 0),
    )
    options += [f"{m.id} ({usd((m.image_usd or 0) * n)} for {n})" for m in cheaper[:SUGGESTED_MODELS]]
    raise over_cap_error("This image job's", usd(cap), quote.text(), options)


def replace_output(quote: Quote, model: ModelInfo, output: int) -> Quote:
    return quote.model_copy(
        update={"output_tokens": output, "cost_usd": chat_cost(model, quote.input_tokens or 0, output)}
    )


def _affordable_output(model: ModelInfo, input_tokens: int, cap: float) -> int:
    """The most output tokens `cap` pays for after the input, at the model's prices."""
    input_cost = input_tokens * (model.input_usd_per_1m or 0) / 1_000_000
    per_token = (model.output_usd_per_1m or 0) / 1_000_000
    if per_token <= 0:
        return DEFAULT_MAX_TOKENS if input_cost <= cap else 0
    return max(0, math.floor((cap - input_cost) / per_token + 1e-9))


def cheaper_chat_models(
    quote: Quote, model: ModelInfo, cap: float, catalog: Sequence[ModelInfo], needs_vision: bool
) -> list[Quote]:
    """Chat models whose estimate for the same request fits `cap`, the dearest (likely strongest) first."""
    fitting: list[Quote] = []
    for other in catalog:
        if (
            other.kind != "chat"
            or other.id == model.id
            or not other.offered()
            or (needs_vision and not other.has("vision"))
        ):
            continue
        outputs = min(quote.output_tokens or DEFAULT_MAX_TOKENS, other.max_output_tokens or DEFAULT_MAX_TOKENS)
        cost = chat_cost(other, quote.input_tokens or 0, outputs)
        if cost is not None and cost <= cap:
            fitting.append(quote.model_copy(update={"model": other.id, "output_tokens": outputs, "cost_usd": cost}))
    fitting.sort(key=lambda q: -(q.cost_usd or 0))
    return fitting[:SUGGESTED_MODELS]


def cap_refusal(quote: Quote, cap: float, affordable: int, cheaper: Sequence[Quote]) -> BudgetExceededError:
    options = [f"max_tokens={affordable:,}"] if affordable > 0 else []
    options += [f"{q.model} ({usd(q.cost_usd)})" for q in cheaper]
    return over_cap_error("This call's", usd(cap), quote.text(), options)


def dry_run_text(quotes: Sequence[Quote], notes: Sequence[str]) -> str:
    """What a dry run shows: one line per model, the total, and what the cap or budget would do."""
    lines = [f"Dry run, nothing sent. Estimate: {q.text()}" for q in quotes]
    priced = [q.cost_usd for q in quotes if q.cost_usd is not None]
    if len(quotes) > 1:
        lines.append(f"Total ≈ {usd(sum(priced))}" + (" (some models unpriced)" if len(priced) < len(quotes) else ""))
    lines += list(notes)
    lines.append("Kyma's reported cost replaces the estimate after a real call; output is billed as written.")
    return "\n".join(lines)


async def plan_chat(
    catalog: Catalog,
    model_id: str,
    messages: Sequence[Mapping[str, Any]],
    *,
    max_tokens: int | None,
    cap: float | None,
    needs_vision: bool,
    allow_unpriced: bool,
    budgeted: bool = False,
) -> Plan:
    """Quote a chat call from the catalog and fit it to `cap` (see `fit_chat`).

    Raises:
        BudgetExceededError: it cannot be kept within the cap, or is unpriced under a budget.
    """
    view = await catalog.view()
    model = view.find(model_id)
    quote = quote_chat(model_id, model, messages, max_tokens, view.source)
    if budgeted:
        check_priced(quote, why="KYMA_BUDGET_USD", allow_unpriced=allow_unpriced)
    return fit_chat(
        quote,
        model,
        cap,
        requested_max_tokens=max_tokens,
        catalog=view.models,
        needs_vision=needs_vision,
        allow_unpriced=allow_unpriced,
    )
