"""Local images for chat: only from KYMA_IMAGE_DIRS (resolved after symlinks), only real images
(decoded by Pillow, not judged by 6 bytes), within the per-call size bound; HTTP reads none by default."""

import io
import os
import socket
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from PIL import Image

from kyma_mcp.emulator import EmulatorHandle
from kyma_mcp.http_config import HttpTransport
from kyma_mcp.settings import Settings
from tests.conftest import TEST_KEY, ConnectFactory
from tests.results import error_text, structured
from tests.test_http import TOKEN, TRANSPORTS, Served, mcp_client
from tests.test_stdio import stdio_server

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


# --- the real command: over HTTP no folder unless the operator names one; over stdio home and temp ---


def command_env(emulator: EmulatorHandle, home: Path, temp: Path) -> dict[str, str]:
    """The environment of a real kyma-mcp process: no KYMA_IMAGE_DIRS, this home and temp folder."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "TMPDIR": str(temp),
        "KYMA_API_KEY": TEST_KEY,
        "KYMA_BASE_URL": emulator.base_url,
        "KYMA_STORE": "off",
    }


def folders(tmp_path: Path) -> tuple[Path, Path, Path]:
    home, temp, elsewhere = (tmp_path / name for name in ("home", "temp", "elsewhere"))
    for folder in (home, temp, elsewhere):
        folder.mkdir()
    return home, temp, elsewhere


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.slow
async def test_over_http_a_server_without_image_dirs_reads_no_local_image(
    transport: HttpTransport, tmp_path: Path, emulator: EmulatorHandle
) -> None:
    home, temp, _ = folders(tmp_path)
    pictures = [str(png(home / "passport-scan.png")), str(png(temp / "upload.png"))]
    with socket.create_server(("127.0.0.1", 0)) as probe_socket:
        port = probe_socket.getsockname()[1]
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    command = [sys.executable, "-m", "kyma_mcp", "--transport", transport, "--port", str(port)]
    command += ["--auth-token-file", str(token_file)]
    async with await anyio.open_process(command, env=command_env(emulator, home, temp)) as process:
        try:
            with anyio.fail_after(30):
                assert process.stderr is not None
                stderr = ""
                while "kyma-mcp: serving" not in stderr:  # written once it listens
                    stderr += (await process.stderr.receive()).decode()
                async with mcp_client(Served(transport, f"http://127.0.0.1:{port}")) as client:
                    refused = [
                        await client.call_tool("chat", {"prompt": "see", "model": "gemma-4-31b", "images": [picture]})
                        for picture in pictures
                    ]
        finally:
            process.terminate()
        with anyio.fail_after(10):
            await process.wait()

    for result in refused:
        assert error_text(result).startswith("[path_denied]")
    assert emulator.state.requests["/v1/chat/completions"] == 0, "nothing was sent upstream"


@pytest.mark.slow
async def test_over_stdio_the_default_folders_are_home_and_temp(tmp_path: Path, emulator: EmulatorHandle) -> None:
    home, temp, elsewhere = folders(tmp_path)
    pictures = [png(home / "Desktop.png"), png(temp / "upload.png"), png(elsewhere / "other.png")]
    answers: list[dict[str, Any]] = []
    async with stdio_server(command_env(emulator, home, temp)) as peer:
        with anyio.fail_after(30):
            for request_id, picture in enumerate(pictures, start=2):
                arguments = {"prompt": "see", "model": "gemma-4-31b", "images": [str(picture)]}
                await peer.send_tool_call(request_id, "chat", arguments)
                answers.append((await peer.response(request_id))["result"])

    in_home, in_temp, outside = answers
    assert "1 image" in in_home["content"][0]["text"]  # chat is text first: the reply is the text
    assert "1 image" in in_temp["content"][0]["text"]
    assert outside["isError"]
    assert outside["content"][0]["text"].startswith("[path_denied]")
    assert str(home.resolve()) in outside["content"][0]["text"]
    assert emulator.state.requests["/v1/chat/completions"] == 2
