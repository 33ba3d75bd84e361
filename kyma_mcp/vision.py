"""Images given to `chat`: https and data URLs pass through, local image files become data URLs.

Local paths are read only from the folders `KYMA_IMAGE_DIRS` allows (resolved after symlinks;
stdio default: home and temp; HTTP default: none), only when they are regular files that Pillow
reads as PNG, JPEG, GIF or WebP, under the per-file and per-call size bounds, so a tool argument
can never make the server read (and send away) an arbitrary file.
"""

from __future__ import annotations

import base64
import contextlib
import stat
from pathlib import Path

import anyio.to_thread

from kyma_mcp.errors import (
    bad_data_url_error,
    image_too_large_error,
    images_past_call_bound_error,
    no_file_error,
    not_an_image_error,
    not_regular_file_error,
    outside_image_dirs_error,
    unreadable_file_error,
    unsupported_scheme_error,
)
from kyma_mcp.settings import Settings

MAX_IMAGE_BYTES = 20 * 1024 * 1024
_FORMATS = "PNG, JPEG, GIF or WebP"
_MIME_OF = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}


async def to_image_urls(sources: list[str], settings: Settings) -> list[str]:
    """`to_image_url` for each source, with the local files together under `Bounds.image_bytes_per_call`."""
    if not sources:
        return []  # most calls: the allowed folders are not resolved (filesystem calls) for nothing
    allowed = settings.allowed_image_dirs()
    left = [settings.bounds.image_bytes_per_call]
    return [await to_image_url(source, allowed, left, settings.bounds.image_pixels) for source in sources]


async def to_image_url(
    source: str, allowed: tuple[Path, ...] = (), left: list[int] | None = None, max_pixels: int = 16_777_216
) -> str:
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
            raise bad_data_url_error()
        return source
    if source.startswith(("http://", "ftp://", "file://")):
        raise unsupported_scheme_error(source)
    return await anyio.to_thread.run_sync(_data_url_from_file, source, allowed, left or [MAX_IMAGE_BYTES], max_pixels)


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


def _data_url_from_file(raw_path: str, allowed: tuple[Path, ...], left: list[int], max_pixels: int) -> str:
    try:
        path = Path(raw_path).expanduser()
    except RuntimeError:  # `~user/…` for a user that does not exist, or no home folder at all
        raise no_file_error(raw_path, absolute=False, reason="its home folder is unknown") from None
    with contextlib.suppress(OSError, RuntimeError, ValueError):  # a missing file is reported below
        path = path.resolve(strict=True)
    if not any(path.is_relative_to(folder) for folder in allowed):
        raise outside_image_dirs_error(raw_path, [str(folder) for folder in allowed])
    try:
        info = path.stat()
    except (OSError, ValueError):
        raise no_file_error(raw_path, absolute=path.is_absolute()) from None
    if not stat.S_ISREG(info.st_mode):
        raise not_regular_file_error(raw_path)
    if info.st_size > MAX_IMAGE_BYTES:
        raise image_too_large_error(raw_path, info.st_size, MAX_IMAGE_BYTES)
    if info.st_size > left[0]:
        raise images_past_call_bound_error(raw_path, left[0])
    mime = _pillow_format(path, max_pixels)
    if mime is None:
        raise not_an_image_error(raw_path)
    try:
        with path.open("rb") as file:
            data = file.read(MAX_IMAGE_BYTES + 1)
    except OSError as exc:
        raise unreadable_file_error(raw_path, exc.strerror) from None
    left[0] -= len(data)
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _pillow_format(path: Path, max_pixels: int) -> str | None:
    """The MIME type of a file Pillow decodes as an image of at most `max_pixels`, or None.

    The pixels are decoded (bounded by `max_pixels`): a header alone is easy to fake."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(path) as image:
                kind = image.format
                if image.width * image.height > max_pixels:
                    return None
                image.load()
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            return None
    return _MIME_OF.get(kind or "")
