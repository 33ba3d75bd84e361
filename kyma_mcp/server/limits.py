"""The `get_limits` tool: the account's tier, limits and balance, and this server's tally."""

from __future__ import annotations

from typing import Annotated

from mcp.types import CallToolResult

from kyma_mcp.errors import StoreUnavailableError, redact, spend_unreadable_note
from kyma_mcp.limits import LimitsResult, fetch_limit_parts, limits_from_parts
from kyma_mcp.server.context import READ_ONLY, AppContext, ToolSpec, structured_result, tool_errors


async def get_limits(ctx: AppContext) -> Annotated[CallToolResult, LimitsResult]:
    """Show the tier, rate limits, balance and spend: before heavy work or after a rate_limited error."""
    state = ctx.request_context.lifespan_context
    client = state.client
    async with tool_errors(state, "get_limits"):
        parts = await fetch_limit_parts(client, has_key=state.settings.has_api_key)
    result = limits_from_parts(parts, state.settings, state.usage)
    try:
        result.spend = await state.budget.summary()
    except StoreUnavailableError as exc:
        result.notes.append(spend_unreadable_note(str(exc)))
    state.usage.record("get_limits")
    return structured_result(redact(result.text(), client.secrets), result)


TOOLS = (ToolSpec(get_limits, "Kyma tier, limits and balance", READ_ONLY),)
