"""Shared fixtures: the anyio backend, a Kyma emulator on loopback, and MCP clients of either protocol era."""

import sys
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.client.session import ElicitationFnT

from kyma_mcp.emulator import EmulatorHandle, Switches, running_emulator
from kyma_mcp.server import build_server
from kyma_mcp.settings import Settings, Timing

TEST_KEY = "ky-test-0123456789abcdef"

ConnectFactory = Callable[..., Client]


@pytest.hookimpl(wrapper=True)
def pytest_collection(session: pytest.Session) -> Generator[None, object, object]:
    """Collect with bytecode writing on, even under PYTHONDONTWRITEBYTECODE: pytest then keeps the test
    modules it rewrote (their ~2,400 asserts) in tests/__pycache__ (git-ignored). Otherwise every
    pytest-xdist worker parses and rewrites them all again, about 2 s of CPU each. The tests themselves
    run with the setting as it was."""
    del session
    before = sys.dont_write_bytecode
    sys.dont_write_bytecode = False
    try:
        return (yield)
    finally:
        sys.dont_write_bytecode = before


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


QUICK_JOBS = Switches(image_delay_seconds=0.1)
"""The session emulator's image jobs take 100 ms instead of the emulator's default 0.3 s: FAST_TIMING
polls every 50 ms, so a job is still seen pending and processing. A test that watches a job's stages
closely, or needs one still running, sets its own `image_delay_seconds`."""


@pytest.fixture(scope="session")
def shared_emulator() -> Iterator[EmulatorHandle]:
    with running_emulator(QUICK_JOBS) as emulator:
        yield emulator


@pytest.fixture
def emulator(shared_emulator: EmulatorHandle) -> EmulatorHandle:
    """The session's emulator, back to a healthy gateway with a full balance for each test."""
    shared_emulator.state.reset()
    return shared_emulator


FAST_TIMING = Timing(
    backoff_base_seconds=0,
    backoff_max_seconds=0,
    job_poll_seconds=(0.05,),
    turn_wait_seconds=0.01,
    progress_interval_seconds=0.02,
)
"""No retry backoff, a job poll every 50 ms (the emulator's quick jobs take 100 ms), quick turn waits,
streamed progress every 20 ms: a test waits only as long as what it watches. The production schedule
is `Timing()`."""


def emulator_settings(emulator: EmulatorHandle, **overrides: Any) -> Settings:
    """Settings for a server of `emulator`; results carry their facts in `_meta` (KYMA_RESULT_FACTS), which
    tests read (tests/results.py), unless `result_facts=False` asks for the default, as test_host_view does."""
    defaults: dict[str, Any] = {
        "api_key": TEST_KEY,
        "base_url": emulator.base_url,
        "timing": FAST_TIMING,
        "result_facts": True,
    }
    return Settings.model_validate(defaults | overrides)


ERAS = ("auto", "legacy")
BOTH_ERAS = pytest.mark.parametrize("era", ERAS)
"""For a test whose behaviour depends on the protocol era (elicitation, progress, cancellation, resources,
the tool listing): run it in both, 2026-07-28 (no handshake) and the legacy `initialize` handshake. Tests of
everything else run once, in the default era; the transports (stdio, HTTP) have tests of their own."""


@pytest.fixture
def era() -> str:
    """The protocol era of `connect`'s clients: "auto" (2026-07-28) unless a test asks for `BOTH_ERAS`."""
    return "auto"


@pytest.fixture
def connect(emulator: EmulatorHandle, era: str) -> ConnectFactory:
    """`connect(**settings)` → an in-memory MCP client of a fresh server pointed at the emulator;
    `elicitation_callback` makes the client declare (and answer) elicitation."""

    def factory(*, elicitation_callback: ElicitationFnT | None = None, **overrides: Any) -> Client:
        server = build_server(emulator_settings(emulator, **overrides))
        mode = "auto" if era == "auto" else "legacy"
        return Client(server, mode=mode, elicitation_callback=elicitation_callback)

    return factory


@pytest.fixture(scope="session")
def postgres_server_url(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Iterator[str]:
    """One throwaway PostgreSQL server for the session, shared by the pytest-xdist workers of a run
    (see tests/postgres.py)."""
    from tests.postgres import postgres_server, shared_postgres_server

    if worker_id == "master":  # not under xdist: this process is the whole run
        with postgres_server() as url:
            yield url
        return
    with shared_postgres_server(tmp_path_factory.getbasetemp().parent) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """`KYMA_STORE_URL` of an empty store: a SQLite file in tmp_path, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite://{tmp_path / 'store.sqlite3'}"
        return
    from tests.postgres import fresh_database

    with fresh_database(request.getfixturevalue("postgres_server_url")) as url:
        yield url


@pytest.fixture(autouse=True)
def private_data_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The platform data folder (default store and images) of each test: a temporary folder of its
    own, beside tmp_path (not in it, so tests that count the files they write there are not disturbed)."""
    home = tmp_path_factory.mktemp("user-data")
    monkeypatch.setenv("XDG_DATA_HOME", str(home))
    return home
