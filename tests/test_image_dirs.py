"""Local images for chat: only from KYMA_IMAGE_DIRS (resolved after symlinks), only real images
(decoded by Pillow, not judged by 6 bytes), within the per-call size bound; HTTP reads none by default."""

import io
import os
from pathlib import Path

import pytest
from PIL import Image

from kyma_mcp.settings import Settings
from tests.conftest import ConnectFactory
from tests.results import error_text, structured

pytestmark = pytest.mark.anyio
ONE_ERA = pytest.mark.parametrize("era", ["auto"])


def png(path: Path, size: int = 8) -> Path:
    """A noise PNG (it does not compress): about 3 * size² bytes."""
    buffer = io.BytesIO()
    Image.frombytes("RGB", (size, size), os.urandom(size * size * 3)).save(buffer, "PNG")
    path.write_bytes(buffer.getvalue())
    return path


async def chat_with(connect: ConnectFactory, images: list[str], **settings: object) -> str:
    async with connect(**settings) as client:
        result = await client.call_tool("chat", {"prompt": "see", "model": "gemma-4-31b", "images": images})
    return error_text(result) if result.is_error else str(structured(result)["reply"])


@ONE_ERA
async def test_images_outside_the_allowed_folders_are_refused_naming_them(
    connect: ConnectFactory, tmp_path: Path
) -> None:
    allowed, other = tmp_path / "allowed", tmp_path / "private"
    allowed.mkdir()
    other.mkdir()
    inside, outside = png(allowed / "ok.png"), png(other / "passport-scan.png")
    (allowed / "link.png").symlink_to(outside)

    ok = await chat_with(connect, [str(inside)], image_dirs=(allowed,))
    refused = await chat_with(connect, [str(outside)], image_dirs=(allowed,))
    via_link = await chat_with(connect, [str(allowed / "link.png")], image_dirs=(allowed,))

    assert "1 image" in ok
    assert refused.startswith("[path_denied]")
    assert str(allowed.resolve()) in refused
    assert via_link.startswith("[path_denied]")  # resolved after symlinks


@ONE_ERA
async def test_a_text_file_that_starts_like_a_gif_is_not_sent(connect: ConnectFactory, tmp_path: Path) -> None:
    fake = tmp_path / "notes.gif"
    fake.write_bytes(b"GIF89a\x10\x00\x10\x00 but the rest is a private text file\n" * 20)

    refused = await chat_with(connect, [str(fake)], image_dirs=(tmp_path,))

    assert refused.startswith("[path_denied]")
    assert "is not a PNG, JPEG, GIF or WebP image" in refused


@ONE_ERA
async def test_local_images_together_are_bounded_per_call(connect: ConnectFactory, tmp_path: Path) -> None:
    images = [str(png(tmp_path / f"{index}.png", 100)) for index in range(8)]  # ~30 kB each

    refused = await chat_with(connect, images, image_dirs=(tmp_path,), bounds={"image_bytes_per_call": 65_536})

    assert refused.startswith("[invalid_request]")
    assert "KYMA_MAX_IMAGE_BYTES_PER_CALL" in refused


def test_the_default_folders_are_home_and_temp_and_env_lists_replace_them(tmp_path: Path) -> None:
    import tempfile

    assert Settings().allowed_image_dirs() == (Path.home().resolve(), Path(tempfile.gettempdir()).resolve())
    listed = Settings.from_env({"KYMA_IMAGE_DIRS": f"{tmp_path}{os.pathsep}~"})
    assert listed.allowed_image_dirs() == (tmp_path.resolve(), Path.home().resolve())
