"""The `get_limits` tool: the account's tier, limits and balance, and this server's tally."""

from __future__ import annotations

from typing import Annotated

from mcp.types import CallToolResult, TextContent

from kyma_mcp.errors import redact
from kyma_mcp.kyma.tiers import bundled_tiers
from kyma_mcp.limits import LimitsResult, collect_parts, shape_limits
from kyma_mcp.server.context import READ_ONLY, AppContext, ToolSpec, tool_errors


async def get_limits(ctx: AppContext) -> Annotated[CallToolResult, LimitsResult]:
    """Show the tier, rate limits, balance and spend: before heavy work or after a rate_limited error."""
    state = ctx.request_context.lifespan_context
    client = state.client
    has_key = state.settings.has_api_key
    async with tool_errors(state, "get_limits"):
        account = {"account": client.get_auth_limits, "balance": client.get_balance} if has_key else {}
        parts = await collect_parts({"tiers": client.get_tiers, "capabilities": client.get_capabilities, **account})
    result = shape_limits(
        tiers=parts["tiers"],
        bundled_tiers=bundled_tiers(),
        account=parts.get("account"),
        balance=parts.get("balance"),
        capabilities=parts["capabilities"],
        usage=state.usage,
        configured_tier=state.settings.tier,
        has_key=has_key,
    )
    state.usage.record("get_limits")
    return CallToolResult(
        content=[TextContent(type="text", text=redact(result.text(), client.secrets))],
        structured_content=result.model_dump(mode="json"),
    )


TOOLS = (ToolSpec(get_limits, "Kyma tier, limits and balance", READ_ONLY),)
