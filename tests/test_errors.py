"""Every Kyma failure maps to one stable error word with a next step; secrets are scrubbed."""

import pytest

from kyma_mcp.errors import (
    AuthInvalidError,
    InsufficientBalanceError,
    InvalidRequestError,
    KymaError,
    ModelNotFoundError,
    RateLimitedError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
    error_for_status,
    redact,
    upstream_message,
)


@pytest.mark.parametrize(
    ("status", "expected", "word"),
    [
        (401, AuthInvalidError, "auth_invalid"),
        (403, AuthInvalidError, "auth_invalid"),
        (402, InsufficientBalanceError, "insufficient_balance"),
        (404, ModelNotFoundError, "model_not_found"),
        (400, InvalidRequestError, "invalid_request"),
        (422, InvalidRequestError, "invalid_request"),
        (429, RateLimitedError, "rate_limited"),
        (408, UpstreamTimeoutError, "timeout"),
        (500, UpstreamUnavailableError, "upstream_unavailable"),
        (503, UpstreamUnavailableError, "upstream_unavailable"),
    ],
)
def test_status_maps_to_its_word(status: int, expected: type[KymaError], word: str) -> None:
    error = error_for_status(status, "details", model="qwen-3.6-plus", retry_after_seconds=3)

    assert type(error) is expected
    assert str(error).startswith(f"[{word}] ")


def test_texts_tell_the_agent_what_to_do_next() -> None:
    assert "https://kymaapi.com/billing" in str(error_for_status(402, "x"))
    assert "https://top.up/here" in str(error_for_status(402, "x", topup_url="https://top.up/here"))
    assert "list_models" in str(error_for_status(404, "x", model="nope"))
    assert "try again in 4 s" in str(error_for_status(429, "x", retry_after_seconds=4))
    assert "KYMA_API_KEY" in str(error_for_status(401, "x"))


def test_rate_limited_keeps_the_wait_for_callers() -> None:
    error = error_for_status(429, "slow down", retry_after_seconds=2.5)

    assert isinstance(error, RateLimitedError)
    assert error.retry_after_seconds == 2.5


def test_upstream_message_reads_the_envelope_and_truncates() -> None:
    assert upstream_message(b'{"error": {"message": "Model not found", "type": "x"}}') == "Model not found"
    assert upstream_message(b"<html>bad gateway</html>") == "<html>bad gateway</html>"
    assert len(upstream_message(b"x" * 5000)) == 300
    assert upstream_message(b"") == "no details"


def test_redact_removes_the_secret_and_anything_shaped_like_a_key() -> None:
    text = "key ky-canary-123456 and kyma-otherkey99 and sk-abcdefgh and ours=SECRET"

    cleaned = redact(text, ["SECRET"])

    assert "canary" not in cleaned
    assert "otherkey" not in cleaned
    assert "SECRET" not in cleaned
    assert "ky-***" in cleaned
