"""kyma-mcp's durable state: one `Store` interface over SQLite (default), memory or PostgreSQL.

Where it lives (`KYMA_STORE`, `KYMA_STORE_URL`):
- default: `store.sqlite3` in the platform data folder that also holds `images/`
  (e.g. `~/.local/share/kyma-mcp/` on Linux), WAL, busy timeout, mode 0600;
- `KYMA_STORE_URL=sqlite:///absolute/path.sqlite3`: another SQLite file;
- `KYMA_STORE_URL=postgresql://user:pass@host/db`: PostgreSQL, shared by replicas (`pip install kyma-mcp[postgres]`);
- `KYMA_STORE=off`: SQLite in memory, nothing written to disk, gone when the process exits.

Nothing is opened at import: `StoreHandle.get()` opens (and migrates) on first use, so start-up
costs nothing and a broken database only affects the calls that need it. Nor is the store's code
loaded at import (`Store`, the record classes, sqlite3, psycopg): importing the server leaves them
out, and the first call that needs the store loads them (`tests/test_store.py` checks it).
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from kyma_mcp.settings import Settings
from kyma_mcp.store.behind import DRAIN_SECONDS, WriteBehind

if TYPE_CHECKING:
    from kyma_mcp.store.api import Store

__all__ = ["Store", "StoreHandle", "default_path", "open_store"]


def __getattr__(name: str) -> object:
    """`kyma_mcp.store.Store`, loaded when first asked for (the record classes take milliseconds to build)."""
    if name == "Store":
        from kyma_mcp.store.api import Store

        return Store
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


STORE_FILE = "store.sqlite3"
PRUNE_EVERY_SECONDS = 3600.0
"""Old conversations are pruned when the store opens, then at most this often."""
SECONDS_PER_DAY = 86_400
LEDGER_DAYS = 62
"""Spend-ledger entries are kept this long: the longest budget period (a month) twice over."""


def default_path() -> Path:
    import platformdirs  # lazy: only opening the store needs it

    return platformdirs.user_data_path("kyma-mcp", appauthor=False) / STORE_FILE


async def open_store(settings: Settings) -> Store:
    """Open (and migrate) the store `settings` name.

    Raises:
        StoreUnavailableError: the database cannot be opened, read or migrated.
    """
    from kyma_mcp.store.api import Store

    url = settings.store_url.get_secret_value() if settings.store_url is not None else None
    if settings.store == "off":
        from kyma_mcp.store.sqlite import SQLiteDatabase

        database = await SQLiteDatabase.open(None)
    elif url is not None and url.startswith(("postgresql://", "postgres://")):
        from kyma_mcp.store.postgres import PostgresDatabase

        database = await PostgresDatabase.open(url)
    else:
        from kyma_mcp.store.sqlite import SQLiteDatabase

        path = Path(url.removeprefix("sqlite://")) if url else default_path()
        database = await SQLiteDatabase.open(path, busy_seconds=settings.timing.store_busy_seconds)
    store = Store(database)
    try:
        await store.migrate()
    except BaseException:
        with anyio.CancelScope(shield=True):
            await store.aclose()
        raise
    return store


class StoreHandle:
    """The server's store, opened on first use and pruned lazily of conversations past retention.

    A failure to open is not remembered: the next call tries again (a full disk may be freed).
    End-of-call records may be written after the reply (`later`, over stdio: see `store/behind.py`);
    `get` waits for them first, and `aclose` too.
    """

    def __init__(self, settings: Settings, behind: WriteBehind | None = None) -> None:
        self._settings = settings
        self._store: Store | None = None
        self._lock = anyio.Lock()
        self._pruned_at = 0.0
        self._behind = behind if behind is not None else WriteBehind()

    def prepare(self) -> None:
        """Import the backend's modules now (from a worker thread), so the first call does not; the
        server's background preparation then opens it (`get`) on the event loop."""
        url = self._settings.store_url.get_secret_value() if self._settings.store_url is not None else ""
        postgres = self._settings.store == "on" and url.startswith(("postgresql://", "postgres://"))
        importlib.import_module("kyma_mcp.store.postgres" if postgres else "kyma_mcp.store.sqlite")
        importlib.import_module("kyma_mcp.store.api")  # with the record classes (milliseconds to build)
        if self._settings.store == "on" and not url:
            default_path()

    async def get(self) -> Store:
        """The open store.

        Raises:
            StoreUnavailableError: it cannot be opened.
        """
        if self._behind.pending:  # this process reads its own writes
            await self._behind.landed()
        if self._store is None:
            async with self._lock:
                if self._store is None:
                    self._store = await open_store(self._settings)
        store = self._store
        if time.time() - self._pruned_at > PRUNE_EVERY_SECONDS:
            self._pruned_at = time.time()
            await prune(store, self._settings)
        return store

    async def later(
        self, write: Callable[[], Awaitable[object]], *, thread: str | None = None, failed: str = ""
    ) -> None:
        """Write an end-of-call record now, or after the reply when that is on (`WriteBehind.later`).
        `write` uses the open `Store` itself: through `get` it would wait for itself.

        Raises:
            StoreUnavailableError: written now, and it failed.
        """
        await self._behind.later(write, thread=thread, failed=failed)

    @property
    def deferring(self) -> bool:
        """Whether `later` writes after the reply (stdio) rather than at once."""
        return self._behind.enabled

    def unsaved(self, conversation_id: str) -> str | None:
        """Why the last record of this thread written after its reply failed, once; None if it did not."""
        return self._behind.unsaved(conversation_id)

    @property
    def opened(self) -> bool:
        """Whether the store is open (and migrated)."""
        return self._store is not None

    async def aclose(self) -> None:
        """Close the store once the records still to be written are (at most `DRAIN_SECONDS`)."""
        with anyio.move_on_after(DRAIN_SECONDS, shield=True):
            await self._behind.landed()
        store, self._store = self._store, None
        if store is not None:
            await store.aclose()


async def prune(store: Store, settings: Settings) -> int:
    """Delete conversations not updated for `KYMA_CONVERSATION_DAYS` days (how many went), spend-ledger
    entries older than `LEDGER_DAYS` and expired confirm tokens."""
    now = time.time()
    await store.prune_ledger(created_before=now - LEDGER_DAYS * SECONDS_PER_DAY, now=now)
    return await store.prune_conversations(updated_before=now - settings.conversation_days * SECONDS_PER_DAY)
