"""Start-up does only what serving needs: no regex compiled at import, the tool list built once, and what
the first call needs (the Kyma HTTP client, the store, the catalog) prepared in the background once the
server answered its first tools/list."""

import gc
import json
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from mcp import Client

from kyma_mcp.cli import main
from kyma_mcp.emulator import EmulatorHandle
from kyma_mcp.errors import StoreUnavailableError
from kyma_mcp.server import build_server
from kyma_mcp.server.app import KymaServer
from kyma_mcp.server.context import SharedState
from kyma_mcp.settings import Settings
from tests.conftest import emulator_settings

pytestmark = pytest.mark.anyio

FRESH_PROCESS = """
from kyma_mcp.patterns import LazyPattern
import kyma_mcp.cli, kyma_mcp.http_config, kyma_mcp.server.app
from kyma_mcp.server import build_server
from kyma_mcp.emulator import EmulatorHandle
from kyma_mcp.errors import StoreUnavailableError
from kyma_mcp.settings import Settings
from tests.conftest import emulator_settings
build_server(Settings())
at_start = LazyPattern.compiled_count
from kyma_mcp.recommend.profile import understand
understand("Summarise a 300-page PDF, then draw a logo")
print(at_start, LazyPattern.compiled_count)
"""


def test_no_pattern_is_compiled_until_a_task_is_read() -> None:
    done = subprocess.run([sys.executable, "-c", FRESH_PROCESS], capture_output=True, text=True, check=True)

    at_start, after = map(int, done.stdout.split())
    assert at_start == 0
    assert after > 0


async def test_the_http_client_the_store_and_the_catalog_are_prepared_in_the_background(
    emulator: EmulatorHandle,
) -> None:
    shared = SharedState(emulator_settings(emulator), None)
    async with shared.lifespan(build_server(Settings())) as state:
        assert not state.client.prepared
        assert not state.store.opened
        task = shared.prepare_soon()
        assert task is not None
        await task

        assert state.client.prepared
        assert state.store.opened  # opened and migrated: the first chat records its turn at once
        assert (await state.catalog.view()).source == "cached"  # fetched by the preparation
    assert emulator.state.requests["/v1/models"] == 1


async def test_a_store_that_cannot_open_spoils_no_other_preparation_and_is_left_to_the_first_call(
    emulator: EmulatorHandle, tmp_path: Path
) -> None:
    corrupt = tmp_path / "store.sqlite3"
    corrupt.write_bytes(b"this is not a database\n" * 100)
    shared = SharedState(emulator_settings(emulator, store_url=f"sqlite://{corrupt}"), None)
    async with shared.lifespan(build_server(Settings())) as state:
        task = shared.prepare_soon()
        assert task is not None
        await task  # the failure is not raised here

        assert state.client.prepared
        assert (await state.catalog.view()).source == "cached"
        assert not state.store.opened
        with pytest.raises(StoreUnavailableError, match="not a readable SQLite database"):
            await state.store.get()  # the first call that needs it meets it, and says so


async def test_tools_list_is_built_once_and_announces_the_server_serving_once() -> None:
    server = build_server(Settings(base_url="http://127.0.0.1:9/v1"))
    assert isinstance(server, KymaServer)
    calls: list[None] = []
    server.on_first_list = lambda: calls.append(None)
    async with Client(server) as client:
        first = (await client.list_tools()).tools
        again = (await client.list_tools()).tools

    assert first == again
    assert len(calls) == 1


async def test_a_server_stopping_mid_preparation_cancels_it_before_closing_the_client(
    emulator: EmulatorHandle,
) -> None:
    emulator.switches.latency_ms = 2_000  # the catalog read is still waiting when the server stops
    shared = SharedState(emulator_settings(emulator), None)
    async with shared.lifespan(build_server(Settings())):
        task = shared.prepare_soon()
        assert task is not None
        await anyio.sleep(0.3)  # past the preparation's start: it is waiting for the catalog

    assert task.cancelled()  # not left to send on the closed client ("the client has been closed")


SERVING_PROBE = """
import gc, json, sys
from mcp.server import MCPServer
import kyma_mcp.server.app as app

seen = {}
build = app.build_server


def probed_build(*args, **kwargs):
    seen["collecting while building"] = gc.isenabled()
    return build(*args, **kwargs)


def probed_run(self, *args, **kwargs):
    seen["collecting while serving"] = gc.isenabled()
    seen["frozen at start"] = gc.get_freeze_count()


import kyma_mcp.server
kyma_mcp.server.build_server = probed_build
MCPServer.run = probed_run
from kyma_mcp.cli import main
main([])
print(json.dumps(seen))
"""


def test_start_up_pauses_the_garbage_collector_and_serving_resumes_it_with_start_up_frozen() -> None:
    env = {"PATH": "/usr/bin:/bin", "KYMA_STORE": "off", "HOME": "/nonexistent"}
    done = subprocess.run(
        [sys.executable, "-c", SERVING_PROBE], capture_output=True, text=True, check=True, env=env, timeout=60
    )
    seen = json.loads(done.stdout)

    assert seen["collecting while building"] is False  # the SDK's import and the tools: no collections
    assert seen["collecting while serving"] is True
    assert seen["frozen at start"] > 10_000  # what start-up made is never walked again


def test_a_start_up_that_stops_early_leaves_the_collector_running(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KYMA_TIER", "12")  # a config error: start-up stops before serving
    assert gc.isenabled()

    assert main([]) == 2
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0  # nothing frozen in a process that does not serve
