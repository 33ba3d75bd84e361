"""The `chat` tool: arguments in, `chat.stream_reply` does the work."""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from mcp.types import CallToolResult, TextContent
from pydantic import Field, WithJsonSchema

from kyma_mcp.chat import ChatMessage, ChatResult, Role, build_messages, build_payload, check_vision, stream_reply
from kyma_mcp.server.context import BILLED, AppContext, ModelId, ToolSpec, progress_of, tool_errors
from kyma_mcp.vision import to_image_url

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


async def chat(
    ctx: AppContext,
    prompt: Annotated[str | None, Field(max_length=400_000, description="The user message")] = None,
    messages: Annotated[
        list[ChatMessage] | None,
        Field(min_length=1, max_length=500, description="Instead of prompt"),
        WithJsonSchema(MESSAGES_SCHEMA),
    ] = None,
    model: Annotated[ModelId | None, Field(description="Model id or alias")] = None,
    system: Annotated[str | None, Field(max_length=100_000)] = None,
    images: Annotated[list[str] | None, Field(max_length=8, description="Paths or URLs, for vision models")] = None,
    max_tokens: Annotated[int | None, Field(ge=1, le=1_000_000)] = None,
    temperature: Annotated[float | None, Field(ge=0, le=2)] = None,
    top_p: Annotated[float | None, Field(ge=0, le=1)] = None,
    stop: Annotated[list[Annotated[str, Field(min_length=1, max_length=200)]] | None, Field(max_length=4)] = None,
    response_format: Literal["text", "json_object"] = "text",
    reasoning_effort: Literal["none", "low", "medium", "high", "max"] | None = None,
) -> Annotated[CallToolResult, ChatResult]:
    """Ask a Kyma model: a second opinion, cheaper bulk work, reasoning, or reading images (vision models).

    The reply comes back with the model served, tokens and cost.
    """
    state = ctx.request_context.lifespan_context
    model_id = model or state.settings.default_model
    progress = progress_of(ctx)
    async with tool_errors(state, "chat", progress) as deadline_at:
        image_urls = [await to_image_url(source) for source in images or ()]
        wire = build_messages(prompt=prompt, messages=messages, system=system, image_urls=image_urls)
        if image_urls:
            check_vision(model_id, wire, await state.catalog.view())
        payload = build_payload(
            model_id,
            wire,
            max_tokens=max_tokens,
            temperature=temperature,
            top_p=top_p,
            stop=stop,
            response_format=response_format,
            reasoning_effort=reasoning_effort,
        )
        result = await stream_reply(
            state.client,
            state.catalog,
            progress,
            payload,
            max_tokens=max_tokens,
            deadline_at=deadline_at,
            deadline_seconds=state.settings.tool_timeout_seconds,
        )
    state.usage.record("chat", cost_usd=result.usage.cost_usd)
    return CallToolResult(
        content=[TextContent(type="text", text=result.text())], structured_content=result.model_dump(mode="json")
    )


TOOLS = (ToolSpec(chat, "Chat with a Kyma model", BILLED, required=("prompt",)),)
