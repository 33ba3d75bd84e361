"""The `recommend_model` tool over the recommender.

Text first: the Pick/Cheaper/Stronger lines with their reasons and ready arguments, the notes and
what was understood are what the model should read; the `Recommendation` goes to programs in `_meta`.
"""

from __future__ import annotations

from typing import Annotated

from mcp.types import CallToolResult
from pydantic import Field

from kyma_mcp.catalog import Capability
from kyma_mcp.kyma.tiers import bundled_tiers
from kyma_mcp.limits import request_caps
from kyma_mcp.recommend import Priority
from kyma_mcp.server.context import READ_ONLY, AppContext, ToolSpec, text_result, tool_errors


async def recommend_model(
    ctx: AppContext,
    task: Annotated[str, Field(min_length=1, max_length=4000)],
    needs: Annotated[list[Capability] | None, Field(max_length=7)] = None,
    min_context: Annotated[int | None, Field(ge=1)] = None,
    min_output: Annotated[int | None, Field(ge=1)] = None,
    priority: Priority = "balanced",
) -> CallToolResult:
    """Pick a Kyma model for a task when unsure: a pick, a cheaper and a stronger one, with ready arguments."""
    from kyma_mcp.recommend.ranking import recommend  # the recommender loads on its first use, not at start-up

    state = ctx.request_context.lifespan_context
    async with tool_errors(state, "recommend_model"):
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
    return text_result(state.settings, result.text(), result)


TOOLS = (ToolSpec(recommend_model, "Recommend a Kyma model", READ_ONLY),)
