"""Every Kyma failure maps to one stable error word with a next step; secrets are scrubbed."""

import ast
from pathlib import Path

import pytest
from mcp import Client

from kyma_mcp import errors
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
    not_an_image_model_error,
    redact,
    shorten_upstream,
    size_text,
    unknown_model_error,
)
from kyma_mcp.kyma.wire import ErrorEnvelope
from kyma_mcp.server import build_server
from kyma_mcp.settings import Settings
from tests.results import text_of


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


def upstream_message(body: bytes) -> str:
    return shorten_upstream(ErrorEnvelope.read(body).message)


def test_upstream_message_reads_the_envelope_and_truncates() -> None:
    assert upstream_message(b'{"error": {"message": "Model not found", "type": "x"}}') == "Model not found"
    assert upstream_message(b'{"error": "plain words"}') == "plain words"
    assert upstream_message(b"<html>bad gateway</html>") == "<html>bad gateway</html>"
    assert len(upstream_message(b"x" * 5000)) == 300
    assert upstream_message(b"") == "no details"


def test_the_error_envelope_is_read_once_with_its_top_up_link() -> None:
    body = b'{"error": {"message": "Insufficient balance", "cta_url": "https://top.up/here"}}'

    assert ErrorEnvelope.read(body) == ErrorEnvelope("Insufficient balance", "https://top.up/here")
    assert ErrorEnvelope.read(b'{"error": {"cta_url": 7}}').cta_url is None
    assert ErrorEnvelope.read(b"[1, 2]").message == "[1, 2]"


def test_redact_removes_the_secret_and_anything_shaped_like_a_key() -> None:
    text = "key ky-canary-123456 and kyma-otherkey99 and sk-abcdefgh and ours=SECRET"

    cleaned = redact(text, ["SECRET"])

    assert "canary" not in cleaned
    assert "otherkey" not in cleaned
    assert "SECRET" not in cleaned
    assert "ky-***" in cleaned


def test_the_word_and_the_detail_are_kept_apart() -> None:
    error = error_for_status(503, "Service unavailable")

    assert error.word == "upstream_unavailable"
    assert not error.detail.startswith("[")
    assert str(error) == f"[upstream_unavailable] {error.detail}"


def test_the_402_text_names_the_top_up_link_once() -> None:
    url = "https://kymaapi.com/billing"

    text = str(error_for_status(402, f"Insufficient balance. Top up at {url}", topup_url=url))

    assert text.count(url) == 1
    assert text.count("Top up") == 1


def test_kymas_full_stop_does_not_collide_with_the_retry_count() -> None:
    text = str(error_for_status(503, "Busy. Retry.", retried=2))

    assert ".;" not in text
    assert "Busy. Retry; retried 2 times." in text


def test_sizes_read_as_people_write_them() -> None:
    assert [size_text(n) for n in (300, 1024, 1536, 50 * 1_048_576)] == ["300 bytes", "1 KB", "1.5 KB", "50 MB"]


def test_one_unknown_model_text_everywhere() -> None:
    texts = [
        str(error_for_status(404, "x", model="qwen-9")),
        str(unknown_model_error("qwen-9", ["qwen-3.6-plus"])),
        str(not_an_image_model_error("qwen-9", kind=None, image_models=[("flux-1.1-ultra", 0.08)])),
    ]

    assert all(text.startswith("[model_not_found] Kyma does not serve model 'qwen-9'.") for text in texts)


def test_only_errors_py_composes_error_sentences() -> None:
    """No module but errors.py builds a KymaError from a sentence of its own, or strips a `[word] ` prefix."""
    words = {name for name, value in vars(errors).items() if isinstance(value, type) and issubclass(value, KymaError)}
    package = Path(errors.__file__).parent
    offenders: list[str] = []
    for path in sorted(package.rglob("*.py")):
        if path.name == "errors.py" or "emulator" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in words:
                offenders.append(f"{path.relative_to(package)}:{node.lineno} {node.func.id}(…)")
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "removeprefix"
                and isinstance(node.args[0], ast.JoinedStr)
            ):
                offenders.append(f"{path.relative_to(package)}:{node.lineno} removeprefix(f…)")
    assert offenders == [], "compose the sentence in a function of kyma_mcp/errors.py and raise what it returns"


@pytest.mark.anyio
async def test_an_unknown_tool_answers_invalid_request_naming_the_tools() -> None:
    async with Client(build_server(Settings())) as client:
        result = await client.call_tool("nope", {})

    assert result.is_error
    assert text_of(result).startswith("[invalid_request] There is no tool 'nope'. Call one of: chat, ")
