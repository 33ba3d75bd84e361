"""The errors kyma-mcp reports, and the one place their text is composed.

Every failure a tool can meet is a `KymaError` whose text starts with a stable word in
brackets, says what happened, then what the agent should do next. The server turns them
into MCP `ToolError`s; nothing else reaches the model.

    KymaError
      AuthMissingError          [auth_missing]
      AuthInvalidError          [auth_invalid]          401/403
      InsufficientBalanceError  [insufficient_balance]  402
      ModelNotFoundError        [model_not_found]       404 on a model
      InvalidRequestError       [invalid_request]       400/404/409/413/422, bad arguments
      RateLimitedError          [rate_limited]          429
      UpstreamUnavailableError  [upstream_unavailable]  5xx, connection failures
      UpstreamTimeoutError      [timeout]
      JobFailedError            [job_failed]
      PathDeniedError           [path_denied]
      BudgetExceededError       [budget_exceeded]       a cap, a budget or the user said no; nothing was spent
      StoreUnavailableError     [store_unavailable]     the store (threads, ledger, job journal) cannot be used
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import ClassVar, cast

TOPUP_URL = "https://kymaapi.com/billing"
_UPSTREAM_TEXT_LIMIT = 300


class KymaError(Exception):
    """A failure with a message written for the model: `[word] what happened. What to do.`"""

    word: ClassVar[str] = "upstream_unavailable"

    def __init__(self, message: str) -> None:
        super().__init__(f"[{self.word}] {message}")


class AuthMissingError(KymaError):
    word = "auth_missing"


class AuthInvalidError(KymaError):
    word = "auth_invalid"


class InsufficientBalanceError(KymaError):
    word = "insufficient_balance"


class ModelNotFoundError(KymaError):
    word = "model_not_found"


class InvalidRequestError(KymaError):
    word = "invalid_request"


class RateLimitedError(KymaError):
    word = "rate_limited"

    def __init__(self, message: str, retry_after_seconds: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class UpstreamUnavailableError(KymaError):
    word = "upstream_unavailable"


class UpstreamTimeoutError(KymaError):
    word = "timeout"


class JobFailedError(KymaError):
    word = "job_failed"


class PathDeniedError(KymaError):
    word = "path_denied"


class BudgetExceededError(KymaError):
    word = "budget_exceeded"


class StoreUnavailableError(KymaError):
    word = "store_unavailable"


def store_error(where: str, problem: str, *, corrupt: bool = False) -> StoreUnavailableError:
    """The store at `where` cannot be used; stateless calls keep working, so say so."""
    fix = (
        "Move that file aside (kyma-mcp then starts a new one) or set KYMA_STORE=off"
        if corrupt
        else "Fix that (free disk space, close the other program, check KYMA_STORE_URL) or set KYMA_STORE=off"
    )
    return StoreUnavailableError(
        f"kyma-mcp's store ({where}) cannot be used: {problem}. Calls without conversation_id still work. "
        f"{fix}, then retry."
    )


def unknown_conversation_error(conversation_id: str, retention_days: int) -> InvalidRequestError:
    return InvalidRequestError(
        f"No conversation '{conversation_id}' here: it never existed in this store, was deleted, or went unused for "
        f"over {retention_days} days (KYMA_CONVERSATION_DAYS). Read kyma://conversations for the current ids, or "
        "call chat without conversation_id to start a new one."
    )


def missing_key_error(endpoint: str) -> AuthMissingError:
    return AuthMissingError(
        f"Kyma's {endpoint} needs an API key and KYMA_API_KEY is not set. Set it (a ky-… key from "
        "https://kymaapi.com) in this MCP server's environment and restart the server; list_models and "
        "recommend_model work without one."
    )


def redact(text: str, secrets: Iterable[str]) -> str:
    """Remove every secret in each of its forms (`secret_forms`), and any bearer token, from text
    that may reach the model or a log."""
    for form in secret_forms(tuple(secrets)):
        text = text.replace(form, "***")
    return re.sub(r"\b(ky|kyma|km|sk)-[A-Za-z0-9_\-]{6,}", r"\1-***", text)


@functools.lru_cache(maxsize=8)
def secret_forms(secrets: tuple[str, ...]) -> tuple[str, ...]:
    """The ways a secret shows up in text, longest first: verbatim, without its `ky-` prefix,
    URL-encoded, and base64-encoded at any offset (as in `Basic base64(user:key)`).

    For base64 the stable middle of the encoding is used: the 4-character groups that hold
    only the secret's bytes, whatever comes before or after it.
    """
    import base64
    from urllib.parse import quote, quote_plus

    forms: set[str] = set()
    for secret in secrets:
        if secret:
            forms.add(secret)
        if len(secret) < 8:
            continue  # a short secret's other forms would match ordinary text
        bare = secret.split("-", 1)[1] if secret.startswith(("ky-", "sk-", "km-")) else secret
        for variant in {secret, bare}:
            if len(variant) >= 8:
                forms |= {variant, quote(variant, safe=""), quote_plus(variant)}
        for offset in range(3):
            encoded = base64.b64encode(b"\0" * offset + secret.encode()).decode("ascii")
            core = encoded[4 if offset else 0 : -4]
            if len(core) >= 8:
                forms.add(core)
    return tuple(sorted(forms, key=len, reverse=True))


def upstream_message(body: bytes) -> str:
    """The human part of a Kyma error body, shortened; falls back to the raw text."""
    text = body.decode("utf-8", "replace").strip()
    try:
        payload = json.loads(text)
    except (ValueError, RecursionError):
        payload = None
    if isinstance(payload, Mapping):
        error = payload.get("error")  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
        if isinstance(error, Mapping) and isinstance(error.get("message"), str):  # pyright: ignore[reportUnknownMemberType]
            text = str(error["message"])  # pyright: ignore[reportUnknownArgumentType]
        elif isinstance(error, str):
            text = error
    text = " ".join(text.split())
    if len(text) > _UPSTREAM_TEXT_LIMIT:
        text = text[: _UPSTREAM_TEXT_LIMIT - 1] + "…"
    return text or "no details"


def error_for_status(
    status: int,
    detail: str,
    *,
    model: str | None = None,
    retry_after_seconds: float | None = None,
    topup_url: str | None = None,
    retried: int = 0,
    rate_limits: str | None = None,
) -> KymaError:
    """Map one Kyma HTTP error answer (after `retried` retries) to the error the agent sees."""
    said = f"Kyma answered {status}: {detail}"
    tries = f"; retried {retried} time{'s' if retried != 1 else ''}" if retried else ""
    if status in (401, 403):
        return AuthInvalidError(
            f"{said}. The API key in KYMA_API_KEY was rejected: check it is a current ky-… key and restart the server."
        )
    if status == 402:
        return InsufficientBalanceError(
            f"{said}. Top up at {topup_url or TOPUP_URL}, or use a cheaper model (recommend_model with "
            "priority=cheapest), then retry."
        )
    if status == 404 and model is not None:
        return ModelNotFoundError(f"Kyma does not serve model '{model}'. Call list_models to see the valid ids.")
    if status == 429:
        wait = (
            f"try again in {math.ceil(retry_after_seconds)} s"
            if retry_after_seconds and math.isfinite(retry_after_seconds)
            else "try again in a few seconds"
        )
        limits = f"Kyma allows {rate_limits}" if rate_limits else "Kyma's rate limit was reached"
        return RateLimitedError(f"{limits} ({detail}){tries}; {wait}.", retry_after_seconds)
    if status >= 500 or status == 409:
        return UpstreamUnavailableError(
            f"{said}{tries}. Kyma could not serve this request right now; retry in a few seconds or pick another model."
        )
    if status == 408:
        return UpstreamTimeoutError(f"{said}{tries}. Retry, or ask for fewer tokens.")
    return InvalidRequestError(f"{said}. Fix the arguments and call again.")


_EVENT_STATUSES = {
    "authentication_error": 401,
    "invalid_api_key": 401,
    "insufficient_balance": 402,
    "insufficient_quota": 402,
    "invalid_request_error": 400,
    "not_found_error": 404,
    "model_not_found": 404,
    "rate_limit_error": 429,
    "rate_limit_exceeded": 429,
    "timeout": 408,
    "overloaded_error": 503,
}


def stream_error(error: object, secrets: Iterable[str]) -> KymaError:
    """A `data: {"error": …}` event mid-stream: the gateway's own error, with the word its status or type names.

    A numeric `status`/`code` is read as an HTTP status; else `type`/`code` names one; else it is a 502.
    """
    payload = cast(Mapping[str, object], error) if isinstance(error, Mapping) else {"message": error}
    status = next((v for key in ("status", "code") if isinstance(v := payload.get(key), int) and 400 <= v <= 599), None)
    named = next((str(payload[key]) for key in ("type", "code") if isinstance(payload.get(key), str)), "")
    message = payload.get("message")
    detail = " ".join(str(message if message is not None else named or "no details").split())[:_UPSTREAM_TEXT_LIMIT]
    return error_for_status(status or _EVENT_STATUSES.get(named, 502), redact(f"{detail} (sent mid-stream)", secrets))


def deadline_error(seconds: float) -> UpstreamTimeoutError:
    """The call's own deadline passed before Kyma answered."""
    return UpstreamTimeoutError(
        f"Kyma did not answer within the {seconds:g} s deadline (KYMA_TOOL_TIMEOUT_SECONDS). "
        "Retry, ask for fewer tokens, or use a faster model such as llama-3.3-70b."
    )


def unknown_model_error(model_id: str, known: Iterable[str]) -> ModelNotFoundError:
    """Kyma answered 404 for `model_id`; suggest the closest of the `known` ids."""
    import difflib

    close = difflib.get_close_matches(model_id, list(known), n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return ModelNotFoundError(f"Kyma does not serve model '{model_id}'.{hint} Call list_models to see the valid ids.")
