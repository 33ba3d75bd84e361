"""Token and cost accounting: the one token estimate for text not yet sent, and this server's own
tally of calls and spend since it started, reported by `get_limits`.

`estimate_tokens` is shared by everything that must size a request before Kyma counts it: cost
estimates and caps (`spend`), and fitting a conversation's history into a context window. The
rule is one token per `CHARS_PER_TOKEN` characters, rounded up, plus `TOKENS_PER_MESSAGE` per
message and `TOKENS_PER_IMAGE` per image. English runs at about 4 characters a token and code or
other scripts at 2-3, so 3 leans high: an estimate meant to keep spend under a cap should
overshoot rather than undershoot.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

CHARS_PER_TOKEN = 3
TOKENS_PER_MESSAGE = 4
"""Role and framing tokens every chat message adds."""
TOKENS_PER_IMAGE = 1_500
"""An image part, whatever its size (vision models bill roughly 1-2k tokens for a typical picture)."""


def estimate_tokens(text: str) -> int:
    """Tokens `text` is expected to cost as input: `CHARS_PER_TOKEN` characters a token, rounded up."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def estimate_message_tokens(messages: Sequence[Mapping[str, Any]]) -> int:
    """Input tokens of OpenAI-style `messages` (content a string or text/image parts)."""
    total = 0
    for message in messages:
        total += TOKENS_PER_MESSAGE
        content: object = message.get("content")
        if isinstance(content, str):
            total += estimate_tokens(content)
            continue
        for part in cast(list[object], content) if isinstance(content, list) else ():
            if not isinstance(part, Mapping):
                continue
            typed = cast(Mapping[str, object], part)
            if typed.get("type") == "image_url":
                total += TOKENS_PER_IMAGE
            elif isinstance(text := typed.get("text"), str):
                total += estimate_tokens(text)
    return total


@dataclass
class SessionUsage:
    calls: Counter[str] = field(default_factory=Counter[str])
    failures: Counter[str] = field(default_factory=Counter[str])
    spend_usd: float = 0.0

    def record(self, tool: str, *, cost_usd: float | None = None, failed: bool = False) -> None:
        self.calls[tool] += 1
        if failed:
            self.failures[tool] += 1
        if cost_usd:
            self.spend_usd += cost_usd
