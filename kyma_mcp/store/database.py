"""What the store needs from a database, whichever it is: transactions that run our SQL.

The SQL is written once with `?` placeholders and portable types (see `schema`); a backend runs it
and turns its own failures into `StoreUnavailableError`, so callers never see a driver exception.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

Row = tuple[Any, ...]


class Transaction(Protocol):
    async def execute(self, sql: str, params: Sequence[object] = ()) -> int:
        """Run one statement; the number of rows it changed."""
        ...

    async def fetch(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        """Run one query; all its rows."""
        ...


class Database(Protocol):
    where: str
    """Where the data lives, for messages (a path, or a PostgreSQL host and database; never a password)."""

    def transaction(self, *, write: bool, lock: str | None = None) -> AbstractAsyncContextManager[Transaction]:
        """One transaction, committed on exit, rolled back on an exception. `write` takes the write
        lock at the start (so a read-then-write cannot interleave with another writer); `lock` also
        serialises every transaction holding the same name, across processes."""
        ...

    async def aclose(self) -> None: ...
