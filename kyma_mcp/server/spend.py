"""The `kyma://spend` resource: this period's money and its calls (model, tokens, cost), from the
spend ledger. No tools: every billed tool writes the ledger (see `budget`)."""

from __future__ import annotations

from mcp.server.mcpserver.exceptions import ResourceError

from kyma_mcp.errors import StoreUnavailableError
from kyma_mcp.server.context import ResourceSpec, ToolSpec, resource_state

TOOLS: tuple[ToolSpec, ...] = ()
RECENT_CALLS = 200
"""Calls listed at most, newest first (`calls` counts them all); about 200 B each."""


async def spend_resource() -> str:
    """This period's spend (JSON): budget, spent, reserved, remaining, reset time, and the newest calls."""
    try:
        listing = await resource_state.get().budget.listing(RECENT_CALLS)
    except StoreUnavailableError as exc:
        raise ResourceError(str(exc)) from None
    return listing.model_dump_json(indent=1)


RESOURCES = (ResourceSpec("kyma://spend", "spend", "Spend this period", "application/json", spend_resource),)
