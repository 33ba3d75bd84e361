"""The image-job journal, against SQLite and a real PostgreSQL: a job outlives its call and its
server, a retried request reuses the first call's key (one job, billed once), files keep the
journal's prompt words and are never downloaded twice; get_image_job without job_id lists jobs.
The last test does it with real processes: one killed with SIGKILL mid-job, then a new one."""

from __future__ import annotations

import os
import signal
import sqlite3
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from kyma_mcp.emulator import EmulatorHandle
from kyma_mcp.server import build_server
from kyma_mcp.server.context import RESULT_META
from kyma_mcp.settings import Settings
from kyma_mcp.store import open_store
from kyma_mcp.store.schema import MIGRATIONS, SCHEMA_VERSION
from tests.conftest import TEST_KEY, emulator_settings
from tests.results import structured, text_of
from tests.test_stdio import StdioPeer, stdio_server

pytestmark = pytest.mark.anyio

DOWNLOADS = "/files/{job_id}/{index}.png"


def server(emulator: EmulatorHandle, store_url: str, out: Path, timeout: float) -> Client:
    return Client(
        build_server(emulator_settings(emulator, store_url=store_url, output_dir=out, tool_timeout_seconds=timeout))
    )


async def test_a_job_outlives_its_call_and_server_and_is_named_from_the_journal(
    emulator: EmulatorHandle, store_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "images"
    emulator.switches.image_delay_seconds = 1.8
    emulator.state.clock.freeze()  # the job runs only as the test moves the emulator's clock
    async with server(emulator, store_url, out, timeout=1) as client:
        running = structured(await client.call_tool("generate_image", {"prompt": "a lighthouse at dawn"}))
    assert running["status"] == "running"
    job_id = running["job_id"]
    emulator.state.clock.advance(1.8)

    # A new server (a restart): the journal lists the job and names its files as the first call would have.
    async with server(emulator, store_url, out, timeout=10) as client:
        listed = structured(await client.call_tool("get_image_job", {}))
        done = structured(await client.call_tool("get_image_job", {"job_id": job_id}))
    assert listed["status"] == "listed"
    assert [(j["job_id"], j["prompt_words"]) for j in listed["recent_jobs"]] == [(job_id, "a lighthouse at dawn")]
    [image] = done["images"]
    assert "-a-lighthouse-at-dawn-" in Path(image["file"]).name
    assert emulator.state.requests[DOWNLOADS] == 1

    async with server(emulator, store_url, out, timeout=10) as client:
        again = structured(await client.call_tool("get_image_job", {"job_id": job_id}))
        listed = await client.call_tool("get_image_job", {})
    assert again["images"][0]["file"] == image["file"]
    assert emulator.state.requests[DOWNLOADS] == 1, "a restart never downloads twice"
    assert structured(listed)["recent_jobs"][0]["files"] == [image["file"]]
    assert f"{job_id} · succeeded" in text_of(listed)


async def test_a_retried_request_after_a_restart_gets_the_same_job_not_a_second_charge(
    emulator: EmulatorHandle, store_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "images"
    emulator.switches.image_delay_seconds = 1.8
    emulator.state.clock.freeze()  # the first job runs only as the test moves the emulator's clock
    request = {"prompt": "a red fox in snow", "n": 1}
    async with server(emulator, store_url, out, timeout=1) as client:
        first = structured(await client.call_tool("generate_image", request))
    assert first["status"] == "running"
    emulator.state.clock.advance(1.8)
    emulator.state.clock.resume()
    emulator.switches.image_delay_seconds = 0.1  # the fresh job below
    async with server(emulator, store_url, out, timeout=10) as client:
        retried = structured(await client.call_tool("generate_image", request))
        fresh = structured(await client.call_tool("generate_image", request))
    assert retried["job_id"] == first["job_id"]
    assert retried["status"] == "succeeded"
    assert fresh["job_id"] != first["job_id"], "a finished job is not reused: a new call is a new picture"
    assert emulator.state.requests["/v1/images/generations"] == 3
    assert emulator.state.charge_count == 2


async def test_without_a_store_the_listing_says_so(emulator: EmulatorHandle, tmp_path: Path) -> None:
    broken = tmp_path / "store.sqlite3"
    broken.write_bytes(b"garbage" * 500)
    async with server(emulator, f"sqlite://{broken}", tmp_path / "images", timeout=10) as client:
        listed = structured(await client.call_tool("get_image_job", {}))
        made = structured(await client.call_tool("generate_image", {"prompt": "still works"}))
    assert listed["recent_jobs"] == []
    assert "No job journal is available" in listed["message"]
    assert made["status"] == "succeeded"


async def test_a_version_1_database_migrates_forward_keeping_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "v1.sqlite3"
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    connection.execute("INSERT INTO schema_version VALUES (1)")
    for statement in MIGRATIONS[0]:
        connection.execute(statement)
    connection.execute(
        "INSERT INTO image_jobs (idempotency_key, job_id, model, prompt_words, status, created_at, updated_at) "
        "VALUES ('k', 'j', 'flux', 'old words', 'succeeded', 1, 1)"
    )
    connection.commit()
    connection.close()
    store = await open_store(Settings.model_validate({"store_url": f"sqlite://{path}"}))
    assert await store.migrate() == SCHEMA_VERSION >= 2  # opened, hence migrated to the newest
    job = await store.job(job_id="j")
    await store.aclose()
    assert job is not None
    assert (job.prompt_words, job.request_fingerprint) == ("old words", None)


# --- kill -9 mid-job: a real process, killed, and a new one repeating the call ---


async def call_in_new_process(env: dict[str, str], name: str, arguments: dict[str, object]) -> dict[str, Any]:
    """One tool call in a fresh `python -m kyma_mcp` over stdio, which then exits as a host would stop it."""
    async with stdio_server(env) as peer:
        with anyio.fail_after(30):
            await peer.send_tool_call(2, name, arguments)
            return (await peer.response(2))["result"]


def journal_rows(path: Path) -> list[tuple[str, str | None, str]]:
    with sqlite3.connect(path) as connection:
        return connection.execute("SELECT idempotency_key, job_id, status FROM image_jobs").fetchall()


@pytest.mark.slow
async def test_after_kill_9_mid_job_a_repeated_call_is_charged_once_and_downloads_once(
    emulator: EmulatorHandle, tmp_path: Path
) -> None:
    emulator.switches.image_delay_seconds = 3.0
    store, out = tmp_path / "store.sqlite3", tmp_path / "images"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "KYMA_API_KEY": TEST_KEY,
        "KYMA_BASE_URL": emulator.base_url,
        "KYMA_STORE_URL": f"sqlite://{store}",
        "KYMA_OUTPUT_DIR": str(out),
        "KYMA_TOOL_TIMEOUT_SECONDS": "30",
        "KYMA_RESULT_FACTS": "1",
    }
    request: dict[str, object] = {"prompt": "a lighthouse at dawn", "n": 1}

    process = await anyio.open_process([sys.executable, "-m", "kyma_mcp"], env=env)
    async with process:
        peer = StdioPeer(process)
        with anyio.fail_after(30):
            await peer.initialize()
            await peer.send_tool_call(2, "generate_image", request)
            while emulator.state.requests["/v1/jobs/{job_id}"] == 0:  # noqa: ASYNC110 - the emulator thread counts; submitted and polling: mid-job
                await anyio.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        with anyio.fail_after(10):
            assert await process.wait() == -signal.SIGKILL
    [(key, job_id, _)] = journal_rows(store)
    assert job_id is not None
    assert not out.exists() or not any(out.iterdir()), "killed before any download"

    repeated = await call_in_new_process(env, "generate_image", request)
    again = await call_in_new_process(env, "get_image_job", {"job_id": job_id})

    assert repeated["_meta"][RESULT_META]["status"] == "succeeded"
    assert repeated["_meta"][RESULT_META]["job_id"] == job_id
    assert emulator.state.requests["/v1/images/generations"] == 2, "the repeated call reached Kyma"
    assert journal_rows(store) == [(key, job_id, "succeeded")], "with the first call's idempotency key"
    assert len(emulator.state.jobs) == 1, "so Kyma replayed the first job instead of starting a second"
    assert emulator.state.charge_count == 1
    [saved] = [image["file"] for image in repeated["_meta"][RESULT_META]["images"]]
    assert [path.name for path in out.iterdir()] == [Path(saved).name]
    assert [image["file"] for image in again["_meta"][RESULT_META]["images"]] == [saved]
    assert emulator.state.requests[DOWNLOADS] == 1, "downloaded once, by the repeated call"
