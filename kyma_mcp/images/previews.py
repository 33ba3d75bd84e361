"""Previews of generated images that every MCP host can show, made with Pillow.

A host caps a tool result (Claude Desktop at 1 MiB, Claude Code at 25,000 tokens) and a model
sees at most about 1568 px on the long edge, so each preview is re-encoded as JPEG, downscaled to
that edge, and shrunk further until all previews of one result fit `PREVIEW_BUDGET_BASE64_CHARS`.
Pillow is imported inside the functions: starting the server never pays for it.
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kyma_mcp.settings import Bounds
from kyma_mcp.vision import image_mime_type

if TYPE_CHECKING:
    from PIL.Image import Image

PREVIEW_MAX_EDGE = 1568
PREVIEW_BUDGET_BASE64_CHARS = 700_000
"""All previews of one result together, as base64 text: well under Claude Desktop's 1 MiB."""
PREVIEW_MIME_TYPE = "image/jpeg"

_QUALITIES = (85, 70, 55)
_MIN_EDGE = 32
DEFAULT_MAX_PIXELS = Bounds().image_pixels
"""Larger images get no preview (`Bounds.image_pixels`): decoding them would take seconds and gigabytes;
they are still saved. The pixel count is read from the header, before anything is decoded."""


@dataclass(frozen=True)
class Preview:
    data: bytes
    width: int
    height: int
    mime_type: str = PREVIEW_MIME_TYPE

    @property
    def base64_chars(self) -> int:
        return base64_length(len(self.data))


@dataclass(frozen=True)
class ImageFacts:
    """What a downloaded image file is: its format's file extension and its pixel size."""

    extension: str
    width: int | None = None
    height: int | None = None


def base64_length(byte_count: int) -> int:
    return 4 * math.ceil(byte_count / 3)


def inspect(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageFacts:
    """The file extension and pixel size of a downloaded image; size is None where Pillow cannot tell (SVG)."""
    mime = image_mime_type(data[:16])
    if mime is not None:
        extension = mime.removeprefix("image/").replace("jpeg", "jpg")
    else:
        extension = "svg" if data[:256].lstrip().startswith((b"<svg", b"<?xml")) else "bin"
    image = _open(data, max_pixels)
    if image is None:
        return ImageFacts(extension)
    return ImageFacts(extension, image.width, image.height)


def make_previews(
    images: Sequence[bytes], budget_chars: int = PREVIEW_BUDGET_BASE64_CHARS, max_pixels: int = DEFAULT_MAX_PIXELS
) -> list[Preview | None]:
    """One preview per image (None where the bytes are not a raster image), together within the budget."""
    return [preview(data, preview_share(len(images), budget_chars), max_pixels) for data in images]


def preview_share(count: int, budget_chars: int = PREVIEW_BUDGET_BASE64_CHARS) -> int:
    """The most bytes one of `count` previews may take: the largest payload whose base64 fits its share."""
    return 3 * ((budget_chars // max(1, count)) // 4)


def preview(data: bytes, max_bytes: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> Preview | None:
    """A JPEG preview of at most `max_bytes`; None for a non-raster image or one over `max_pixels`.

    Blocking, and bounded by `max_pixels`: run it in a thread.
    """
    from PIL import Image as PILImage

    image = _open(data, max_pixels)
    if image is None or image.width * image.height > max_pixels:
        return None
    try:
        image.load()
    except (OSError, ValueError):
        return None
    image = _flatten(image)
    edge = PREVIEW_MAX_EDGE
    while True:
        image.thumbnail((edge, edge), PILImage.Resampling.LANCZOS, reducing_gap=3.0)
        encoded = b""
        for quality in _QUALITIES:
            encoded = _jpeg(image, quality)
            if len(encoded) <= max_bytes:
                break
        if len(encoded) <= max_bytes or max(image.size) <= _MIN_EDGE:
            return Preview(encoded, image.width, image.height)
        # JPEG size grows about with the pixel count: aim just under the budget, and at least 10 % smaller.
        edge = max(_MIN_EDGE, int(max(image.size) * min(0.9, 0.95 * math.sqrt(max_bytes / len(encoded)))))


def _open(data: bytes, max_pixels: int) -> Image | None:
    """The image, opened lazily (pixels not decoded yet), or None when it is not a raster image
    or its header claims more than twice `max_pixels` (Pillow's decompression-bomb error)."""
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    PILImage.MAX_IMAGE_PIXELS = max_pixels  # set deliberately, not left at Pillow's default of ~179 MP
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)  # the size is checked before decoding
        try:
            return PILImage.open(io.BytesIO(data))
        except (UnidentifiedImageError, OSError, ValueError, PILImage.DecompressionBombError):
            return None


def _flatten(image: Image) -> Image:
    """An RGB (or greyscale) copy JPEG can store; transparency becomes white."""
    from PIL import Image as PILImage

    if image.mode in ("RGB", "L"):
        return image
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = PILImage.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def _jpeg(image: Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality, optimize=True)
    return buffer.getvalue()
