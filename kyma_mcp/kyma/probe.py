"""Plain HTTP looks at a gateway for the doctor and the snapshot builder, outside `KymaClient`.

`KymaClient` is the product's way to Kyma (auth, retries, pacing, bounded reads). The doctor wants
something it deliberately avoids: one bare request whose answer time and `Date` header are measured,
with no retry; `python -m kyma_mcp.snapshot` (a maintainer's tool) wants two whole JSON documents.
They live here so that only `kyma/` imports httpx2 (an import contract in pyproject.toml).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx2


class Unreachable(Exception):
    """No HTTP answer (DNS, connection, TLS, timeout), or a body that is not the JSON asked for."""


@dataclass(frozen=True)
class Reached:
    status: int
    elapsed_ms: float
    """From sending to the response headers: the body is never read."""
    date: str | None
    """The gateway's `Date` header, for the clock check."""


async def reach(url: str, timeout_seconds: float) -> Reached:
    """One GET of `url`, headers only, no retry; raises `Unreachable` naming the failure's type."""
    started = time.perf_counter()
    try:
        async with httpx2.AsyncClient(timeout=timeout_seconds) as http, http.stream("GET", url) as response:
            elapsed_ms = (time.perf_counter() - started) * 1000
            return Reached(response.status_code, elapsed_ms, response.headers.get("date"))
    except httpx2.HTTPError as exc:
        raise Unreachable(type(exc).__name__) from exc


def get_json(url: str, *, headers: Mapping[str, str] | None = None, timeout_seconds: float = 30) -> tuple[int, Any]:
    """GET `url`: its status and, for a 2xx answer, its JSON body (else None); raises `Unreachable`."""
    try:
        response = httpx2.get(url, headers=dict(headers or {}), timeout=timeout_seconds)
        return response.status_code, response.json() if response.is_success else None
    except (httpx2.HTTPError, ValueError) as exc:
        raise Unreachable(f"{type(exc).__name__}: {exc}") from exc
