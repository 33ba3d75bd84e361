"""Conversations read back: the listing (JSON), the transcript (Markdown, in pages that fit a host's
result limit) and the full export (JSON or Markdown). Shared by the resources and the CLI."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from kyma_mcp.spend import with_unknown
from kyma_mcp.store.money import MICROS_PER_USD

if TYPE_CHECKING:
    from kyma_mcp.store.records import Conversation, Turn

PAGE_SIZE = 20
"""Conversations per page of `kyma://conversations`."""
MAX_TRANSCRIPT_CHARS = 60_000
"""Characters of one transcript page: about 20k tokens at 3 characters a token, under the 25k-token result cap."""


def when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def six_places(amount: float | None) -> str:
    """A transcript's money: to the micro-dollar, which the store keeps."""
    return "unknown" if amount is None else f"${amount:.6f}"


def total_cost(conversation: Conversation, money: Callable[[float | None], str] = six_places) -> str:
    """The thread's cost as far as it is known: `$0.012300`, `$0.012300 + 2 turns of unknown cost`, `unknown`."""
    return with_unknown(conversation.cost_micros / MICROS_PER_USD, conversation.unknown_cost_turns, "turn", money=money)


def summary(conversation: Conversation) -> dict[str, Any]:
    known = conversation.cost_micros / MICROS_PER_USD
    return {
        "id": conversation.id,
        "title": conversation.title,
        "models": list(conversation.models),
        "turns": conversation.turns,
        "cost_usd": None if conversation.unknown_cost_turns and not known else known,
        "unknown_cost_turns": conversation.unknown_cost_turns,
        "cost": total_cost(conversation),
        "updated": when(conversation.updated_at),
        "uri": f"kyma://conversations/{conversation.id}",
    }


def listing(page: Sequence[Conversation], *, total: int, offset: int) -> str:
    """One page of conversations, newest first, with the URI of the next page when there is one."""
    following = offset + len(page)
    return json.dumps(
        {
            "conversations": [summary(c) for c in page],
            "total": total,
            "offset": offset,
            "next": f"kyma://conversations?offset={following}" if following < total else None,
        }
    )


def _messages(turn: Turn) -> list[dict[str, Any]]:
    return json.loads(turn.messages_json)


def _turn_markdown(turn: Turn) -> str:
    outcome = turn.outcome
    served = outcome.model_served or turn.model_requested
    facts = [served if served == turn.model_requested else f"{turn.model_requested} → {served}", turn.status]
    if outcome.prompt_tokens is not None or outcome.completion_tokens is not None:
        facts.append(f"{outcome.prompt_tokens or 0} in / {outcome.completion_tokens or 0} out tokens")
    if outcome.cost_micros:
        facts.append(six_places(outcome.cost_micros / MICROS_PER_USD))
    elif outcome.cost_micros is None and turn.status != "pending":
        facts.append("cost unknown")
    if outcome.latency_ms is not None:
        facts.append(f"{outcome.latency_ms} ms")
    if outcome.finish_reason:
        facts.append(f"finish: {outcome.finish_reason}")
    if outcome.error_word:
        facts.append(f"[{outcome.error_word}]")
    lines = [f"## Turn {turn.seq} · {when(turn.created_at)} · {' · '.join(facts)}", ""]
    for message in _messages(turn):
        lines += [f"**{message.get('role', 'user')}:**", "", str(message.get("content", "")), ""]
    if turn.status == "pending":
        lines += ["*(reply in progress, or its server stopped mid-reply)*", ""]
    elif turn.status in ("failed", "interrupted") and not outcome.reply:
        lines += [f"*(no reply: the turn {turn.status}; it is not sent again as history)*", ""]
    if outcome.reply:
        marker = "" if turn.status == "complete" else f" ({turn.status}; not sent again as history)"
        lines += [f"**assistant{marker}:**", "", outcome.reply, ""]
    return "\n".join(lines)


def transcript(conversation: Conversation, turns: Sequence[Turn], *, offset: int = 0) -> str:
    """The thread as Markdown from turn `offset + 1`, whole turns up to `MAX_TRANSCRIPT_CHARS`
    (a single longer turn is cut), ending with where to read on."""
    text = _header(conversation, len(turns))
    shown = 0
    for turn in turns[offset:]:
        block = _turn_markdown(turn)
        if shown and len(text) + len(block) > MAX_TRANSCRIPT_CHARS:
            break
        if len(text) + len(block) > MAX_TRANSCRIPT_CHARS:
            block = block[: max(0, MAX_TRANSCRIPT_CHARS - len(text))] + "\n\n*(turn cut to fit this page)*\n"
        text += "\n" + block
        shown += 1
    end = offset + shown
    if end < len(turns):
        text += (
            f"\n---\nTurns {offset + 1} to {end} of {len(turns)}. "
            f"Read kyma://conversations/{conversation.id}?offset={end} for the rest.\n"
        )
    return text


def _header(conversation: Conversation, turn_count: int) -> str:
    lines = [
        f"# {conversation.title}",
        "",
        f"conversation_id `{conversation.id}` · {turn_count} turns · models {', '.join(conversation.models) or '-'} "
        f"· {total_cost(conversation)} · updated {when(conversation.updated_at)}",
        "",
    ]
    if conversation.system:
        lines += ["**system:**", "", conversation.system, ""]
    return "\n".join(lines)


def export_json(conversation: Conversation, turns: Sequence[Turn]) -> str:
    """Everything stored about the thread, as one JSON document."""
    document = summary(conversation) | {
        "system": conversation.system,
        "created": when(conversation.created_at),
        "turns": [
            {
                "seq": turn.seq,
                "status": turn.status,
                "created": when(turn.created_at),
                "messages": _messages(turn),
                "reply": turn.outcome.reply,
                "model_requested": turn.model_requested,
                "model_served": turn.outcome.model_served,
                "prompt_tokens": turn.outcome.prompt_tokens,
                "completion_tokens": turn.outcome.completion_tokens,
                "cost_usd": None if turn.outcome.cost_micros is None else turn.outcome.cost_micros / MICROS_PER_USD,
                "latency_ms": turn.outcome.latency_ms,
                "finish_reason": turn.outcome.finish_reason,
                "error": turn.outcome.error_word,
            }
            for turn in turns
        ],
    }
    return json.dumps(document, indent=2, ensure_ascii=False)


def export_markdown(conversation: Conversation, turns: Sequence[Turn]) -> str:
    """The whole transcript, uncut (for a file, not for a model)."""
    return _header(conversation, len(turns)) + "".join("\n" + _turn_markdown(turn) for turn in turns)
