"""The shared backend: PostgreSQL through psycopg 3 (async) and a psycopg_pool connection pool.

For several kyma-mcp replicas behind a load balancer: any replica can continue any thread. Imported
only when `KYMA_STORE_URL` names PostgreSQL, so the embedded default never loads psycopg.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from contextlib import asynccontextmanager
from typing import LiteralString, cast
from urllib.parse import urlsplit

import psycopg
import psycopg_pool
from psycopg.rows import TupleRow

from kyma_mcp.errors import StoreUnavailableError, store_error
from kyma_mcp.store.database import Row

POOL_MAX_CONNECTIONS = 8
CONNECT_TIMEOUT_SECONDS = 10.0
"""How long opening the pool, or waiting for a free connection, may take before the store is reported down."""


def describe(url: str) -> str:
    """`PostgreSQL at host:port/db`: what messages may show of a URL (never its user or password)."""
    parts = urlsplit(url)
    host = parts.hostname or "local socket"
    port = f":{parts.port}" if parts.port else ""
    return f"PostgreSQL at {host}{port}{parts.path or '/'}"


class PostgresDatabase:
    def __init__(self, pool: psycopg_pool.AsyncConnectionPool[psycopg.AsyncConnection[TupleRow]], where: str) -> None:
        self._pool = pool
        self.where = where

    @classmethod
    async def open(cls, url: str) -> PostgresDatabase:
        where = describe(url)
        pool: psycopg_pool.AsyncConnectionPool[psycopg.AsyncConnection[TupleRow]] = psycopg_pool.AsyncConnectionPool(
            url,
            min_size=1,
            max_size=POOL_MAX_CONNECTIONS,
            kwargs={"autocommit": True},
            timeout=CONNECT_TIMEOUT_SECONDS,
            open=False,
        )
        try:
            # One direct connection first: a refused or misspelt server fails at once, where the pool would retry.
            probe = await psycopg.AsyncConnection.connect(url, connect_timeout=round(CONNECT_TIMEOUT_SECONDS))
            await probe.close()
            await pool.open(wait=True, timeout=CONNECT_TIMEOUT_SECONDS)
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            await pool.close()
            raise _translate(where, exc) from None
        return cls(pool, where)

    @asynccontextmanager
    async def transaction(self, *, write: bool, lock: str | None = None) -> AsyncGenerator[_Transaction]:
        del write  # READ COMMITTED plus row locks and `lock` give the same guarantees as SQLite's writer lock
        try:
            async with self._pool.connection() as connection, connection.transaction():
                if lock is not None:
                    await connection.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (lock,))
                yield _Transaction(connection, self.where)
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            raise _translate(self.where, exc) from None

    async def aclose(self) -> None:
        await self._pool.close()


class _Transaction:
    def __init__(self, connection: psycopg.AsyncConnection[TupleRow], where: str) -> None:
        self._connection = connection
        self._where = where

    async def execute(self, sql: str, params: Sequence[object] = ()) -> int:
        cursor = await self._connection.execute(_placeholders(sql), params)
        return cursor.rowcount

    async def fetch(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        cursor = await self._connection.execute(_placeholders(sql), params)
        return await cursor.fetchall()


def _placeholders(sql: str) -> LiteralString:
    """Our SQL uses `?` (SQLite's style) and never a literal `?` or `%`; psycopg wants `%s`.

    Every statement is a constant of the store package (values always travel as parameters), so
    it is a literal string in all but type: the cast says so."""
    return cast(LiteralString, sql.replace("?", "%s"))


def _translate(where: str, exc: psycopg.Error | psycopg_pool.PoolTimeout) -> StoreUnavailableError:
    if isinstance(exc, psycopg_pool.PoolTimeout | psycopg.OperationalError):
        return store_error(where, f"cannot connect ({type(exc).__name__})")
    code = getattr(exc, "sqlstate", None) or type(exc).__name__
    if code == "53100":
        return store_error(where, "the server's disk is full", trouble="full")
    return store_error(where, f"PostgreSQL failed ({code})")
