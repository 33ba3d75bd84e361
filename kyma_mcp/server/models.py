"""The catalog's face: the `list_models` tool and the `kyma://models` and `kyma://guide` resources."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from mcp.server.mcpserver.exceptions import ResourceNotFoundError
from mcp.types import CallToolResult
from pydantic import Field

from kyma_mcp.catalog import Capability, Kind, ModelInfo, ModelRow, models_text, page, select
from kyma_mcp.errors import unknown_model_error
from kyma_mcp.server.context import (
    READ_ONLY,
    AppContext,
    ResourceSpec,
    ToolSpec,
    resource_state,
    text_result,
    tool_errors,
)


async def list_models(
    ctx: AppContext,
    capability: Capability | None = None,
    search: Annotated[str | None, Field(max_length=100, description="Substring of id, name or use")] = None,
    min_context: Annotated[int | None, Field(ge=1)] = None,
    min_output: Annotated[int | None, Field(ge=1)] = None,
    kind: Kind | Literal["all"] = "all",
    limit: Annotated[int, Field(ge=1, le=100)] = 50,
    offset: Annotated[int, Field(ge=0)] = 0,
) -> CallToolResult:
    """List Kyma models with context, output cap, modalities and prices, to pick a model id or check limits."""
    state = ctx.request_context.lifespan_context
    async with tool_errors(state, "list_models"):
        view = await state.catalog.view()
    chosen = select(
        view.models, kind=kind, capability=capability, search=search, min_context=min_context, min_output=min_output
    )
    rows, result = page(
        chosen, limit=limit, offset=offset, source=view.source, failure=view.failure, age_seconds=view.age_seconds
    )
    state.usage.record("list_models")
    return text_result(state.settings, models_text(rows, result), result)


async def models_resource() -> str:
    """Every Kyma model with its limits, modalities, capabilities and prices (JSON)."""
    view = await resource_state.get().catalog.view()
    return json.dumps({"source": view.source, "models": [_model_json(m) for m in view.models]})


async def model_resource(model_id: str) -> str:
    """One Kyma model (by id or alias): limits, modalities, capabilities, prices (JSON)."""
    view = await resource_state.get().catalog.view()
    model = view.find(model_id)
    if model is None:
        known = [m.id for m in view.models]
        raise ResourceNotFoundError(
            unknown_model_error(model_id, known, next_step="Read kyma://models for the valid ids.").detail
        )
    return json.dumps(_model_json(model) | {"source": view.source})


async def guide_resource() -> str:
    """Which Kyma model for which job (Markdown), from the data recommend_model uses."""
    from kyma_mcp.recommend.guide import guide_markdown  # the recommender loads on its first use

    view = await resource_state.get().catalog.view()
    return guide_markdown(view.models, view.source)


def _model_json(model: ModelInfo) -> dict[str, Any]:
    return ModelRow.of(model).model_dump(mode="json", exclude_none=True)


TOOLS = (ToolSpec(list_models, "List Kyma models", READ_ONLY),)
RESOURCES = (
    ResourceSpec("kyma://models", "models", "Kyma model catalog", "application/json", models_resource),
    ResourceSpec("kyma://models/{model_id}", "model", "One Kyma model", "application/json", model_resource),
    ResourceSpec("kyma://guide", "guide", "Which Kyma model for which job", "text/markdown", guide_resource),
)
