"""Images given to `chat`: https and data URLs pass through, local image files become data URLs.

Local paths are read only when they are regular image files under the size cap, so a tool
argument can never make the server read (and send away) an arbitrary file.
"""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import anyio.to_thread

from kyma_mcp.errors import InvalidRequestError, PathDeniedError

MAX_IMAGE_BYTES = 20 * 1024 * 1024
_FORMATS = "PNG, JPEG, GIF or WebP"


async def to_image_url(source: str) -> str:
    """An URL Kyma accepts for `source`: the URL itself, or a data URL built from a local image file.

    Raises:
        InvalidRequestError: a non-https URL, a malformed data URL, a missing or oversized file.
        PathDeniedError: the path is not a regular image file.
    """
    source = source.strip()
    if source.startswith("https://"):
        return source
    if source.startswith("data:"):
        if not source.startswith("data:image/") or ";base64," not in source[:100]:
            raise InvalidRequestError("A data URL image must look like data:image/png;base64,<data>.")
        return source
    if source.startswith(("http://", "ftp://", "file://")):
        raise InvalidRequestError(
            f"Image '{source[:80]}' uses an unsupported scheme; give an https URL, a data URL or a local file path."
        )
    return await anyio.to_thread.run_sync(_data_url_from_file, source)


def image_mime_type(header: bytes) -> str | None:
    """The MIME type of an image from its first bytes, or None when it is not a supported image."""
    if header.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if header.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if header.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if header[:4] == b"RIFF" and header[8:12] == b"WEBP":
        return "image/webp"
    return None


def _data_url_from_file(raw_path: str) -> str:
    shown = raw_path[:200]
    path = Path(raw_path).expanduser()
    try:
        info = path.stat()
    except (OSError, ValueError):
        hint = (
            "" if path.is_absolute() else " Relative paths depend on the host's working folder: use an absolute path."
        )
        raise InvalidRequestError(f"No readable file at '{shown}'.{hint}") from None
    if not stat.S_ISREG(info.st_mode):
        raise PathDeniedError(f"'{shown}' is not a regular file; only {_FORMATS} image files are read.")
    if info.st_size > MAX_IMAGE_BYTES:
        raise InvalidRequestError(
            f"'{shown}' is {info.st_size / 1_048_576:.1f} MB; images are limited to "
            f"{MAX_IMAGE_BYTES // 1_048_576} MB. Downscale it first."
        )
    try:
        with path.open("rb") as file:
            header = file.read(16)
            mime = image_mime_type(header)
            if mime is None:
                raise PathDeniedError(f"'{shown}' is not a {_FORMATS} image; other files are never read.")
            data = header + file.read(MAX_IMAGE_BYTES)
    except OSError as exc:
        raise PathDeniedError(f"'{shown}' could not be read ({exc.strerror or 'error'}).") from None
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
