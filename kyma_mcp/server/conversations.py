"""The conversation resources: `kyma://conversations` (pages, newest first) and
`kyma://conversations/{conversation_id}` (the transcript in Markdown pages). No tools: threads are
made by `chat`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError

from kyma_mcp import transcripts
from kyma_mcp.errors import StoreUnavailableError
from kyma_mcp.server.context import ResourceSpec, ToolSpec, resource_state

if TYPE_CHECKING:
    from kyma_mcp.store import Store

TOOLS: tuple[ToolSpec, ...] = ()


async def _store() -> Store:
    try:
        return await resource_state.get().store.get()
    except StoreUnavailableError as exc:
        raise ResourceError(str(exc)) from None


async def conversations_page(offset: int = 0) -> str:
    """Stored chat threads, most recently used first (JSON): id, title, models, turns, cost, updated."""
    page, total = await (await _store()).conversations(limit=transcripts.PAGE_SIZE, offset=max(0, offset))
    return transcripts.listing(page, total=total, offset=max(0, offset))


async def conversations_resource() -> str:
    """Stored chat threads, most recently used first (JSON); `next` names the following page."""
    return await conversations_page()


async def conversation_resource(conversation_id: str, offset: int = 0) -> str:
    """One thread as Markdown, from turn `offset + 1`, in pages that fit a host's result limit."""
    store = await _store()
    conversation = await store.conversation(conversation_id)
    if conversation is None:
        raise ResourceNotFoundError(
            f"No conversation '{conversation_id}' (deleted, expired or never made); read kyma://conversations."
        )
    return transcripts.transcript(conversation, await store.turns(conversation_id), offset=max(0, offset))


RESOURCES = (
    ResourceSpec("kyma://conversations", "conversations", "Chat threads", "application/json", conversations_resource),
    ResourceSpec(
        "kyma://conversations{?offset}",
        "conversations_page",
        "Chat threads (page)",
        "application/json",
        conversations_page,
    ),
    ResourceSpec(
        "kyma://conversations/{conversation_id}{?offset}",
        "conversation",
        "One chat thread",
        "text/markdown",
        conversation_resource,
    ),
)
