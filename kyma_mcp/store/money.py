"""Money as the store keeps it: integer micro-US-dollars, so sums are exact.

Its own module so that what only needs the unit (the budget, transcripts) does not load the record
classes at import: the store is opened on first use, and so is its code (see `kyma_mcp.store`).
"""

from __future__ import annotations

MICROS_PER_USD = 1_000_000


def to_micros(usd: float | None) -> int:
    return round((usd or 0.0) * MICROS_PER_USD)


def known_micros(usd: float | None) -> int | None:
    """`to_micros`, keeping an amount nobody reported unknown (None) rather than $0."""
    return None if usd is None else to_micros(usd)
