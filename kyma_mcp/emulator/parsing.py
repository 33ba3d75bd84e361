"""Reading what a caller sent: the bearer key, the JSON body and its typed fields.

Every helper fails with the gateway's 400/401 envelope, so handlers read as a list of rules.
"""

from __future__ import annotations

import json
import math
from typing import cast

from starlette.requests import Request

from kyma_mcp.emulator.errors import invalid_api_key, invalid_request

KEY_PREFIXES = ("ky-", "kyma-")
"""REST keys; MCP-only `km-` keys are refused on REST on purpose (Kyma's MCP plugin says so)."""


def bearer_key(request: Request) -> str | None:
    """The key in `Authorization: Bearer <key>`, whatever it is, or None."""
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return key.strip() or None


def authenticate(request: Request) -> str:
    """The caller's REST key.

    Raises:
        GatewayError: 401 when the key is missing or is not a `ky-`/`kyma-` key.
    """
    key = bearer_key(request)
    if key is None or not key.startswith(KEY_PREFIXES) or key in KEY_PREFIXES:
        raise invalid_api_key()
    return key


async def json_object(request: Request) -> dict[str, object]:
    """The request body as a JSON object."""
    try:
        body: object = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        raise invalid_request("Request body must be valid JSON.") from None
    if not isinstance(body, dict):
        raise invalid_request("Request body must be a JSON object.")
    return cast(dict[str, object], body)


def required_string(body: dict[str, object], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise invalid_request(f"'{name}' is required and must be a non-empty string.")
    return value


def optional_string(body: dict[str, object], name: str, *, max_length: int | None = None) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid_request(f"'{name}' must be a string.")
    if max_length is not None and len(value) > max_length:
        raise invalid_request(f"'{name}' must be at most {max_length} characters.")
    return value


def optional_number(body: dict[str, object], name: str, low: float, high: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not (low <= value <= high):
        raise invalid_request(f"'{name}' must be a number from {low:g} to {high:g}.")
    return float(value)


def optional_integer(body: dict[str, object], name: str, low: int, high: float = math.inf) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not (low <= value <= high):
        bounds = f"an integer >= {low}" if high == math.inf else f"an integer from {low} to {high:g}"
        raise invalid_request(f"'{name}' must be {bounds}.")
    return value


def optional_bool(body: dict[str, object], name: str) -> bool:
    value = body.get(name, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise invalid_request(f"'{name}' must be true or false.")
    return value


def optional_object(body: dict[str, object], name: str) -> dict[str, object]:
    value = body.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid_request(f"'{name}' must be an object.")
    return cast(dict[str, object], value)
