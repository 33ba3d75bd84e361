"""Bounds on everything an upstream can send: stream lines and bytes, reply length, JSON bodies,
echoed fields, image outputs, download bytes and decoded pixels. Each is a `KYMA_MAX_*` setting.

The upstream here is a scripted fake Kyma behind httpx's mock transport, so a test can send what
no real gateway (nor our emulator) would, and count how much of it kyma-mcp actually read.
"""

import io
import json
import zlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from PIL import Image

from kyma_mcp.server import build_server
from kyma_mcp.settings import Bounds, ConfigError, Settings
from tests.conftest import FAST_TIMING, TEST_KEY
from tests.results import error_text, structured, text_of
from tests.test_images import names_in

pytestmark = pytest.mark.anyio

Handler = Callable[[httpx2.Request], httpx2.Response]


class Counted:
    """An endless or long body, counting the bytes kyma-mcp pulled from it."""

    def __init__(self, first: bytes, repeat: bytes, limit: int = 2**40) -> None:
        self._first, self._repeat, self._limit = first, repeat, limit
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self._first
        self.sent += len(self._first)
        while self.sent < self._limit:
            self.sent += len(self._repeat)
            yield self._repeat


def chunk(content: str = "", **fields: Any) -> bytes:
    body = {"choices": [{"delta": {"content": content}}]} | fields
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def fake_kyma(routes: dict[str, Handler]) -> httpx2.MockTransport:
    def handle(request: httpx2.Request) -> httpx2.Response:
        path = request.url.path.removeprefix("/v1/")
        if path == "auth/limits":
            return httpx2.Response(200, json={"tier": 4})
        for prefix, handler in routes.items():
            if path.startswith(prefix) or str(request.url).startswith(prefix):
                return handler(request)
        return httpx2.Response(404, json={"error": {"message": "no route"}})

    return httpx2.MockTransport(handle)


def client_for(routes: dict[str, Handler], **settings: Any) -> Client:
    defaults: dict[str, Any] = {
        "api_key": TEST_KEY,
        "base_url": "https://kyma.test/v1",
        "timing": FAST_TIMING,
        "result_facts": True,
    }
    config = Settings.model_validate(defaults | settings)
    return Client(build_server(config, transport=fake_kyma(routes)))


def stream(body: Counted | bytes, content_type: str = "text/event-stream") -> Handler:
    return lambda _: httpx2.Response(200, content=body, headers={"content-type": content_type})


async def test_an_unterminated_sse_line_ends_the_stream_at_the_line_bound() -> None:
    body = Counted(b"data: ", b"x" * 65_536)
    async with client_for({"chat/completions": stream(body)}) as client:
        result = await client.call_tool("chat", {"prompt": "hi"})

    assert error_text(result).startswith("[upstream_unavailable] Kyma's stream sent a line longer than 1,048,576")
    assert "KYMA_MAX_SSE_LINE_BYTES" in error_text(result)
    assert body.sent < 2 * Bounds().sse_line_bytes


async def test_a_reply_that_never_ends_is_cut_at_the_reply_bound_and_reading_stops() -> None:
    body = Counted(chunk("start "), chunk("word " * 50))
    async with client_for({"chat/completions": stream(body)}, bounds={"reply_chars": 5_000}) as client:
        result = await client.call_tool("chat", {"prompt": "hi"})

    data = structured(result)
    assert len(data["reply"]) == 5_000
    assert "cut at 5,000 characters (KYMA_MAX_REPLY_CHARS)" in data["notes"][-1]
    assert body.sent < 20_000  # stopped just past the bound, not at the deadline


async def test_a_stream_of_empty_chunks_stops_at_the_stream_byte_bound() -> None:
    body = Counted(chunk("only this"), chunk(""))
    async with client_for({"chat/completions": stream(body)}, bounds={"stream_bytes": 100_000}) as client:
        result = await client.call_tool("chat", {"prompt": "hi"})

    data = structured(result)
    assert data["reply"] == "only this"
    assert "KYMA_MAX_STREAM_BYTES" in data["notes"][-1]
    assert body.sent < 200_000


async def test_megabyte_model_and_finish_reason_fields_are_cut_before_they_reach_the_result() -> None:
    huge = "m" * 5_000_000
    events = (
        chunk("hello", model=huge)
        + b"data: "
        + json.dumps({"model": huge, "choices": [{"delta": {}, "finish_reason": huge}]}).encode()
        + b"\n\ndata: [DONE]\n\n"
    )
    routes: dict[str, Handler] = {
        "chat/completions": lambda _: httpx2.Response(200, content=events, headers={"x-kyma-model": huge})
    }
    async with client_for(routes, bounds={"sse_line_bytes": 16 * 1_048_576}) as client:
        result = await client.call_tool("chat", {"prompt": "hi"})

    data = structured(result)
    assert data["reply"] == "hello"
    assert len(data["model_served"]) <= Bounds().field_chars
    assert len(data["finish_reason"]) <= Bounds().field_chars
    assert len(json.dumps(data)) < 5_000


async def test_a_catalog_over_its_bound_falls_back_to_the_bundled_snapshot() -> None:
    entry = b'{"id": "m", "name": "m", "output_modalities": ["text"]},'
    body = Counted(b'{"data": [', entry * 1000)
    routes: dict[str, Handler] = {"models": lambda _: httpx2.Response(200, content=body)}
    async with client_for(routes, bounds={"catalog_bytes": 1_048_576}) as client:
        result = await client.call_tool("list_models", {})

    assert structured(result)["source"] == "bundled"
    assert body.sent < 2 * 1_048_576


async def test_only_the_first_bytes_of_an_error_body_are_read() -> None:
    body = Counted(b'{"error": {"message": "overloaded ', b"a" * 65_536)
    routes: dict[str, Handler] = {"chat/completions": lambda _: httpx2.Response(503, content=body)}
    async with client_for(routes, max_retries=0) as client:
        result = await client.call_tool("chat", {"prompt": "hi"})

    assert error_text(result).startswith("[upstream_unavailable] Kyma answered 503: ")
    assert len(error_text(result)) < 1_000
    assert body.sent <= Bounds().error_bytes + 65_536


def test_every_bound_has_a_kyma_max_variable() -> None:
    settings = Settings.from_env({"KYMA_MAX_REPLY_CHARS": "12345", "KYMA_MAX_DOWNLOAD_BYTES": "1048576"})

    assert settings.bounds.reply_chars == 12_345
    assert settings.bounds.download_bytes == 1_048_576
    with pytest.raises(ConfigError, match=r"KYMA_MAX_IMAGE_PIXELS='12' is invalid"):
        Settings.from_env({"KYMA_MAX_IMAGE_PIXELS": "12"})


def png(width: int, height: int) -> bytes:
    """A valid greyscale PNG of any size, built without decoding it (all-black rows compress to nothing)."""

    def part(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    packer = zlib.compressobj(9)
    row = bytes(width + 1)
    pixels = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    return b"\x89PNG\r\n\x1a\n" + part(b"IHDR", header) + part(b"IDAT", pixels) + part(b"IEND", b"")


def image_job_routes(urls: list[str], files: dict[str, bytes]) -> dict[str, Handler]:
    job = {"id": "6745a3c2e4b0f1a2b3c4d5e6", "status": "succeeded", "model": "flux-1.1-ultra"}
    job |= {"output": {"urls": urls}, "charged_amount": 0.081}
    downloads: dict[str, Handler] = {
        url: (lambda _, data=data: httpx2.Response(200, content=data, headers={"content-type": "image/png"}))
        for url, data in files.items()
    }
    return {"images/generations": lambda _: httpx2.Response(202, json=job), **downloads}


async def test_an_n1_job_listing_twenty_outputs_keeps_one(tmp_path: Path) -> None:
    small = io.BytesIO()
    Image.new("RGB", (64, 64), "red").save(small, "PNG")
    urls = [f"https://cdn.test/{index}.png" for index in range(20)]
    routes = image_job_routes(urls, {url: small.getvalue() for url in urls})
    fetched: list[str] = []
    for url in urls:
        handler = routes[url]
        routes[url] = lambda request, handler=handler: (fetched.append(str(request.url)), handler(request))[1]
    async with client_for(routes, output_dir=tmp_path) as client:
        result = await client.call_tool("generate_image", {"prompt": "a fox", "n": 1})

    assert len(structured(result)["images"]) == 1
    assert fetched == urls[:1]
    assert "Kyma listed 20 outputs for 1 image(s) asked; only the first 1 kept." in text_of(result)
    assert len(await names_in(tmp_path)) == 1


async def test_an_image_over_the_pixel_bound_is_saved_without_decoding_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PIL import Image as PILImage

    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", PILImage.MAX_IMAGE_PIXELS)
    bomb = png(4000, 4000)  # 16 MP in 20 kB
    routes = image_job_routes(["https://cdn.test/bomb.png"], {"https://cdn.test/bomb.png": bomb})
    async with client_for(routes, output_dir=tmp_path, bounds={"image_pixels": 1_000_000}) as client:
        result = await client.call_tool("generate_image", {"prompt": "a fox"})

    assert len(structured(result)["images"]) == 1
    assert not [part for part in result.content if part.type == "image"]
    assert "1 preview(s) left out" in text_of(result)
    assert PILImage.MAX_IMAGE_PIXELS == 1_000_000  # set deliberately from the bound
    assert await anyio.Path(structured(result)["images"][0]["file"]).read_bytes() == bomb


async def test_a_download_that_is_not_an_image_is_refused_naming_the_job(tmp_path: Path) -> None:
    routes = image_job_routes(["https://cdn.test/a.png"], {"https://cdn.test/a.png": b"GIF89a but really text"})
    routes["https://cdn.test/a.png"] = lambda _: httpx2.Response(200, content=b"just text, no image")
    async with client_for(routes, output_dir=tmp_path) as client:
        result = await client.call_tool("generate_image", {"prompt": "a fox"})

    text = error_text(result)
    assert "did not send a PNG, JPEG, GIF or WebP image" in text
    assert 'get_image_job with job_id="6745a3c2e4b0f1a2b3c4d5e6"' in text
    assert "new one" not in text
    assert not await names_in(tmp_path)


@pytest.mark.parametrize(
    "poll",
    [
        pytest.param(lambda: httpx2.Response(200, content=b"<html>busy</html>"), id="not-json"),
        pytest.param(lambda: httpx2.Response(200, json={"status": 7, "output": "?"}), id="no-id-or-status"),
        pytest.param(lambda: httpx2.Response(200, json=[1, 2]), id="not-an-object"),
    ],
)
async def test_a_malformed_poll_answer_after_the_submit_names_the_job(
    tmp_path: Path, poll: Callable[[], httpx2.Response]
) -> None:
    queued = {"id": "6745a3c2e4b0f1a2b3c4d5e6", "status": "queued", "model": "flux-1.1-ultra"}
    routes: dict[str, Handler] = {
        "images/generations": lambda _: httpx2.Response(202, json=queued),
        "jobs/": lambda _: poll(),
    }
    async with client_for(routes, output_dir=tmp_path, max_retries=0, tool_timeout_seconds=0.8) as client:
        result = await client.call_tool("generate_image", {"prompt": "a fox"})

    text = text_of(result)  # polls are retried to the deadline, then the job is handed over, not lost
    assert "Kyma could not be polled at the end ([upstream_unavailable] Kyma's " in text
    assert 'call get_image_job with job_id="6745a3c2e4b0f1a2b3c4d5e6"' in text
    assert "new one" not in text
    assert structured(result)["job_id"] == "6745a3c2e4b0f1a2b3c4d5e6"
