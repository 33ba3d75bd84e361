"""The image-job journal: every job recorded in the store before its submit is sent.

The smallest durable thing that saves money. A call that timed out, or whose server restarted,
left a record with its idempotency key (and, once Kyma answered, its job id):
- a new `generate_image` for the same request while that job is unfinished reuses the key, so
  Kyma answers with the same job instead of billing a second one;
- `get_image_job` finds the job by id from any process, and names its files from the journal's
  prompt words (the same names as the first call), so saved images are found, not downloaded again;
- `get_image_job` without a job id lists recent jobs.

A store that cannot be used makes the journal a no-op (logged, without prompts): image calls work
as they would without it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from kyma_mcp.errors import StoreUnavailableError

if TYPE_CHECKING:
    from kyma_mcp.store import Store, StoreHandle
    from kyma_mcp.store.records import ImageJob

PROMPT_WORDS_CHARS = 200
"""Of the prompt, what the journal keeps: enough for file names (40 characters of it), not the whole text."""
UNFINISHED: frozenset[str] = frozenset({"submitting", "queued", "pending", "running", "processing"})
"""Statuses of a job that may still deliver: a new call for the same request reuses its key."""
REUSE_WITHIN_SECONDS = 86_400.0
"""Kyma's jobs expire well before this; an older unfinished record is not reused."""
_T = TypeVar("_T")

logger = logging.getLogger(__name__)


def fingerprint(model: str, prompt: str, n: int, size: str | None, image_url: str | None) -> str:
    """The same request gives the same fingerprint (a SHA-256; the prompt itself is not kept)."""
    canonical = json.dumps([model, prompt, n, size, image_url], ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def prompt_words(prompt: str) -> str:
    return " ".join(prompt.split())[:PROMPT_WORDS_CHARS]


class JobJournal:
    """The journal over the server's store (None: no journal, e.g. in tests of the image flow alone)."""

    def __init__(self, store: StoreHandle | None) -> None:
        self._store = store

    async def _use(self, operation: Callable[[Store], Awaitable[_T]]) -> _T | None:
        if self._store is None:
            return None
        try:
            return await operation(await self._store.get())
        except StoreUnavailableError as exc:
            logger.warning("image-job journal unavailable: %s", exc)
            return None

    async def key_for(self, request_fingerprint: str) -> str | None:
        """The idempotency key of an unfinished job for this same request, if an earlier call left one."""
        job = await self._use(
            lambda store: store.unfinished_job(
                request_fingerprint=request_fingerprint,
                statuses=UNFINISHED,
                created_after=time.time() - REUSE_WITHIN_SECONDS,
            )
        )
        return job.idempotency_key if job is not None else None

    async def record(self, key: str, *, model: str, prompt: str, request_fingerprint: str) -> None:
        """Write the job down before its submit is sent."""
        from kyma_mcp.store.records import ImageJob  # loaded with the store, on first use

        now = time.time()
        job = ImageJob(
            idempotency_key=key,
            model=model,
            prompt_words=prompt_words(prompt),
            status="submitting",
            created_at=now,
            updated_at=now,
            request_fingerprint=request_fingerprint,
        )
        await self._use(lambda store: store.record_job(job))

    async def update(
        self, key: str, status: str, *, job_id: str | None = None, files: Sequence[str] | None = None
    ) -> None:
        """Once Kyma answered (`job_id`), as the status moves on, and when the files are saved."""
        await self._use(lambda store: store.update_job(key, status=status, now=time.time(), job_id=job_id, files=files))

    async def find(self, job_id: str) -> ImageJob | None:
        return await self._use(lambda store: store.job(job_id=job_id))

    async def recent(self, limit: int) -> list[ImageJob] | None:
        """The latest jobs, newest first; None when there is no usable store."""
        return await self._use(lambda store: store.recent_jobs(limit=limit))
