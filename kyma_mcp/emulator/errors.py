"""The gateway's error envelope, and one constructor per kind of error the emulator answers.

Shape (Kyma's error-handling guide): `{"error": {"message", "type", "code"}}`, plus `cta_url` on 402.
Documented: the 401 and 404 messages, the 429 body, `insufficient_balance` with `cta_url`,
`image_url_required`, `upstream_error`. INFERRED (the emulator's own words): the `type` of
5xx (`api_error`), 408 (`timeout_error`/`request_timeout`) and 409 (`conflict`), the generic
validation code `invalid_request`, and the codes `invalid_model`, `vision_not_supported`,
`job_not_found` and `not_found`.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

BILLING_URL = "https://kymaapi.com/billing"


class GatewayError(Exception):
    """An error answer: raised anywhere in a handler, rendered by the app as the envelope."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str,
        code: str,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.headers = headers or {}
        self.extra = extra or {}

    def response(self, *, key_to_echo: str | None = None) -> JSONResponse:
        """The JSON answer; `key_to_echo` deliberately leaks a key, to test that clients redact it."""
        message = f"{self.message} (key: {key_to_echo})" if key_to_echo else self.message
        body = {"error": {"message": message, "type": self.type, "code": self.code, **self.extra}}
        return JSONResponse(body, status_code=self.status, headers=self.headers)


def invalid_request(message: str, code: str = "invalid_request") -> GatewayError:
    return GatewayError(400, message, type="invalid_request_error", code=code)


def invalid_api_key() -> GatewayError:
    return GatewayError(
        401, "Invalid API key. Check your key starts with ky-", type="authentication_error", code="invalid_api_key"
    )


def insufficient_balance() -> GatewayError:
    return GatewayError(
        402,
        f"Insufficient balance. Top up at {BILLING_URL}",
        type="insufficient_balance",
        code="insufficient_balance",
        extra={"cta_url": BILLING_URL},
    )


def not_found(message: str, code: str = "not_found") -> GatewayError:
    return GatewayError(404, message, type="invalid_request_error", code=code)


def model_not_found(requested: str) -> GatewayError:
    return not_found(f"Model '{requested}' not found. Check model ID with GET /v1/models", "model_not_found")


def rate_limited(message: str, *, retry_after_seconds: float, retry_after_ms: int | None) -> GatewayError:
    headers = {"Retry-After": f"{retry_after_seconds:g}"}
    if retry_after_ms is not None:
        headers["retry-after-ms"] = str(retry_after_ms)
    return GatewayError(429, message, type="rate_limit", code="rate_limited", headers=headers)


def rate_limit_message(limit: str) -> str:
    """The documented 429 sentence, e.g. for `limit` = "30 requests/minute"."""
    return f"Rate limit exceeded ({limit}). Try again in a few seconds."


def injected_failure(status: int, *, rpm: int, retry_after_seconds: float, retry_after_ms: int | None) -> GatewayError:
    """The error a `fail_next` status stands for."""
    if status == 429:
        message = rate_limit_message(f"{rpm} requests/minute")
        return rate_limited(message, retry_after_seconds=retry_after_seconds, retry_after_ms=retry_after_ms)
    if status == 408:
        return GatewayError(408, "Request timed out. Retry.", type="timeout_error", code="request_timeout")
    if status == 409:
        return GatewayError(409, "Conflicting request. Retry.", type="invalid_request_error", code="conflict")
    return GatewayError(
        status,
        f"All upstream providers failed ({status}). Retry or try a different model.",
        type="api_error",
        code="upstream_error",
    )
