"""The image tools: `generate_image` and `get_image_job` over `images.jobs`."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from mcp.server.mcpserver.resolve import Elicit, Resolve
from mcp.types import CallToolResult, ImageContent
from pydantic import Field

from kyma_mcp.images.jobs import (
    Delivery,
    IdempotencyKey,
    ImageRequest,
    ImageResult,
    ImageSize,
    JobId,
    check_request,
)
from kyma_mcp.server.confirm import Consent, ConsentOutcome, SpendConfirmation, ask, fingerprint
from kyma_mcp.server.context import (
    BILLED,
    READ_ONLY,
    AppContext,
    ConfirmToken,
    DryRun,
    MaxCost,
    ModelId,
    ToolSpec,
    confirming,
    dry_run_result,
    progress_of,
    text_result,
    tool_errors,
)
from kyma_mcp.settings import Settings
from kyma_mcp.spend import Quote, check_priced, dry_run_text, fit_images, quote_images

RECENT_JOBS = 20
"""Jobs get_image_job lists when called without a job_id."""


async def _consent(
    ctx: AppContext,
    prompt: str,
    model: str | None,
    size: str | None,
    n: int,
    image_url: str | None,
    idempotency_key: str | None,
    max_cost_usd: float | None,
    dry_run: bool,
    confirm: str | None,
) -> Elicit[SpendConfirmation] | Consent:
    """Before the body runs: ask the user when this job's price is above KYMA_CONFIRM_ABOVE_USD."""
    state = ctx.request_context.lifespan_context

    async def estimate() -> Quote:
        view = await state.catalog.view()
        request = ImageRequest(prompt, model or state.settings.default_image_model, size, n, image_url, idempotency_key)
        model_id = check_request(view, request)
        return quote_images(model_id, view.find(model_id), n, view.source)

    return await ask(
        ctx,
        "generate_image",
        threshold=state.settings.confirm_above_usd,
        cap=max_cost_usd,
        skip=dry_run or confirm is not None,
        estimate=estimate,
        answer_seconds=state.settings.tool_timeout_seconds,
    )


async def generate_image(
    ctx: AppContext,
    consent: Annotated[ConsentOutcome, Resolve(_consent)],
    prompt: Annotated[str, Field(min_length=1, max_length=4000)],
    model: ModelId | None = None,
    size: ImageSize | None = None,
    n: Annotated[int, Field(ge=1, le=4, description="Each is billed")] = 1,
    image_url: Annotated[str | None, Field(max_length=4096, description="https image to edit")] = None,
    idempotency_key: Annotated[IdempotencyKey | None, Field(description="Same key = same job, billed once")] = None,
    max_cost_usd: MaxCost = None,
    dry_run: DryRun = False,
    confirm: ConfirmToken = None,
) -> CallToolResult:
    """Make pictures, logos or edits (flux-kontext-pro + image_url); previews come back, files are saved.

    When the result's status is running, get_image_job delivers the images later.
    """
    state = ctx.request_context.lifespan_context
    request = ImageRequest(prompt, model or state.settings.default_image_model, size, n, image_url, idempotency_key)
    progress = progress_of(ctx)
    async with tool_errors(state, "generate_image", progress) as deadline_at:
        view = await state.catalog.view()
        estimate = 0.0
        quote: Quote | None = None
        if max_cost_usd is not None or dry_run or state.budget.active or confirming(state):
            model_id = check_request(view, request)
            quote = quote_images(model_id, view.find(model_id), n, view.source)
            plan = fit_images(quote, max_cost_usd, catalog=view.models, allow_unpriced=state.settings.allow_unpriced)
            if state.budget.active:
                check_priced(quote, why="KYMA_BUDGET_USD", allow_unpriced=state.settings.allow_unpriced)
            estimate = quote.cost_usd or 0.0
            if dry_run:
                dry = ImageResult(
                    job_id="",
                    status="dry_run",
                    model=quote.model,
                    images=[],
                    estimated_cost_usd=quote.cost_usd,
                    charged_usd=None,
                    message=dry_run_text([quote], plan.notes),
                )
                return dry_run_result(state.settings, dry, [quote], plan.notes)
        await state.confirmations.check(
            consent,
            quote,
            threshold=state.settings.confirm_above_usd,
            call=lambda: fingerprint("generate_image", asdict(request)),
            token=confirm,
        )
        async with state.budget.reserved("generate_image", estimate, model=request.model) as held:
            delivery = await state.images.generate(request, view, deadline_at=deadline_at, progress=progress.report)
            held.charged_usd = delivery.newly_charged_usd
    state.usage.record("generate_image", cost_usd=delivery.newly_charged_usd)
    return _image_result(state.settings, delivery)


async def get_image_job(
    ctx: AppContext,
    job_id: Annotated[JobId | None, Field(description="Omit to list recent jobs")] = None,
    wait_seconds: Annotated[float | None, Field(ge=0, le=3600)] = None,
) -> CallToolResult:
    """Wait for an image job generate_image left running, or fetch its images again."""
    state = ctx.request_context.lifespan_context
    progress = progress_of(ctx)
    if job_id is None:
        return _image_result(state.settings, await state.images.recent(RECENT_JOBS))
    async with tool_errors(state, "get_image_job", progress) as deadline_at:
        delivery = await state.images.resume(
            job_id, wait_seconds=wait_seconds, deadline_at=deadline_at, progress=progress.report
        )
    state.usage.record("get_image_job", cost_usd=delivery.newly_charged_usd)
    return _image_result(state.settings, delivery)


def _image_result(settings: Settings, delivery: Delivery) -> CallToolResult:
    """The text (files, URLs, model, cost) and one preview image per picture; the facts in `_meta`.

    No structured content: Codex hands its model only the structured content when there is any, and
    the previews would be lost.
    """
    previews = [ImageContent(type="image", data=data, mime_type=mime) for data, mime in delivery.preview_base64()]
    return text_result(settings, delivery.result.text(), delivery.result, previews)


TOOLS = (
    ToolSpec(generate_image, "Generate images with Kyma", BILLED),
    ToolSpec(get_image_job, "Get a Kyma image job", READ_ONLY),
)
