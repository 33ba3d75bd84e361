"""Kyma's asynchronous image jobs, end to end: check, submit, wait, download, save, preview.

Kyma answers a submit with a job that is polled until it succeeds, fails, is refunded or
expires (recorded answers: tests/fixtures/kyma/image_job_*.json). Waiting stops before the call's
deadline: a job still running is returned as `status: running` with its id, never as an error,
so a paid image is never lost; `get_image_job` picks it up later, from this process or any other.
Every submit carries an idempotency key, so a retried submit never starts (or bills) a second job.
"""

from __future__ import annotations

import base64
import dataclasses
import itertools
import re
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal, TypeVar

import anyio
import anyio.to_thread
from pydantic import BaseModel, Field

from kyma_mcp.catalog import CatalogView, ModelInfo
from kyma_mcp.errors import (
    InvalidRequestError,
    JobFailedError,
    KymaError,
    ModelNotFoundError,
    PathDeniedError,
    RateLimitedError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
    after_submit,
    bad_inline_image_error,
    call_bytes_exceeded_error,
    download_failed_error,
    edit_needs_image_url_error,
    image_url_not_https_error,
    incomplete_job_error,
    job_failed_error,
    not_an_image_file_error,
    not_an_image_model_error,
    saved_file_unreadable_error,
    submit_timeout_error,
    unusable_job_id_error,
    with_retry_hint,
)
from kyma_mcp.images.files import file_stem, find_saved, output_folder, save
from kyma_mcp.images.journal import JobJournal, fingerprint
from kyma_mcp.images.previews import PREVIEW_MAX_EDGE, Preview, inspect, preview, preview_share
from kyma_mcp.kyma.client import ByteBudget, KymaClient, clip, shown_url, without_credentials
from kyma_mcp.kyma.pacing import JobSlots
from kyma_mcp.kyma.wire import JSONObject, integer, json_list, json_object, number
from kyma_mcp.redaction import scrub_bytes
from kyma_mcp.settings import Bounds, Settings
from kyma_mcp.vision import image_mime_type

if TYPE_CHECKING:
    from kyma_mcp.store.records import ImageJob

FAILED_STATUSES = frozenset({"failed", "refunded", "expired", "cancelled", "canceled", "error"})
"""Kyma documents failed, refunded and expired; the others are what other gateways say."""
SUCCEEDED_STATUSES = frozenset({"succeeded", "completed", "complete", "success", "done"})
RUNNING_STATUSES = frozenset({"pending", "processing", "queued", "running", "in_progress", "starting"})
SYNC_JOB_PREFIX = "sync-"
"""The id given to a synchronous (already finished, already paid) OpenAI-style image answer."""
MAX_IMAGES_PER_JOB = 4
"""generate_image's largest `n`: a job whose `n` is not known keeps at most this many outputs."""
_JOB_ID = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"
_REMEMBERED_JOBS = 512
_V = TypeVar("_V")

ImageSize = Annotated[
    str,
    Field(
        pattern=r"^(auto|[1-9][0-9]{1,4}x[1-9][0-9]{1,4}|[1-9][0-9]?:[1-9][0-9]?)$",
        description="auto, WxH (1024x1024) or W:H (16:9)",
    ),
]
JobId = Annotated[str, Field(min_length=1, max_length=128, pattern=_JOB_ID)]
IdempotencyKey = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[!-~]+$")]
"""Printable ASCII without spaces: it also travels as an HTTP header."""
Progress = Callable[[str], Awaitable[None]]
"""Shows the agent's host what the job is doing (MCP progress); each call is one step."""


class ImageFile(BaseModel):
    url: str
    file: str | None
    width: int | None
    height: int | None


class RecentJob(BaseModel):
    """One journal entry, as get_image_job without a job_id lists it."""

    job_id: str | None
    status: str
    model: str
    prompt_words: str
    files: list[str]
    updated: str


class ImageResult(BaseModel):
    job_id: str | None
    status: Literal["running", "succeeded", "unknown", "dry_run", "listed"] = Field(
        description="running: the job outlived this call; call get_image_job with job_id to keep waiting"
    )
    model: str
    images: list[ImageFile]
    estimated_cost_usd: float | None
    charged_usd: float | None = Field(description="null until the job finishes")
    message: str
    recent_jobs: list[RecentJob] = Field(default_factory=list[RecentJob])

    def text(self) -> str:
        """The readable content: the message, then per image its file, size and URL (or the jobs listed)."""
        lines = [self.message]
        for job in self.recent_jobs:
            files = f"{len(job.files)} file(s)" if job.files else "no files yet"
            lines.append(
                f"- {job.job_id or '(no job id: submit unanswered)'} · {job.status} · {job.model} · "
                f"{job.updated} · {files} · {job.prompt_words[:60]}"
            )
        for position, image in enumerate(self.images, 1):
            size = f"{image.width}x{image.height}" if image.width and image.height else "size unknown"
            lines.append(f"{position}. {image.file or '(not saved)'} ({size})\n   {image.url}")
        return "\n".join(lines)


@dataclass(frozen=True)
class ImageRequest:
    prompt: str
    model: str
    size: str | None = None
    n: int = 1
    image_url: str | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True)
class Delivery:
    """What a tool call returns: the result, its previews, and spend this process has not counted yet."""

    result: ImageResult
    previews: list[Preview]
    newly_charged_usd: float | None = None

    def preview_base64(self) -> list[tuple[str, str]]:
        """(base64 data, MIME type) per preview, ready for MCP image content."""
        return [(base64.b64encode(p.data).decode("ascii"), p.mime_type) for p in self.previews]


@dataclass(frozen=True)
class Job:
    """The parts of Kyma's `image.job` object this module acts on."""

    id: str
    status: str
    model: str
    urls: tuple[str, ...]
    created: datetime
    estimated_cost: float | None
    charged: float | None
    error: str | None
    n: int | None = None
    """How many images the job was asked for, when Kyma says."""

    @classmethod
    def parse(cls, body: JSONObject, *, model: str = "", max_chars: int = Bounds().field_chars) -> Job:
        """Read a job from a submit or poll answer; text fields are cut to `max_chars`.

        Raises:
            UpstreamUnavailableError: the answer has no usable job id or status.
        """
        job_id, status = body.get("id"), body.get("status")
        if status is None and isinstance(body.get("data"), list):  # a synchronous OpenAI-style answer: done, paid
            job_id = job_id if isinstance(job_id, str) else f"{SYNC_JOB_PREFIX}{uuid.uuid4().hex[:20]}"
            status = "succeeded"
        if not isinstance(job_id, str) or not isinstance(status, str) or not status:
            raise incomplete_job_error()
        if len(job_id) > 128 or not re.fullmatch(_JOB_ID, job_id):
            raise unusable_job_id_error(clip(job_id, 40) or job_id)
        urls = output_urls(body)
        error = body.get("error")
        reason = error if isinstance(error, str) else json_object(error).get("message")
        n = integer(body.get("n")) or integer(json_object(body.get("input")).get("n"))
        return cls(
            id=job_id,
            status=clip(status, 40) or status,
            model=clip(body["model"], max_chars) or model if isinstance(body.get("model"), str) else model,
            n=n if n is not None and n > 0 else None,
            urls=tuple(urls),
            created=_timestamp(body.get("created_at")),
            estimated_cost=number(body.get("estimated_cost")),
            charged=number(body.get("charged_amount")),
            error=reason[:300] if isinstance(reason, str) and reason else None,
        )

    @property
    def state(self) -> Literal["running", "succeeded", "failed", "unknown"]:
        """The status as kyma-mcp acts on it; a word it does not know is `unknown`, never `running`."""
        status = self.status.casefold()
        if status in SUCCEEDED_STATUSES:
            return "succeeded"
        if status in FAILED_STATUSES:
            return "failed"
        return "running" if status in RUNNING_STATUSES else "unknown"

    @property
    def finished(self) -> bool:
        """Succeeded (or an unknown status) with its URLs (they can lag the status a moment), or failed for good."""
        return (self.state in ("succeeded", "unknown") and bool(self.urls)) or self.state == "failed"


MAX_URL_CHARS = 8192


def output_urls(body: JSONObject) -> list[str]:
    """Every image a job answer names: `output.url`, `output.urls`, `output.images`, `output` as a list,
    or a synchronous `data` list, each item a URL or `{url}` (`{b64_json}` becomes a data URL)."""
    output: object = body.get("output")
    fields = json_object(output)
    found: list[object] = json_list(output) or ([output] if isinstance(output, str) else [])
    if fields:
        found = [*json_list(fields.get("urls")), *json_list(fields.get("images"))] or [fields.get("url")]
    found = found or json_list(body.get("data"))
    urls: list[str] = []
    for item in found:
        fields = json_object(item)
        url = item if isinstance(item, str) else fields.get("url")
        if isinstance(url, str) and url.startswith(("https://", "http://")) and len(url) <= MAX_URL_CHARS:
            urls.append(url)
        elif isinstance(b64 := fields.get("b64_json"), str) and b64:
            urls.append(f"data:image/png;base64,{b64}")
    return list(dict.fromkeys(urls))  # output.url is often output.urls[0] too


def check_request(view: CatalogView, request: ImageRequest) -> str:
    """The model id to send, once the request is known not to be refused; before spending.

    The gateway is the judge: only what its live model list says refuses a call here. An id it
    does not list, or one known only from the bundled snapshot, goes to the gateway as given.

    Raises:
        ModelNotFoundError: the live list names it as a model of another kind.
        InvalidRequestError: the live list names an edit model and no `image_url` was given, or an
            `image_url` that is not https.
    """
    if request.image_url and not request.image_url.startswith("https://"):
        raise image_url_not_https_error()
    model = view.find(request.model) if view.live else None
    if model is None or model.kind == "unknown":
        return request.model
    if model.kind != "image":
        raise unknown_image_model(request.model, view.models, model)
    if model.has("image_edit") and not request.image_url:
        raise edit_needs_image_url_error(model.id)
    return model.id


def unknown_image_model(
    model_id: str, catalog: Sequence[ModelInfo], model: ModelInfo | None = None
) -> ModelNotFoundError:
    """`model_id` is a model of another kind (`model`), or one the gateway does not serve."""
    return not_an_image_model_error(
        model_id,
        kind=model.kind if model else None,
        image_models=[(m.id, m.image_usd) for m in catalog if m.kind == "image" and m.offered()],
    )


class ImageJobs:
    """Submits, waits for and delivers image jobs; remembers the prompts and charges it has seen."""

    def __init__(self, client: KymaClient, settings: Settings, journal: JobJournal | None = None) -> None:
        self._client = client
        self._journal = journal or JobJournal(None)
        self._output_dir = settings.output_dir
        # Waiting stops this long before the deadline, leaving time to download and preview.
        self._delivery_seconds = min(8.0, 0.25 * settings.tool_timeout_seconds)
        # Delivery stops this long before the deadline, so a late result is still returned, not cut off.
        self._margin_seconds = min(1.0, 0.1 * settings.tool_timeout_seconds)
        self._bounds = settings.bounds
        self._poll_seconds = settings.timing.job_poll_seconds
        self._lag_seconds = settings.timing.replica_lag_seconds
        self._prompts: dict[str, str] = {}
        self._asked: dict[str, int] = {}
        self._counted: dict[str, None] = {}
        self._slots = JobSlots()

    async def generate(
        self, request: ImageRequest, view: CatalogView, *, deadline_at: float, progress: Progress
    ) -> Delivery:
        """Submit a job and wait for it until shortly before `deadline_at` (an anyio clock time).

        Raises:
            KymaError: the request is invalid, Kyma refused it, or the job failed.
        """
        model_id = check_request(view, request)
        folder = output_folder(self._output_dir)  # a bad folder fails before anything is spent
        # The journal first: a call that died after submitting left its key, and reusing it gets that job.
        request_print = fingerprint(model_id, request.prompt, request.n, request.size, request.image_url)
        key = request.idempotency_key or await self._journal.key_for(request_print) or uuid.uuid4().hex
        await self._journal.record(key, model=model_id, prompt=request.prompt, request_fingerprint=request_print)
        payload: JSONObject = {"model": model_id, "prompt": request.prompt, "n": request.n, "idempotency_key": key}
        if request.size is not None:
            payload["size"] = request.size
        if request.image_url is not None:
            payload["image_url"] = request.image_url
        await progress(f"Submitting {request.n} image(s) to {model_id}")
        submit_by = deadline_at - self._delivery_seconds
        slot = await self._slots.acquire(self._client.limits.image_jobs, submit_by)
        try:
            job = await self._submit(payload, view.models, submit_by)
        except BaseException:
            self._slots.release(slot)
            raise
        self._slots.started(slot, job.id)
        await self._journal.update(key, job.status, job_id=job.id)
        _remember(self._prompts, job.id, request.prompt)
        _remember(self._asked, job.id, request.n)
        await progress(f"Job {job.id}: {job.status}")
        try:
            return await self._journaled(
                key, job, folder, deadline_at, deadline_at - self._delivery_seconds, progress, submitted=True
            )
        except (JobFailedError, PathDeniedError):
            raise
        except KymaError as exc:
            raise after_submit(exc, job.id) from None

    async def _journaled(
        self,
        key: str | None,
        job: Job,
        folder: Path,
        deadline_at: float,
        wait_until: float,
        progress: Progress,
        *,
        submitted: bool = False,
    ) -> Delivery:
        """`_follow`, then the outcome written to the journal (failed, still running, or the saved files)."""
        try:
            delivery = await self._follow(job, folder, deadline_at, wait_until, progress, submitted=submitted)
        except JobFailedError:
            if key is not None:
                await self._journal.update(key, "failed")
            raise
        if key is not None:
            files = [image.file for image in delivery.result.images if image.file]
            await self._journal.update(key, delivery.result.status, files=files or None)
        return delivery

    async def recent(self, limit: int) -> Delivery:
        """The journal's latest jobs, newest first (get_image_job without a job_id)."""
        jobs = await self._journal.recent(limit)
        if jobs is None:
            message = "No job journal is available (the store cannot be used); pass job_id to check a job."
        else:
            message = f"The {len(jobs)} latest image job(s), newest first; pass a job_id to get one's images."
        result = ImageResult(
            job_id=None,
            status="listed",
            model="",
            images=[],
            estimated_cost_usd=None,
            charged_usd=None,
            message=message,
            recent_jobs=[_recent(job) for job in jobs or ()],
        )
        return Delivery(result, [])

    async def resume(
        self, job_id: str, *, wait_seconds: float | None, deadline_at: float, progress: Progress
    ) -> Delivery:
        """Check a job (any job of this API key) and wait up to `wait_seconds` for it to finish.

        Raises:
            KymaError: unknown job, Kyma unreachable, or the job failed.
        """
        wait_until = deadline_at - self._delivery_seconds
        if wait_seconds is not None:
            wait_until = min(wait_until, anyio.current_time() + wait_seconds)
        folder = output_folder(self._output_dir)
        entry = await self._journal.find(job_id)
        if entry is not None and job_id not in self._prompts:
            # Another process (or this one before a restart) submitted it: name its files as that call did.
            _remember(self._prompts, job_id, entry.prompt_words)
        try:
            job = Job.parse(await self._client.get_job(job_id), max_chars=self._bounds.field_chars)
            await progress(f"Job {job.id}: {job.status}")
            key = entry.idempotency_key if entry is not None else None
            return await self._journaled(key, job, folder, deadline_at, wait_until, progress)
        except (JobFailedError, PathDeniedError):
            raise
        except KymaError as exc:
            if isinstance(exc, InvalidRequestError) and job_id not in self._asked and entry is None:
                raise  # an id this server never submitted: it may simply be wrong
            raise after_submit(exc, job_id) from None

    async def _submit(self, payload: JSONObject, catalog: Sequence[ModelInfo], submit_by: float) -> Job:
        key = payload["idempotency_key"]
        try:
            with anyio.fail_at(submit_by):
                return Job.parse(await self._client.submit_image(payload), model=payload["model"])
        except TimeoutError:
            raise with_retry_hint(submit_timeout_error(), key) from None
        except (UpstreamTimeoutError, UpstreamUnavailableError) as exc:
            raise with_retry_hint(exc, key) from None
        except ModelNotFoundError:
            raise unknown_image_model(payload["model"], catalog) from None

    async def _follow(
        self,
        job: Job,
        folder: Path,
        deadline_at: float,
        wait_until: float,
        progress: Progress,
        *,
        submitted: bool = False,
    ) -> Delivery:
        started = anyio.current_time()
        job, trouble = await self._wait(job, wait_until, progress, submitted=submitted)
        if job.finished:
            self._slots.release(job.id)
        if job.state == "failed":
            raise job_failed_error(
                job.id, job.model, job.status, reason=job.error, charged=job.charged, held=job.estimated_cost
            )
        if job.state == "unknown" and not job.urls:
            return self._running(
                job,
                f"Job {job.id} reports status '{job.status}', which kyma-mcp does not know; it is not taken as "
                "running or failed.",
                status="unknown",
            )
        if not job.finished:
            waited = anyio.current_time() - started
            state = "finishing (no image URL yet)" if job.state == "succeeded" else job.status
            note = f" Kyma could not be polled at the end ({trouble})." if trouble else ""
            return self._running(job, f"Job {job.id} is still {state} at Kyma after {waited:.0f} s.{note}")
        with anyio.move_on_at(deadline_at - self._margin_seconds):
            return await self._deliver(job, folder, progress, deadline_at - self._margin_seconds)
        return self._running(job, f"Job {job.id} succeeded, but its images did not download before the deadline.")

    async def _wait(
        self, job: Job, until: float, progress: Progress, *, submitted: bool = False
    ) -> tuple[Job, str | None]:
        """Poll until the job is finished or `until`; a poll that fails is retried, not fatal.

        A job just `submitted` may 404 for `Timing.replica_lag_seconds`; a success without its URLs is
        waited out as long; an unknown status stops the wait (it is reported, not guessed at).
        """
        trouble: KymaError | None = None
        started = anyio.current_time()
        lagging_since: float | None = None
        pauses = itertools.chain(self._poll_seconds, itertools.repeat(self._poll_seconds[-1]))
        with anyio.move_on_at(until):
            while not job.finished:
                if job.state == "succeeded":  # without its URLs: replica lag, waited out for a bounded time
                    lagging_since = lagging_since or anyio.current_time()
                    if anyio.current_time() - lagging_since > self._lag_seconds:
                        break
                pause = next(pauses)
                if isinstance(trouble, RateLimitedError) and trouble.retry_after_seconds:
                    pause = max(pause, trouble.retry_after_seconds)
                await anyio.sleep(pause)
                try:
                    job = Job.parse(
                        await self._client.get_job(job.id), model=job.model, max_chars=self._bounds.field_chars
                    )
                except (UpstreamUnavailableError, UpstreamTimeoutError, RateLimitedError) as exc:
                    trouble = exc
                    await progress(f"Job {job.id}: status check failed ({exc.word}); trying again")
                    continue
                except InvalidRequestError as exc:  # 404: the new job may not have reached every replica yet
                    if not submitted or anyio.current_time() - started > self._lag_seconds:
                        raise
                    trouble = exc
                    await progress(f"Job {job.id}: not visible yet; trying again")
                    continue
                trouble = None
                await progress(f"Job {job.id}: {job.status} ({anyio.current_time() - started:.0f} s)")
                if job.state == "unknown":
                    break
        return job, str(trouble) if trouble else None

    async def _deliver(self, job: Job, folder: Path, progress: Progress, done_by: float) -> Delivery:
        """Fetch each image once (a file saved by an earlier call is reused), save it, preview it.

        At most `n` outputs are kept (the rest are ignored with a note), within the call's byte
        bound; previews are made one by one in a thread and stop at `done_by`, so the deadline holds.
        """
        prompt = self._prompts.get(job.id)
        asked = self._asked.get(job.id) or job.n or MAX_IMAGES_PER_JOB
        notes: list[str] = []
        if len(job.urls) > asked:
            notes.append(
                f"Kyma listed {len(job.urls)} outputs for {asked} image(s) asked; only the first {asked} kept."
            )
            job = dataclasses.replace(job, urls=job.urls[:asked])
        stems = [
            file_stem(created=job.created, model=job.model, prompt=prompt, job_id=job.id, index=number)
            for number in range(1, len(job.urls) + 1)
        ]
        saved = [find_saved(folder, stem) for stem in stems]
        if missing := sum(path is None for path in saved):
            await progress(f"Job {job.id}: downloading {missing} image(s)")
        contents: list[bytes] = [b""] * len(stems)
        failures: list[KymaError] = []
        budget = ByteBudget(self._bounds.image_bytes_per_call)

        async def fetch(index: int) -> None:
            # Failures are collected, not raised: a task group would wrap them in an ExceptionGroup.
            try:
                contents[index] = await self._fetch(job, index, saved[index], budget)
            except KymaError as exc:
                failures.append(exc)

        async with anyio.create_task_group() as group:
            for index in range(len(stems)):
                group.start_soon(fetch, index)
        if failures:
            raise failures[0]
        await progress(f"Job {job.id}: saving and making previews")
        files = await anyio.to_thread.run_sync(
            _save_all, folder, stems, saved, contents, self._bounds.image_pixels, self._client.secrets
        )
        previews = await self._previews(contents, done_by)
        if len(previews) < len(contents):
            notes.append(f"{len(contents) - len(previews)} preview(s) left out (too large or out of time).")
        newly_charged = None
        if job.id not in self._counted:
            _remember(self._counted, job.id, None)
            newly_charged = job.charged
        return Delivery(_succeeded(job, files, folder, notes), previews, newly_charged)

    async def _previews(self, contents: Sequence[bytes], done_by: float) -> list[Preview]:
        """One preview per image, each in a thread; those not started or finished by `done_by` are left out.

        A thread cannot be cancelled, so the call stops waiting at `done_by` and the thread runs
        on in the background: its work is bounded by `Bounds.image_pixels`.
        """
        previews: list[Preview] = []
        max_bytes = preview_share(len(contents))
        with anyio.move_on_at(done_by):
            for data in contents:
                made = await anyio.to_thread.run_sync(
                    preview, data, max_bytes, self._bounds.image_pixels, abandon_on_cancel=True
                )
                if made is not None:
                    previews.append(made)
        return previews

    async def _fetch(self, job: Job, index: int, saved: Path | None, budget: ByteBudget) -> bytes:
        """Image `index` of the job: the file an earlier call saved, else a download that must be an image."""
        try:
            if saved is not None:
                return await anyio.Path(saved).read_bytes()
            url = job.urls[index]
            data = _inline(url, budget) if url.startswith("data:") else await self._client.download(url, budget)
            if image_mime_type(data[:16]) is None:
                raise not_an_image_file_error(shown_url(job.urls[index]))
            return data
        except OSError as exc:
            raise saved_file_unreadable_error(saved, exc.strerror) from None
        except KymaError as exc:
            raise download_failed_error(job.id, index + 1, exc) from None

    def _running(self, job: Job, what: str, status: Literal["running", "unknown"] = "running") -> Delivery:
        held = f" ${job.estimated_cost:g} is held for it." if job.estimated_cost is not None else ""
        message = (
            f'{what}{held} Nothing is lost: call get_image_job with job_id="{job.id}" to keep waiting; '
            "it does not submit or charge again."
        )
        result = ImageResult(
            job_id=job.id,
            status=status,
            model=job.model,
            images=[],
            estimated_cost_usd=job.estimated_cost,
            charged_usd=job.charged,
            message=message,
        )
        return Delivery(result, [])


def _inline(url: str, budget: ByteBudget) -> bytes:
    """The image a `b64_json` answer carried inline (as a data URL), counted against the call's budget."""
    try:
        data = base64.b64decode(url.partition(",")[2], validate=True)
    except ValueError:
        raise bad_inline_image_error() from None
    budget.left -= len(data)
    if budget.left < 0:
        raise call_bytes_exceeded_error("the inline image", budget.total)
    return data


def _recent(job: ImageJob) -> RecentJob:
    return RecentJob(
        job_id=job.job_id,
        status=job.status,
        model=job.model,
        prompt_words=job.prompt_words,
        files=list(job.files),
        updated=datetime.fromtimestamp(job.updated_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )


def _save_all(
    folder: Path,
    stems: Sequence[str],
    saved: Sequence[Path | None],
    contents: Sequence[bytes],
    max_pixels: int,
    secrets: tuple[str, ...],
) -> list[tuple[Path, int | None, int | None]]:
    """Blocking work, run in a thread: write new files (no key in their metadata) and read their
    sizes from their headers."""
    files: list[tuple[Path, int | None, int | None]] = []
    for stem, path, data in zip(stems, saved, contents, strict=True):
        facts = inspect(data, max_pixels)
        kept = path or save(folder, stem, facts.extension, scrub_bytes(data, secrets))
        files.append((kept, facts.width, facts.height))
    return files


def _succeeded(
    job: Job, files: Sequence[tuple[Path, int | None, int | None]], folder: Path, notes: Sequence[str] = ()
) -> ImageResult:
    count = f"{len(files)} image{'s' if len(files) != 1 else ''}"
    cost = f"charged ${job.charged:g}" if job.charged is not None else f"estimated ${job.estimated_cost or 0:g}"
    message = (
        f"{count} from {job.model} (job {job.id}, {cost}), saved in {folder}. The previews are JPEGs "
        f"downscaled to at most {PREVIEW_MAX_EDGE} px; the files are full size."
    )
    message = " ".join([message, *notes])
    return ImageResult(
        job_id=job.id,
        status="succeeded",
        model=job.model,
        images=[
            ImageFile(
                url="(inline b64_json)" if url.startswith("data:") else without_credentials(url),
                file=str(path),
                width=width,
                height=height,
            )
            for url, (path, width, height) in zip(job.urls, files, strict=True)
        ],
        estimated_cost_usd=job.estimated_cost,
        charged_usd=job.charged,
        message=message,
    )


def _remember(memory: dict[str, _V], job_id: str, value: _V) -> None:
    """Keep `value` for `job_id`, forgetting the oldest entry beyond `_REMEMBERED_JOBS`."""
    memory[job_id] = value
    if len(memory) > _REMEMBERED_JOBS:
        del memory[next(iter(memory))]


def _timestamp(value: object) -> datetime:
    """A job's `created_at` (ISO 8601 or epoch seconds); now when absent or unreadable."""
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return datetime.now(UTC)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            pass
    return datetime.now(UTC)
