"""The API key kept out of every channel: tool results and structured content, log lines (the
SDK's and uvicorn's too, filtered at the handler), and saved files.

The forms of a secret that are looked for are `errors.secret_forms`; text is redacted by
`errors.redact`. This module applies them to JSON values, to log records and to file bytes.
"""

from __future__ import annotations

import logging
import zlib
from typing import Any, cast

from kyma_mcp.errors import redact, secret_forms

MASK = "***"


def redact_json(value: Any, secrets: tuple[str, ...]) -> Any:
    """A copy of a JSON value with every secret form removed from its strings and keys."""
    if not secrets:
        return value
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, dict):
        items = cast(dict[Any, Any], value).items()
        return {redact(str(k), secrets): redact_json(v, secrets) for k, v in items}
    if isinstance(value, list | tuple):
        return [redact_json(item, secrets) for item in cast(list[Any], value)]
    return value


def scrub_bytes(data: bytes, secrets: tuple[str, ...]) -> bytes:
    """File bytes with each secret form overwritten by `*` of the same length (a PNG's chunk
    checksums are fixed up), so a key an upstream hid in image metadata is not saved to disk."""
    forms = [form.encode() for form in secret_forms(secrets)]
    if not any(form in data for form in forms):
        return data
    scrubbed = data
    for form in forms:
        scrubbed = scrubbed.replace(form, b"*" * len(form))
    return _fix_png_checksums(scrubbed) if scrubbed.startswith(b"\x89PNG\r\n\x1a\n") else scrubbed


def _fix_png_checksums(data: bytes) -> bytes:
    out = bytearray(data[:8])
    position = 8
    while position + 12 <= len(data):
        length = int.from_bytes(data[position : position + 4], "big")
        end = position + 12 + length
        if end > len(data):
            break
        body = data[position + 4 : end - 4]
        out += data[position : position + 4] + body + zlib.crc32(body).to_bytes(4, "big")
        position = end
    return bytes(out + data[position:])


class RedactingFilter(logging.Filter):
    """Rewrites each record's message (and traceback text) with the secrets removed."""

    def __init__(self, secrets: tuple[str, ...]) -> None:
        super().__init__()
        self._secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        record.msg, record.args = redact(message, self._secrets), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self._secrets)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, self._secrets)
        return True


def install_log_redaction(secrets: tuple[str, ...], logger: logging.Logger | None = None) -> None:
    """Filter every handler of `logger` (the root logger by default): a filter on a logger would
    miss records that other loggers (the SDK's, uvicorn's) propagate to the handlers."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter(secrets))
