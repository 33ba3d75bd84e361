"""End-of-call records written once the reply is on its way (`WriteBehind`), over stdio.

A chat ends with two writes: its spend-ledger entry and its turn in a thread. Neither changes the
reply, so over stdio they wait until the reply has been written to stdout and then run, instead of
holding the reply up. The rules that keep this safe:

- **Only over stdio** (`serve_stdio` turns it on): the host is this process's only client, and it
  reads the store through this process. Over HTTP the next request may reach another replica that
  shares the store, so there every record is written before the reply, as everywhere by default.
- **Reads wait for the writes left behind**: `StoreHandle.get()`, the one way to the store, first waits
  for them, so a call always sees the records of the calls before it (a thread's last turn, the
  ledger a budget is checked against).
- **Nothing is left behind at exit**: the server's shutdown waits for them (`landed`), up to
  `DRAIN_SECONDS`.
- **A write that fails is said, not lost in silence**: it is logged, and when it names a thread, the
  next call on that thread is told (`unsaved`).
- A write starts when the next response is written (`reply_sent`) or after `REPLY_WAIT_SECONDS`,
  whichever is first: an answer that is never written cannot hold a record back.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable

import anyio

from kyma_mcp.errors import StoreUnavailableError

logger = logging.getLogger(__name__)

REPLY_WAIT_SECONDS = 0.05
"""The longest a record waits for its reply to be written before it is written anyway."""
DRAIN_SECONDS = 10.0
"""At shutdown, how long the records still to be written may take."""
MAX_UNSAVED = 256
"""How many threads whose last record failed are remembered for their next call (the oldest go first)."""


class WriteBehind:
    """The records of calls that have answered and are still to be written (see the module's docstring).

    One writer task at a time writes them in order, then ends; the next record left behind starts
    another. (A task, a shield and a deadline per record cost about as much as the memory store's write.)
    """

    def __init__(self) -> None:
        self.enabled = False
        """Off until stdio serves: then `later` writes after the reply instead of at once."""
        self._replies = 0
        self._queue: deque[tuple[Callable[[], Awaitable[object]], str | None, str]] = deque()
        self._writer: asyncio.Task[None] | None = None
        self._reply: asyncio.Future[None] | None = None
        self._unsaved: OrderedDict[str, str] = OrderedDict()

    def reply_sent(self) -> None:
        """A response has been written to the client: the records waiting for one may start."""
        self._replies += 1
        if self._reply is not None and not self._reply.done():
            self._reply.set_result(None)

    async def later(
        self, write: Callable[[], Awaitable[object]], *, thread: str | None = None, failed: str = ""
    ) -> None:
        """Write now, or once the reply is sent when enabled. A failure then is logged (`failed` says what
        was being written) and, for a `thread`, kept for its next call. Returns when written, or queued.

        Raises:
            StoreUnavailableError: not enabled, and the write failed (the caller says so in its reply).
        """
        if not self.enabled:
            with anyio.CancelScope(shield=True):  # a record is written whole, even if the call is cancelled
                await write()
            return
        self._queue.append((write, thread, failed))
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write_queued(self._replies))

    async def _write_queued(self, replies: int) -> None:
        """Once a reply is out (or `REPLY_WAIT_SECONDS` passed), write the queued records in order."""
        if self._replies == replies:
            loop = asyncio.get_running_loop()
            self._reply = reply = loop.create_future()
            timer = loop.call_later(REPLY_WAIT_SECONDS, _settle, reply)
            try:
                await reply
            finally:
                timer.cancel()
                self._reply = None
        try:
            while self._queue:
                write, thread, failed = self._queue.popleft()
                try:
                    await write()
                except StoreUnavailableError as exc:
                    logger.warning("%s was not written: [%s]", failed or "a record", exc.word)
                    if thread is not None:
                        self._remember(thread, str(exc))
        finally:
            self._writer = None

    def _remember(self, thread: str, reason: str) -> None:
        self._unsaved[thread] = reason
        self._unsaved.move_to_end(thread)
        while len(self._unsaved) > MAX_UNSAVED:
            self._unsaved.popitem(last=False)

    def unsaved(self, thread: str) -> str | None:
        """Why the last record of `thread` left behind was not written, once; None if it was."""
        return self._unsaved.pop(thread, None)

    @property
    def pending(self) -> bool:
        """Whether records are still to be written."""
        return self._writer is not None

    async def landed(self) -> None:
        """Wait until every record left behind so far has been written (or has failed)."""
        while self._writer is not None:
            await asyncio.wait({self._writer})


def _settle(reply: asyncio.Future[None]) -> None:
    if not reply.done():
        reply.set_result(None)
