"""The embedded backend: a SQLite file (or memory) through the stdlib `sqlite3`, off the event loop.

Why stdlib and not an async wrapper: `sqlite3` ships with Python (no dependency), and the only thing
a wrapper such as aiosqlite adds is running calls on a thread, which `anyio.to_thread` already does
here in a few lines. One connection per process, used by one transaction at a time (an `anyio.Lock`);
other processes are kept consistent by SQLite itself: WAL journal, a busy timeout, and write
transactions that take the write lock up front (`BEGIN IMMEDIATE`).

Only what can wait runs on a worker thread: `BEGIN IMMEDIATE` while another process holds the write
lock (it is tried on the event loop first, with no busy wait; if the lock is taken, a thread waits up
to the busy timeout for it) and a write's `COMMIT` (it may checkpoint the WAL to disk). The statements in between
run on the event loop: with the write lock held, or in WAL mode as a reader, they never wait for a
lock, and a small query takes microseconds where a thread hop takes a tenth of a millisecond or more
on a busy machine (a `chat` turn runs about a dozen statements). A read transaction's COMMIT only
lets go of its snapshot (SQLite checkpoints after writes), and a database in memory
(`KYMA_STORE=off`) has neither another process nor a disk to wait for: those transactions run on
the event loop from BEGIN to COMMIT, with no thread hop at all.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from kyma_mcp.errors import StoreUnavailableError, store_error
from kyma_mcp.store.database import Row

BUSY_SECONDS = 5.0
"""How long a write waits for another process's write before the store reports it locked: the default
of `Timing.store_busy_seconds`, which `open_store` passes."""
FILE_MODE = 0o600
FOLDER_MODE = 0o700


class SQLiteDatabase:
    """A SQLite database; `path=None` keeps it in memory (nothing on disk, gone with the process)."""

    def __init__(
        self, connection: sqlite3.Connection, where: str, *, in_memory: bool = False, busy_seconds: float = BUSY_SECONDS
    ) -> None:
        self._connection = connection
        self._busy_seconds = busy_seconds
        # fast_acquire: an uncontended transaction does not yield to the event loop to begin.
        self._lock = anyio.Lock(fast_acquire=True)
        self._in_memory = in_memory
        self.where = where

    @classmethod
    async def open(cls, path: Path | None, *, busy_seconds: float = BUSY_SECONDS) -> SQLiteDatabase:
        where = str(path) if path is not None else "memory (KYMA_STORE=off)"
        connection = await _run(where, busy_seconds, _connect, path, busy_seconds)
        return cls(connection, where, in_memory=path is None, busy_seconds=busy_seconds)

    @asynccontextmanager
    async def transaction(self, *, write: bool, lock: str | None = None) -> AsyncGenerator[_Transaction]:
        # `lock` needs nothing more here: BEGIN IMMEDIATE already serialises every writer of the file.
        del lock
        async with self._lock:
            if write and not self._in_memory:  # a file's write lock and its commit may wait: a thread
                await self._begin_write()
                try:
                    yield _Transaction(self)
                except BaseException:
                    with anyio.CancelScope(shield=True):
                        await self._call(self._connection.rollback)
                    raise
                with anyio.CancelScope(shield=True):
                    await self._call(self._connection.commit)
                return
            # In memory, or reading (ending a read never checkpoints): nothing waits, nothing to shield.
            self._now(self._connection.execute, "BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield _Transaction(self)
            except BaseException:
                self._now(self._connection.rollback)
                raise
            self._now(self._connection.commit)

    async def _begin_write(self) -> None:
        """BEGIN IMMEDIATE on the event loop when the file's write lock is free, as it nearly always is
        (microseconds, no busy wait: the busy timeout is 0 for that one statement); when another
        process holds it, on a worker thread that waits up to the busy timeout."""
        connection = self._connection
        self._now(connection.execute, "PRAGMA busy_timeout = 0")
        try:
            connection.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.Error as exc:
            name = getattr(exc, "sqlite_errorname", "") or ""
            if not name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
                raise _translate(self.where, self._busy_seconds, exc) from None
        finally:
            self._now(connection.execute, f"PRAGMA busy_timeout = {round(self._busy_seconds * 1000)}")
        await self._call(connection.execute, "BEGIN IMMEDIATE")

    async def aclose(self) -> None:
        async with self._lock:
            await self._call(self._connection.close)

    async def _call(self, function: Callable[..., Any], *args: Any) -> Any:
        """On a worker thread: for what may wait (the write lock, the disk)."""
        return await _run(self.where, self._busy_seconds, function, *args)

    def _now(self, function: Callable[..., Any], *args: Any) -> Any:
        """On the event loop: for statements that cannot wait for a lock."""
        try:
            return function(*args)
        except sqlite3.Error as exc:
            raise _translate(self.where, self._busy_seconds, exc) from None


class _Transaction:
    def __init__(self, database: SQLiteDatabase) -> None:
        self._database = database

    async def execute(self, sql: str, params: Sequence[object] = ()) -> int:
        cursor: sqlite3.Cursor = self._database._now(self._database._connection.execute, sql, params)  # pyright: ignore[reportPrivateUsage]
        return cursor.rowcount

    async def fetch(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        def query() -> list[Row]:
            return self._database._connection.execute(sql, params).fetchall()  # pyright: ignore[reportPrivateUsage]

        return self._database._now(query)  # pyright: ignore[reportPrivateUsage]


def _connect(path: Path | None, busy_seconds: float) -> sqlite3.Connection:
    if path is None:
        target = ":memory:"
    else:
        path.parent.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
        # Created 0600 before SQLite opens it: prompts are private. SQLite gives the -wal and -shm
        # files the database file's mode.
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE))
        os.chmod(path, FILE_MODE)
        target = str(path)
    connection = sqlite3.connect(target, timeout=busy_seconds, isolation_level=None, check_same_thread=False)
    try:
        connection.execute(f"PRAGMA busy_timeout = {round(busy_seconds * 1000)}")
        if path is not None:
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("PRAGMA synchronous = NORMAL")
        connection.execute("PRAGMA foreign_keys = ON")
        connection.execute("SELECT count(*) FROM sqlite_master").fetchone()  # a corrupt file fails here
    except BaseException:
        connection.close()
        raise
    return connection


async def _run(where: str, busy_seconds: float, function: Callable[..., Any], *args: Any) -> Any:
    try:
        return await anyio.to_thread.run_sync(function, *args)
    except sqlite3.Error as exc:
        raise _translate(where, busy_seconds, exc) from None
    except OSError as exc:
        raise store_error(where, f"cannot open the file ({exc.strerror or 'OS error'})") from None


def _translate(where: str, busy_seconds: float, exc: sqlite3.Error) -> StoreUnavailableError:
    name = getattr(exc, "sqlite_errorname", "") or type(exc).__name__
    if name.startswith("SQLITE_BUSY") or name.startswith("SQLITE_LOCKED"):
        seconds = f"{busy_seconds:g}"
        return store_error(
            where, f"the database stayed locked by another program for over {seconds} s", trouble="locked"
        )
    if name.startswith("SQLITE_FULL"):
        return store_error(where, "the disk is full", trouble="full")
    if name.startswith(("SQLITE_NOTADB", "SQLITE_CORRUPT")):
        return store_error(where, "the file is not a readable SQLite database (corrupt or not ours)", corrupt=True)
    if name.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_IOERR")):
        return store_error(where, f"the file cannot be written ({name})")
    return store_error(where, f"SQLite failed ({name})")
