"""Tolerant job polling: replica lag, every output shape seen, unknown statuses, synchronous image answers."""

from pathlib import Path

import anyio
import httpx2
import pytest

from kyma_mcp.emulator import EmulatorHandle
from kyma_mcp.images.jobs import ImageJobs, Job, output_urls
from kyma_mcp.kyma.client import KymaClient
from kyma_mcp.settings import Settings
from tests.conftest import FAST_TIMING, ConnectFactory
from tests.results import structured

pytestmark = pytest.mark.anyio

PNG_1PX_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGMAAQAABQABDQottAAAAABJRU5ErkJggg=="


@pytest.fixture(autouse=True)
def private_user_data(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "user-data"))


@pytest.fixture
def emulator(emulator: EmulatorHandle) -> EmulatorHandle:
    emulator.switches.image_delay_seconds = 0.1
    return emulator


@pytest.mark.parametrize(
    "body",
    [
        {"output": {"url": "https://a.example/1.png"}},
        {"output": {"url": "https://a.example/1.png", "urls": ["https://a.example/1.png"]}},
        {"output": [{"url": "https://a.example/1.png"}]},
        {"output": ["https://a.example/1.png"]},
        {"output": {"images": ["https://a.example/1.png"]}},
        {"output": {"images": [{"url": "https://a.example/1.png"}]}},
        {"data": [{"url": "https://a.example/1.png"}]},
    ],
)
def test_every_output_shape_names_the_image(body: dict[str, object]) -> None:
    assert output_urls(body) == ["https://a.example/1.png"]


@pytest.mark.parametrize(
    ("status", "state"),
    [("succeeded", "succeeded"), ("completed", "succeeded"), ("cancelled", "failed"), ("queued", "running"),
     ("mystery", "unknown")],
)  # fmt: skip
def test_statuses_are_read_and_an_unknown_one_stays_unknown(status: str, state: str) -> None:
    assert Job.parse({"id": "j1", "status": status}).state == state


def test_a_synchronous_answer_is_a_finished_job() -> None:
    job = Job.parse({"created": 1, "data": [{"b64_json": PNG_1PX_B64}]})

    assert job.finished
    assert job.id.startswith("sync-")
    assert job.urls[0].startswith("data:image/png;base64,")


@pytest.mark.parametrize("era", ["auto"])
async def test_a_404_right_after_submit_is_replica_lag(connect: ConnectFactory, emulator: EmulatorHandle) -> None:
    emulator.switches.job_not_found_polls = 2
    async with connect() as client:
        result = await client.call_tool("generate_image", {"prompt": "a lagging job"})

    assert structured(result)["status"] == "succeeded"
    assert len(emulator.state.jobs) == 1


@pytest.mark.parametrize("era", ["auto"])
@pytest.mark.parametrize("shape", ["url", "list", "images"])
async def test_other_output_shapes_are_delivered(
    connect: ConnectFactory, emulator: EmulatorHandle, shape: str, tmp_path: Path
) -> None:
    emulator.switches.job_output_shape = shape
    async with connect(output_dir=str(tmp_path)) as client:
        result = await client.call_tool("generate_image", {"prompt": f"shape {shape}"})

    data = structured(result)
    assert data["status"] == "succeeded"
    assert len(data["images"]) == 1


@pytest.mark.parametrize("era", ["auto"])
async def test_completed_is_success_and_an_unknown_word_is_reported_as_is(
    connect: ConnectFactory, emulator: EmulatorHandle, tmp_path: Path
) -> None:
    emulator.switches.job_success_word = "completed"
    async with connect(output_dir=str(tmp_path)) as client:
        completed = await client.call_tool("generate_image", {"prompt": "completed"})
        emulator.switches.job_success_word = "transmogrified"
        emulator.switches.job_output_shape = "url"
        odd = await client.call_tool("generate_image", {"prompt": "odd word", "n": 1})

    assert structured(completed)["status"] == "succeeded"
    # An unknown word with an image URL: the image is there, so it is delivered.
    assert structured(odd)["status"] == "succeeded"


async def test_an_unknown_status_without_output_is_unknown_not_running(tmp_path: Path) -> None:
    polls: list[str] = []

    def gateway(request: httpx2.Request) -> httpx2.Response:
        polls.append(request.url.path)
        return httpx2.Response(200, json={"id": "j1", "status": "cancelling", "model": "m"})

    settings = Settings.model_validate(
        {"api_key": "ky-test-key-123456", "output_dir": str(tmp_path), "timing": FAST_TIMING}
    )
    jobs = ImageJobs(KymaClient(settings, transport=httpx2.MockTransport(gateway)), settings)

    async def progress(message: str) -> None:
        del message

    with anyio.fail_after(5):
        delivery = await jobs.resume("j1", wait_seconds=3, deadline_at=anyio.current_time() + 10, progress=progress)

    assert delivery.result.status == "unknown"
    assert "reports status 'cancelling'" in delivery.result.message
    assert len(polls) <= 2  # stopped at the unknown word instead of polling it as "running"
