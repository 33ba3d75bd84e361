"""Image jobs: their clock-driven lifecycle, idempotency index and billing
(recorded answers: tests/fixtures/kyma/image_job_*.json).

A job's status is a function of the time since submit: `pending` for the first third of
its delay, `processing` after that, then its outcome. The delay and outcome are fixed at
submit, so flipping a switch never rewrites a job already in flight. Holds settle (or are
refunded) the first time anyone looks after the job has finished.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field

from kyma_mcp.emulator.catalog import Model
from kyma_mcp.emulator.clock import Clock
from kyma_mcp.emulator.ledger import Ledger

TERMINAL = frozenset({"succeeded", "failed", "expired", "refunded"})


@dataclass
class Job:
    id: str
    owner: str
    """The API key that submitted it; any other key gets 404 (INFERRED)."""
    model: Model
    prompt: str
    n: int
    width: int
    height: int
    outcome: str
    delay_seconds: float
    submitted_at: float
    """The emulator clock at submit: drives the status."""
    created_at: float
    """`time.time()` at submit: what the job reports."""
    estimated_cost: float
    charged_amount: float | None = None
    settled: bool = False
    polls: int = 0
    """GET /v1/jobs/{id} answers so far (the first `job_not_found_polls` are 404s: replica lag)."""
    images: dict[int, bytes] = field(default_factory=dict[int, bytes])
    """Rendered PNGs by index, so each is drawn once."""

    @property
    def finishes_at(self) -> float:
        return self.submitted_at + self.delay_seconds

    def status(self, now: float) -> str:
        """Where the job is by the clock; settlement follows it."""
        return self.outcome if now >= self.finishes_at else self._running_status(now)

    def reported_status(self, now: float) -> str:
        """What the API says: terminal only once settled, so status and charged_amount always agree."""
        return self.outcome if self.settled else self._running_status(now)

    def _running_status(self, now: float) -> str:
        return "pending" if now - self.submitted_at < self.delay_seconds / 3 else "processing"


def estimated_cost(model: Model, n: int) -> float:
    """The hold an image submit places: price per image times n."""
    return round(model.per_image_usd * n, 8)


class JobStore:
    """All jobs of the emulator, for every key; thread-safe."""

    def __init__(self, ledger: Ledger, clock: Clock | None = None) -> None:
        self._ledger = ledger
        self._clock = clock or Clock()
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._unsettled: dict[str, Job] = {}
        self._by_idempotency_key: dict[tuple[str, str], str] = {}

    def replay(self, owner: str, idempotency_key: str | None) -> Job | None:
        """The job an earlier submit with the same (key, idempotency key) created, if any."""
        if idempotency_key is None:
            return None
        with self._lock:
            job_id = self._by_idempotency_key.get((owner, idempotency_key))
        return self.get(job_id, owner) if job_id else None

    def submit(
        self,
        *,
        owner: str,
        idempotency_key: str | None,
        model: Model,
        prompt: str,
        n: int,
        size: tuple[int, int],
        outcome: str,
        delay_seconds: float,
    ) -> Job:
        """Create a job and hold its estimated cost; the caller has checked the balance."""
        job = Job(
            id=secrets.token_hex(12),
            owner=owner,
            model=model,
            prompt=prompt,
            n=n,
            width=size[0],
            height=size[1],
            outcome=outcome,
            delay_seconds=delay_seconds,
            submitted_at=self._clock.now(),
            created_at=time.time(),
            estimated_cost=estimated_cost(model, n),
        )
        with self._lock:
            self._ledger.hold(job.estimated_cost, job.id)
            self._jobs[job.id] = job
            self._unsettled[job.id] = job
            if idempotency_key is not None:
                self._by_idempotency_key[(owner, idempotency_key)] = job.id
        return job

    def get(self, job_id: str, owner: str) -> Job | None:
        self.settle_finished()
        with self._lock:
            job = self._jobs.get(job_id)
        return job if job is not None and job.owner == owner else None

    def get_succeeded(self, job_id: str) -> Job | None:
        """A finished, successful job by id alone: image files are served without auth."""
        self.settle_finished()
        with self._lock:
            job = self._jobs.get(job_id)
        return job if job is not None and job.outcome == "succeeded" and job.settled else None

    def in_flight(self) -> list[Job]:
        now = self._clock.now()
        with self._lock:
            return [job for job in self._unsettled.values() if job.status(now) not in TERMINAL]

    def settle_finished(self) -> None:
        """Charge succeeded jobs and refund the others, once each, as they finish."""
        now = self._clock.now()
        with self._lock:
            for job in [job for job in self._unsettled.values() if job.status(now) in TERMINAL]:
                if job.outcome == "succeeded":
                    job.charged_amount = self._ledger.settle(job.id)
                else:
                    self._ledger.refund(job.id)
                    job.charged_amount = 0.0
                job.settled = True
                del self._unsettled[job.id]

    def __len__(self) -> int:
        with self._lock:
            return len(self._jobs)

    def clear(self) -> None:
        with self._lock:
            self._jobs.clear()
            self._unsettled.clear()
            self._by_idempotency_key.clear()
