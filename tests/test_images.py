"""`generate_image` and `get_image_job` end to end: MCP client (both eras, and stdio) → kyma-mcp → emulator.

Also the pieces a host depends on: previews within the size bounds, files only inside the
output folder, and the API key never sent to the image download host.
"""

import base64
import io
import json
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.types import CallToolResult, ImageContent
from PIL import Image

from kyma_mcp.emulator import EmulatorHandle
from kyma_mcp.errors import UpstreamUnavailableError
from kyma_mcp.images.files import file_stem, output_folder
from kyma_mcp.images.previews import PREVIEW_BUDGET_BASE64_CHARS, PREVIEW_MAX_EDGE, make_previews
from kyma_mcp.kyma.client import ByteBudget, KymaClient
from kyma_mcp.server import build_server
from kyma_mcp.settings import Settings
from tests.conftest import BOTH_ERAS, TEST_KEY, ConnectFactory, emulator_settings
from tests.results import error_text, structured, text_of

pytestmark = pytest.mark.anyio

FLUX_PRICE = 0.081
DEFAULT_PRICE = 0.054
"""recraft-v4, the default image model (Kyma's documented default)."""


@pytest.fixture(autouse=True)
def private_user_data(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A test that sets no KYMA_OUTPUT_DIR must not touch the real user data folder."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "user-data"))


@pytest.fixture
def emulator(emulator: EmulatorHandle) -> EmulatorHandle:
    """The shared emulator with quick jobs (100 ms); tests that watch the lifecycle slow them down."""
    emulator.switches.image_delay_seconds = 0.1
    return emulator


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """The output folder (not created yet: the server creates it on demand)."""
    return tmp_path.resolve() / "out"


def previews_of(result: CallToolResult) -> list[ImageContent]:
    return [block for block in result.content if isinstance(block, ImageContent)]


def decoded(preview: ImageContent) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(preview.data)))


async def names_in(folder: Path) -> list[str]:
    if not await anyio.Path(folder).exists():
        return []
    return [path.name async for path in anyio.Path(folder).iterdir()]


def noise_image(width: int, height: int) -> bytes:
    """Random pixels, the worst case for a compressed preview (as BMP: PNG-encoding noise takes seconds)."""
    buffer = io.BytesIO()
    Image.frombytes("RGB", (width, height), os.urandom(width * height * 3)).save(buffer, "BMP")
    return buffer.getvalue()


async def test_generate_image_returns_previews_files_urls_and_cost(
    connect: ConnectFactory, emulator: EmulatorHandle, out: Path
) -> None:
    async with connect(output_dir=out) as client:
        result = await client.call_tool("generate_image", {"prompt": "A red fox in the snow", "n": 2, "size": "16:9"})

    data = structured(result)
    assert data["status"] == "succeeded"
    assert data["model"] == "recraft-v4"
    assert data["estimated_cost_usd"] == data["charged_usd"] == pytest.approx(2 * DEFAULT_PRICE)
    assert emulator.state.total_charged == pytest.approx(2 * DEFAULT_PRICE)
    assert len(data["images"]) == 2
    for image in data["images"]:
        path = Path(image["file"])
        assert path.parent == out
        with Image.open(path) as saved:
            assert saved.size == (image["width"], image["height"]) == (1024, 576)
        assert image["url"].startswith(emulator.root_url)
    text = text_of(result)
    for image in data["images"]:
        assert image["file"] in text
        assert image["url"] in text
    assert "recraft-v4" in text
    assert "$0.108" in text
    previews = previews_of(result)
    assert len(previews) == 2
    assert all(p.mime_type == "image/jpeg" for p in previews)
    assert all(decoded(p).format == "JPEG" for p in previews)
    assert all(max(decoded(p).size) <= PREVIEW_MAX_EDGE for p in previews)
    assert sum(len(p.data) for p in previews) < PREVIEW_BUDGET_BASE64_CHARS
    assert len(json.dumps(data)) < 2000, "no base64 in the structured content"


@BOTH_ERAS
async def test_progress_is_reported_for_each_status_in_increasing_order(
    connect: ConnectFactory, emulator: EmulatorHandle, out: Path
) -> None:
    emulator.switches.image_delay_seconds = 0.3  # pending for 0.1 s, processing until 0.3 s
    seen: list[tuple[float, str]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, message or ""))

    async with connect(output_dir=out) as client:
        result = await client.call_tool("generate_image", {"prompt": "a lighthouse"}, progress_callback=on_progress)

    assert structured(result)["status"] == "succeeded"
    values = [value for value, _ in seen]
    assert values == sorted(set(values)), "progress must strictly increase"
    messages = " | ".join(message for _, message in seen)
    assert messages.index(": pending") < messages.index(": processing") < messages.index(": succeeded")
    assert "downloading 1 image(s)" in messages


async def test_a_slow_job_returns_running_and_get_image_job_delivers_it_later(
    emulator: EmulatorHandle, out: Path
) -> None:
    emulator.switches.image_delay_seconds = 1.8
    emulator.state.clock.freeze()  # the job runs only as the test moves the emulator's clock
    impatient = build_server(emulator_settings(emulator, output_dir=out, tool_timeout_seconds=0.8))
    async with Client(impatient) as client:
        first = await client.call_tool("generate_image", {"prompt": "a slow sunrise"})
        again = await client.call_tool("get_image_job", {"job_id": structured(first)["job_id"], "wait_seconds": 0})
    emulator.state.clock.advance(1.8)

    running = structured(first)
    assert running["status"] == "running"
    assert running["images"] == []
    assert previews_of(first) == []
    assert running["estimated_cost_usd"] == pytest.approx(DEFAULT_PRICE)
    assert running["charged_usd"] is None
    assert f'get_image_job with job_id="{running["job_id"]}"' in text_of(first)
    assert structured(again)["status"] == "running"

    # A new server (as after a restart, or another session) resumes the job by its id alone.
    patient = build_server(emulator_settings(emulator, output_dir=out, tool_timeout_seconds=10))
    async with Client(patient) as client:
        later = await client.call_tool("get_image_job", {"job_id": running["job_id"]})

    done = structured(later)
    assert done["status"] == "succeeded"
    assert done["job_id"] == running["job_id"]
    assert done["charged_usd"] == pytest.approx(DEFAULT_PRICE)
    assert await anyio.Path(done["images"][0]["file"]).is_file()
    assert len(previews_of(later)) == 1


async def test_spend_is_counted_once_per_job_in_this_servers_tally(connect: ConnectFactory, out: Path) -> None:
    async with connect(output_dir=out) as client:
        job_id = structured(await client.call_tool("generate_image", {"prompt": "a tally"}))["job_id"]
        structured(await client.call_tool("get_image_job", {"job_id": job_id}))
        error_text(await client.call_tool("get_image_job", {"job_id": "0" * 24}))
        session = structured(await client.call_tool("get_limits", {}))["session"]

    assert session["spend_usd"] == pytest.approx(DEFAULT_PRICE)
    assert session["calls"]["generate_image"] == 1
    assert session["calls"]["get_image_job"] == 2
    assert session["failed"] == {"get_image_job": 1}


async def test_a_replayed_idempotency_key_returns_the_same_job_and_charges_once(
    connect: ConnectFactory, emulator: EmulatorHandle, out: Path
) -> None:
    arguments = {"prompt": "a teapot", "idempotency_key": "teapot-1"}
    async with connect(output_dir=out) as client:
        first = structured(await client.call_tool("generate_image", arguments))
        second = structured(await client.call_tool("generate_image", arguments))

    assert first["job_id"] == second["job_id"]
    assert first["images"] == second["images"], "the saved file is reused, not downloaded again"
    assert len(emulator.state.jobs) == 1
    assert emulator.state.charge_count == 1
    assert emulator.state.total_charged == pytest.approx(DEFAULT_PRICE)
    assert len(await names_in(out)) == 1


@pytest.mark.parametrize(
    ("outcome", "reason"),
    [("failed", "failed to render"), ("expired", "timed out"), ("refunded", "cancelled and refunded")],
)
async def test_each_failed_status_is_job_failed_with_the_reason_and_refund(
    connect: ConnectFactory, emulator: EmulatorHandle, out: Path, outcome: str, reason: str
) -> None:
    emulator.switches.image_outcome = outcome
    async with connect(output_dir=out) as client:
        result = await client.call_tool("generate_image", {"prompt": "a doomed job"})

    text = error_text(result)
    assert text.startswith("[job_failed] Image job ")
    assert reason in text
    assert f"The ${DEFAULT_PRICE:g} hold was refunded; nothing was charged." in text
    assert "without this job's idempotency_key" in text
    assert emulator.state.total_charged == 0
    assert emulator.state.balance == pytest.approx(10.0)
    assert await names_in(out) == []


async def test_an_unknown_or_chat_model_is_model_not_found_listing_the_image_models(
    connect: ConnectFactory, emulator: EmulatorHandle
) -> None:
    async with connect() as client:
        unknown = error_text(await client.call_tool("generate_image", {"prompt": "x", "model": "dall-e-9"}))
        chat = error_text(await client.call_tool("generate_image", {"prompt": "x", "model": "qwen-3.6-plus"}))

    # The unknown id went to the gateway, whose 404 became the error; the live list named the chat model.
    assert unknown.startswith("[model_not_found] Kyma does not serve model 'dall-e-9'. Use one of:")
    assert "ideogram-v3 ($0.108/image)" in unknown
    assert chat.startswith("[model_not_found] 'qwen-3.6-plus' is a chat model")
    assert len(emulator.state.jobs) == 0


async def test_an_edit_model_needs_an_https_image_url(connect: ConnectFactory, emulator: EmulatorHandle) -> None:
    async with connect() as client:
        missing = error_text(await client.call_tool("generate_image", {"prompt": "x", "model": "flux-kontext-pro"}))
        plain_http = error_text(
            await client.call_tool(
                "generate_image", {"prompt": "x", "model": "flux-kontext-pro", "image_url": "http://a.example/b.png"}
            )
        )

    assert missing.startswith("[invalid_request] flux-kontext-pro edits an existing image (the gateway's model list")
    assert plain_http.startswith("[invalid_request] image_url must be an https:// URL")
    assert len(emulator.state.jobs) == 0


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ({"prompt": "x" * 4001}, "prompt: String should have at most 4000 characters"),
        ({"prompt": "x", "n": 0}, "n: Input should be greater than or equal to 1"),
        ({"prompt": "x", "n": 5}, "n: Input should be less than or equal to 4"),
        ({"prompt": "x", "size": "big"}, "size: must be auto, WxH such as 1024x768, or an aspect such as 16:9"),
        ({"prompt": "x", "idempotency_key": "has space"}, "idempotency_key: must be printable ASCII without spaces"),
    ],
)
async def test_bad_arguments_are_refused_before_anything_is_spent(
    connect: ConnectFactory, emulator: EmulatorHandle, arguments: dict[str, Any], problem: str
) -> None:
    async with connect() as client:
        text = error_text(await client.call_tool("generate_image", arguments))

    assert text.startswith("[invalid_request] Bad arguments for generate_image")
    assert problem in text
    assert "pattern" not in text, "a pattern is described, never printed"
    assert len(emulator.state.jobs) == 0


@pytest.mark.parametrize(("size", "pixels"), [("auto", (1024, 1024)), ("1024x768", (1024, 768)), ("9:16", (576, 1024))])
async def test_size_takes_auto_pixels_or_an_aspect(
    connect: ConnectFactory, out: Path, size: str, pixels: tuple[int, int]
) -> None:
    async with connect(output_dir=out) as client:
        image = structured(await client.call_tool("generate_image", {"prompt": "a kite", "size": size}))["images"][0]

    assert (image["width"], image["height"]) == pixels


async def test_get_image_job_of_an_unknown_or_foreign_job_says_the_id_is_unknown(
    connect: ConnectFactory, emulator: EmulatorHandle, out: Path
) -> None:
    async with connect(output_dir=out) as client:
        mine = structured(await client.call_tool("generate_image", {"prompt": "mine"}))["job_id"]
    async with connect(api_key="ky-someone-else-42") as stranger:
        foreign = error_text(await stranger.call_tool("get_image_job", {"job_id": mine}))
        unknown = error_text(await stranger.call_tool("get_image_job", {"job_id": "0" * 24}))
        traversal = error_text(await stranger.call_tool("get_image_job", {"job_id": "../credits/balance"}))

    assert foreign.startswith(f"[invalid_request] Kyma has no image job '{mine}' for this API key.")
    assert unknown.startswith("[invalid_request] Kyma has no image job '000000000000000000000000'")
    assert traversal.startswith(
        "[invalid_request] Bad arguments for get_image_job: job_id: must be the job_id a generate_image result gave"
    )


async def test_a_4000_px_image_gets_a_preview_within_the_bounds(connect: ConnectFactory, out: Path) -> None:
    async with connect(output_dir=out) as client:
        result = await client.call_tool("generate_image", {"prompt": "a wide vista", "size": "4000x3000"})

    image = structured(result)["images"][0]
    assert (image["width"], image["height"]) == (4000, 3000)
    (preview,) = previews_of(result)
    assert decoded(preview).size == (1568, 1176)
    assert len(preview.data) < PREVIEW_BUDGET_BASE64_CHARS


def test_previews_of_noisy_4000_px_images_fit_the_budget_together() -> None:
    previews = make_previews([noise_image(4000, 3000), noise_image(2048, 2048)])

    assert all(p is not None and max(p.width, p.height) <= PREVIEW_MAX_EDGE for p in previews)
    assert sum(p.base64_chars for p in previews if p is not None) <= PREVIEW_BUDGET_BASE64_CHARS
    first = previews[0]
    assert first is not None
    assert Image.open(io.BytesIO(first.data)).size == (first.width, first.height)
    assert first.width / first.height == pytest.approx(4 / 3, rel=0.01)


def test_a_transparent_image_is_previewed_on_white_and_non_images_get_none() -> None:
    buffer = io.BytesIO()
    Image.new("RGBA", (10, 10), (255, 0, 0, 0)).save(buffer, "PNG")
    transparent, svg = make_previews([buffer.getvalue(), b"<svg xmlns='http://www.w3.org/2000/svg'/>"])

    assert transparent is not None
    assert Image.open(io.BytesIO(transparent.data)).convert("RGB").getpixel((5, 5)) == (255, 255, 255)
    assert svg is None


async def test_prompt_text_never_steers_a_file_outside_the_output_folder(connect: ConnectFactory, out: Path) -> None:
    prompts = ["../../etc/passwd", "/" * 50 + "\\..\\ nul:" + "ünïcödé " * 300 + "~/.ssh/id_rsa"]
    async with connect(output_dir=out) as client:
        for prompt in prompts:
            await client.call_tool("generate_image", {"prompt": prompt})

    names = await names_in(out)
    assert len(names) == 2
    assert all(re.fullmatch(r"\d{8}-\d{6}-recraft-v4-[a-z0-9-]+-[0-9a-f]{24}-1\.png", name) for name in names)
    assert all(len(name) < 120 for name in names)
    assert any("-etc-passwd-" in name for name in names)


def test_file_stems_are_readable_and_made_only_of_safe_characters() -> None:
    from datetime import UTC, datetime

    created = datetime(2026, 11, 25, 20, 15, 30, tzinfo=UTC)
    stem = file_stem(created=created, model="flux-1.1-ultra", prompt="A red fox!", job_id="3F9A8C2E1D0A", index=1)
    nameless = file_stem(created=created, model="../..", prompt="   ", job_id="../", index=2)

    assert re.fullmatch(r"\d{8}-\d{6}-flux-1\.1-ultra-a-red-fox-3f9a8c2e1d0a-1", stem)
    assert nameless.endswith("-model-image-job-2")


def test_the_output_folder_defaults_to_the_user_data_folder_not_the_working_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)

    folder = output_folder(None)

    assert folder == (tmp_path / "user-data" / "kyma-mcp" / "images").resolve()
    assert folder.is_dir()


class RecordingTransport(httpx2.AsyncBaseTransport):
    """The real network, remembering each request's path and whether it carried an Authorization header;
    with `files_down`, the image file host answers 503."""

    def __init__(self) -> None:
        self._inner = httpx2.AsyncHTTPTransport()
        self.seen: list[tuple[str, bool]] = []
        self.files_down = False

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        self.seen.append((request.url.path, "authorization" in request.headers))
        if self.files_down and request.url.path.startswith("/files/"):
            return httpx2.Response(503, json={"error": {"message": "storage is down"}})
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


async def test_the_api_key_is_never_sent_to_the_image_download_host(emulator: EmulatorHandle, out: Path) -> None:
    transport = RecordingTransport()
    async with Client(build_server(emulator_settings(emulator, output_dir=out), transport=transport)) as client:
        structured(await client.call_tool("generate_image", {"prompt": "a secret-free fox", "n": 2}))

    downloads = [authorized for path, authorized in transport.seen if path.startswith("/files/")]
    api_calls = [authorized for path, authorized in transport.seen if path.startswith(("/v1/images", "/v1/jobs"))]
    assert downloads == [False, False]
    assert api_calls
    assert all(api_calls)


async def test_a_failed_download_names_the_job_and_get_image_job_fetches_it_later(
    emulator: EmulatorHandle, out: Path
) -> None:
    transport = RecordingTransport()
    transport.files_down = True
    server = build_server(emulator_settings(emulator, output_dir=out, max_retries=0), transport=transport)
    async with Client(server) as client:
        failed = error_text(await client.call_tool("generate_image", {"prompt": "a fragile vase", "n": 2}))
        transport.files_down = False
        job_id = failed.split('job_id="')[1].split('"')[0]
        later = await client.call_tool("get_image_job", {"job_id": job_id})

    assert failed.startswith(f"[upstream_unavailable] Job {job_id} succeeded, but downloading image ")
    assert "storage is down" in failed
    assert len(structured(later)["images"]) == 2
    assert emulator.state.charge_count == 1


@pytest.fixture
async def download_client() -> AsyncIterator[tuple[KymaClient, list[httpx2.Request]]]:
    requests: list[httpx2.Request] = []

    def cdn(request: httpx2.Request) -> httpx2.Response:
        requests.append(request)
        path = request.url.path
        if path == "/moved":
            return httpx2.Response(302, headers={"location": "https://cdn.example/final.png"})
        if path == "/to-http":
            return httpx2.Response(302, headers={"location": "http://elsewhere.example/x.png"})
        if path == "/to-gateway":
            return httpx2.Response(302, headers={"location": "http://kyma.example/files/x.png"})
        if path.startswith("/loop"):
            return httpx2.Response(302, headers={"location": f"https://cdn.example/loop{len(requests)}"})
        if path == "/huge":
            return httpx2.Response(200, content=b"x" * 70_000)
        if path == "/page":
            return httpx2.Response(200, html="<html>sign in</html>")
        return httpx2.Response(200, content=b"PNGDATA", headers={"content-type": "image/png"})

    settings = Settings.model_validate(
        {"api_key": TEST_KEY, "base_url": "http://kyma.example/v1", "bounds": {"download_bytes": 65_536}}
    )
    client = KymaClient(settings, transport=httpx2.MockTransport(cdn))
    yield client, requests
    await client.aclose()


async def test_download_follows_redirects_without_the_key_and_caps_the_size(
    download_client: tuple[KymaClient, list[httpx2.Request]],
) -> None:
    client, requests = download_client
    budget = ByteBudget(10 * 1_048_576)

    assert await client.download("https://files.example/moved", budget) == b"PNGDATA"
    assert [str(r.url) for r in requests] == ["https://files.example/moved", "https://cdn.example/final.png"]
    assert not any("authorization" in r.headers for r in requests)
    with pytest.raises(UpstreamUnavailableError, match="larger than 65,536 bytes"):
        await client.download("https://files.example/huge", budget)
    with pytest.raises(UpstreamUnavailableError, match="not http"):
        await client.download("file:///etc/passwd", budget)


async def test_download_redirects_go_only_to_https_or_the_gateway_and_at_most_three_hops(
    download_client: tuple[KymaClient, list[httpx2.Request]],
) -> None:
    client, _ = download_client
    budget = ByteBudget(10 * 1_048_576)

    assert await client.download("https://files.example/to-gateway", budget) == b"PNGDATA"
    with pytest.raises(UpstreamUnavailableError, match=r"redirected to http://elsewhere\.example/x\.png, which is not"):
        await client.download("https://files.example/to-http", budget)
    with pytest.raises(UpstreamUnavailableError, match="redirected more than 3 times"):
        await client.download("https://files.example/loop", budget)


async def test_a_download_that_is_not_an_image_or_over_the_call_budget_is_refused(
    download_client: tuple[KymaClient, list[httpx2.Request]],
) -> None:
    client, _ = download_client

    with pytest.raises(UpstreamUnavailableError, match="is text/html, not an image"):
        await client.download("https://files.example/page", ByteBudget(10 * 1_048_576))
    with pytest.raises(UpstreamUnavailableError, match="KYMA_MAX_IMAGE_BYTES_PER_CALL"):
        await client.download("https://files.example/huge", ByteBudget(1000))


def test_the_emulator_runs_image_jobs_as_kyma_documents(emulator: EmulatorHandle) -> None:
    """202 then an idempotent 200, a hold then a charge, 404 for unknown and foreign ids, PNGs from the prompt."""
    emulator.switches.image_delay_seconds = 0
    body = {"model": "flux-1.1-ultra", "prompt": "a fox", "size": "640x480", "idempotency_key": "k-1"}
    with httpx2.Client(base_url=emulator.base_url, headers={"Authorization": f"Bearer {TEST_KEY}"}) as http:
        submitted = http.post("/images/generations", json=body)
        replayed = http.post("/images/generations", json=body)
        other = http.post("/images/generations", json=body | {"idempotency_key": "k-2"}).json()
        job = http.get(f"/jobs/{submitted.json()['id']}").json()
        unknown = http.get("/jobs/ffffffffffffffffffffffff")
        foreign = http.get(f"/jobs/{job['id']}", headers={"Authorization": "Bearer ky-another-key"})
        first_png = http.get(job["output"]["url"]).content
        same_prompt_png = http.get(http.get(f"/jobs/{other['id']}").json()["output"]["url"]).content

    assert (submitted.status_code, replayed.status_code) == (202, 200)
    assert replayed.json()["id"] == submitted.json()["id"] != other["id"]
    assert submitted.json()["estimated_cost"] == FLUX_PRICE
    assert submitted.json()["charged_amount"] is None
    assert job["status"] == "succeeded"
    assert job["charged_amount"] == FLUX_PRICE
    assert (unknown.status_code, foreign.status_code) == (404, 404)
    assert Image.open(io.BytesIO(first_png)).size == (640, 480)
    assert first_png == same_prompt_png


@pytest.mark.slow
async def test_stdio_server_generates_an_image_into_the_output_folder(emulator: EmulatorHandle, out: Path) -> None:
    env = {
        "KYMA_BASE_URL": emulator.base_url,
        "KYMA_API_KEY": TEST_KEY,
        "KYMA_OUTPUT_DIR": str(out),
        "KYMA_RESULT_FACTS": "1",
    }
    params = StdioServerParameters(command=sys.executable, args=["-m", "kyma_mcp"], env=env)
    with anyio.fail_after(30):
        async with Client(params) as client:
            result = await client.call_tool("generate_image", {"prompt": "a fox over stdio", "size": "1:1"})

    image = structured(result)["images"][0]
    assert Path(image["file"]).parent == out
    with Image.open(image["file"]) as saved:
        assert saved.size == (1024, 1024)
    (preview,) = previews_of(result)
    assert decoded(preview).size == (1024, 1024)
