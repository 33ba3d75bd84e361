"""A throwaway PostgreSQL server for the store tests: `initdb` in a temporary folder, `pg_ctl` on a
loopback port, stopped and deleted at the end.

As root (CI runs so) the server runs as an unprivileged user, because `initdb` refuses root:
`KYMA_TEST_POSTGRES_USER`, else `postgres`. With `KYMA_TEST_POSTGRES=required` (set by .ci/run) a
missing binary or driver fails the tests instead of skipping them.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Generator
from contextlib import contextmanager
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


@contextmanager
def postgres_server() -> Generator[str]:
    """A running server; yields its base URL (`postgresql://kyma@127.0.0.1:PORT`, no database)."""
    binaries = _binaries()
    if binaries is None:
        _unavailable(f"no PostgreSQL server binaries (initdb, pg_ctl) on PATH or in {BIN_GLOB}")
        raise AssertionError  # unreachable: skip/fail raise
    if importlib.util.find_spec("psycopg") is None:  # the store's PostgreSQL backend needs it
        _unavailable("psycopg is not installed (pip install -e '.[dev]')")
    folder = Path(tempfile.mkdtemp(prefix="kyma-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:
        user = os.environ.get("KYMA_TEST_POSTGRES_USER", "postgres")
        try:
            account = pwd.getpwnam(user)
        except KeyError:
            shutil.rmtree(folder)
            _unavailable(f"running as root and no user '{user}' to run PostgreSQL as (set KYMA_TEST_POSTGRES_USER)")
            raise AssertionError from None
        os.chown(folder, account.pw_uid, account.pw_gid)
        run_as = ["runuser", "-u", user, "--"]
    data, port = folder / "data", _free_port()

    def run(*command: str) -> None:
        subprocess.run([*run_as, *command], check=True, capture_output=True, timeout=120)

    try:
        run(str(binaries / "initdb"), "-D", str(data), "-A", "trust", "-U", "kyma", "-E", "UTF8", "--no-sync")
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=off -c max_connections=60"
        run(str(binaries / "pg_ctl"), "-D", str(data), "-l", str(folder / "log"), "-o", options, "-w", "start")
    except subprocess.CalledProcessError as exc:
        log = (folder / "log").read_text() if (folder / "log").exists() else ""
        shutil.rmtree(folder, ignore_errors=True)
        pytest.fail(f"could not start PostgreSQL: {exc.stderr.decode(errors='replace')}{log}")
    try:
        yield f"postgresql://kyma@127.0.0.1:{port}"
    finally:
        subprocess.run(
            [*run_as, str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(folder, ignore_errors=True)


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
