"""A throwaway PostgreSQL server for the store tests: `initdb` in a temporary folder, `pg_ctl` on a
loopback port, stopped and deleted at the end.

As root (CI runs so) the server runs as an unprivileged user, because `initdb` refuses root:
`KYMA_TEST_POSTGRES_USER`, else `postgres`. With `KYMA_TEST_POSTGRES=required` (set by .ci/run) a
missing binary or driver fails the tests instead of skipping them.
"""

from __future__ import annotations

import fcntl
import glob
import importlib.util
import json
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Generator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

BIN_GLOB = "/usr/lib/postgresql/*/bin"


def _unavailable(reason: str) -> None:
    if os.environ.get("KYMA_TEST_POSTGRES") == "required":
        pytest.fail(f"KYMA_TEST_POSTGRES=required but {reason}")
    pytest.skip(reason)


def _binaries() -> Path | None:
    on_path = shutil.which("pg_ctl")
    candidates = [Path(on_path).parent] if on_path else []
    candidates += [Path(folder) for folder in sorted(glob.glob(BIN_GLOB), reverse=True)]
    return next((folder for folder in candidates if (folder / "initdb").exists()), None)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class Server:
    url: str
    """`postgresql://kyma@127.0.0.1:PORT`, no database."""
    folder: Path
    """Its data folder, socket and log; deleted when it stops."""


def _run_as() -> list[str]:
    """The command prefix that runs PostgreSQL's binaries: as root, `runuser` to an unprivileged user."""
    if os.geteuid() != 0:
        return []
    user = os.environ.get("KYMA_TEST_POSTGRES_USER", "postgres")
    try:
        pwd.getpwnam(user)
    except KeyError:
        _unavailable(f"running as root and no user '{user}' to run PostgreSQL as (set KYMA_TEST_POSTGRES_USER)")
        raise AssertionError from None
    return ["runuser", "-u", user, "--"]


def _require_binaries() -> Path:
    binaries = _binaries()
    if binaries is None:
        _unavailable(f"no PostgreSQL server binaries (initdb, pg_ctl) on PATH or in {BIN_GLOB}")
        raise AssertionError  # unreachable: skip/fail raise
    if importlib.util.find_spec("psycopg") is None:  # the store's PostgreSQL backend needs it
        _unavailable("psycopg is not installed (pip install -e '.[dev]')")
    return binaries


def start_server() -> Server:
    """initdb and start a server on a free loopback port; `stop_server` stops and deletes it."""
    binaries, run_as = _require_binaries(), _run_as()
    folder = Path(tempfile.mkdtemp(prefix="kyma-pg-"))
    if run_as:
        account = pwd.getpwnam(run_as[2])
        os.chown(folder, account.pw_uid, account.pw_gid)
    data, port = folder / "data", _free_port()

    def run(*command: str) -> None:
        subprocess.run([*run_as, *command], check=True, capture_output=True, timeout=120)

    try:
        run(str(binaries / "initdb"), "-D", str(data), "-A", "trust", "-U", "kyma", "-E", "UTF8", "--no-sync")
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=off -c max_connections=200"
        run(str(binaries / "pg_ctl"), "-D", str(data), "-l", str(folder / "log"), "-o", options, "-w", "start")
    except subprocess.CalledProcessError as exc:
        log = (folder / "log").read_text() if (folder / "log").exists() else ""
        shutil.rmtree(folder, ignore_errors=True)
        pytest.fail(f"could not start PostgreSQL: {exc.stderr.decode(errors='replace')}{log}")
    return Server(f"postgresql://kyma@127.0.0.1:{port}", folder)


def stop_server(server: Server) -> None:
    binaries = _binaries()
    if binaries is not None:
        subprocess.run(
            [*_run_as(), str(binaries / "pg_ctl"), "-D", str(server.folder / "data"), "-m", "immediate", "-w", "stop"],
            capture_output=True,
            timeout=60,
        )
    shutil.rmtree(server.folder, ignore_errors=True)


@contextmanager
def postgres_server() -> Generator[str]:
    """A running server; yields its base URL (`postgresql://kyma@127.0.0.1:PORT`, no database)."""
    server = start_server()
    try:
        yield server.url
    finally:
        stop_server(server)


@contextmanager
def shared_postgres_server(meeting: Path) -> Generator[str]:
    """One server for every pytest-xdist worker of a run, in `meeting` (a folder they share): the first
    worker to ask starts it, the last to leave stops it. Each worker would otherwise run its own initdb
    (about a second of CPU each) and its own server. A lock file orders them; a worker that asks after
    the server was stopped starts a new one."""
    state_file = meeting / "postgres.json"

    def change(users: int) -> Server | None:
        """Add `users` (1 or -1) under the lock; the server to use (joining) or to stop (the last leaving)."""
        with (meeting / "postgres.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if state_file.exists():
                url, folder, count = json.loads(state_file.read_text())
                server, count = Server(str(url), Path(str(folder))), int(count) + users
            elif users > 0:
                server, count = start_server(), users
            else:
                return None
            if count > 0:
                state_file.write_text(json.dumps([server.url, str(server.folder), count]))
                return server if users > 0 else None
            state_file.unlink()
            return server

    server = change(+1)
    assert server is not None
    try:
        yield server.url
    finally:
        if (last := change(-1)) is not None:
            stop_server(last)


@contextmanager
def fresh_database(server_url: str) -> Generator[str]:
    """A new empty database on the server, dropped afterwards; yields its URL."""
    import psycopg
    from psycopg import sql

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{server_url}/postgres", autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"{server_url}/{name}"
    finally:
        with psycopg.connect(f"{server_url}/postgres", autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
