"""Image generation as Kyma runs it: an async job, polled, with real PNG files
(recorded answers: tests/fixtures/kyma/image_job_*.json).

POST /v1/images/generations answers 202 with an `image.job` (200 with the same job when an
`idempotency_key` is replayed), GET /v1/jobs/{id} polls it, and a succeeded job's images are
served without auth at `<root>/files/<job id>/<index>.png`: real PNGs of the requested size,
a gradient whose colours come from a SHA-256 of the prompt (same prompt, same bytes).

Sizes: "WxH" with both sides in 64..4096 is honoured exactly; an aspect such as "16:9", or a
"WxH" out of range, maps to the nearest of the documented aspects, drawn with a long edge of
1024 (see `ASPECT_SIZES`); "auto" and anything unrecognised use 1:1.
INFERRED: `output.urls` lists every image when n > 1 (`output.url` is the first); the
`error` codes of forced outcomes; `charged_amount` is 0 once a hold is refunded.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
from datetime import UTC, datetime
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kyma_mcp.emulator.errors import insufficient_balance, invalid_request, model_not_found, not_found
from kyma_mcp.emulator.jobs import Job, estimated_cost
from kyma_mcp.emulator.parsing import (
    authenticate,
    json_object,
    optional_integer,
    optional_string,
    required_string,
)
from kyma_mcp.emulator.ratelimit import Refusal
from kyma_mcp.emulator.state import EmulatorState

MAX_PROMPT_CHARS = 4000
MAX_IMAGES = 4
MAX_IDEMPOTENCY_KEY_CHARS = 128
EXACT_SIDE_RANGE = range(64, 4097)

ASPECT_SIZES: dict[str, tuple[int, int]] = {
    "1:1": (1024, 1024),
    "16:9": (1024, 576),
    "9:16": (576, 1024),
    "4:3": (1024, 768),
    "3:4": (768, 1024),
    "21:9": (1024, 440),
}
DEFAULT_ASPECT = "1:1"

_OUTCOME_ERRORS: dict[str, dict[str, str]] = {
    "failed": {"message": "The image provider failed to render this prompt. The hold was refunded.", "code": "failed"},
    "expired": {"message": "The job timed out before it finished. The hold was refunded.", "code": "expired"},
    "refunded": {"message": "The job was cancelled and refunded.", "code": "refunded"},
}
_PIXELS = re.compile(r"(\d+)x(\d+)")
_RATIO = re.compile(r"(\d+):(\d+)")


def image_size(size: str | None) -> tuple[int, int]:
    """The pixel size a job renders for the request's `size`."""
    text = (size or "auto").strip().lower()
    if text in ASPECT_SIZES:
        return ASPECT_SIZES[text]
    if match := _PIXELS.fullmatch(text):
        width, height = int(match[1]), int(match[2])
        if width in EXACT_SIDE_RANGE and height in EXACT_SIDE_RANGE:
            return width, height
        return _nearest_aspect(width, height)
    if (match := _RATIO.fullmatch(text)) and int(match[1]) and int(match[2]):
        return _nearest_aspect(int(match[1]), int(match[2]))
    return ASPECT_SIZES[DEFAULT_ASPECT]


def _nearest_aspect(width: int, height: int) -> tuple[int, int]:
    if not (width and height):
        return ASPECT_SIZES[DEFAULT_ASPECT]
    wanted = math.log(width / height)
    return min(ASPECT_SIZES.values(), key=lambda pixels: abs(math.log(pixels[0] / pixels[1]) - wanted))


def render_png(prompt: str, index: int, width: int, height: int) -> bytes:
    """A smooth four-colour gradient picked by the prompt; cheap even at 4096x4096."""
    from PIL import Image  # lazy: only image downloads pay for Pillow

    digest = hashlib.sha256(f"{index}:{prompt}".encode()).digest()
    corners = Image.frombytes("RGB", (2, 2), digest[:12])
    # Pillow's stubs mention numpy types; without numpy installed pyright sees them as unknown.
    gradient = corners.resize((width, height), Image.Resampling.BILINEAR)  # pyright: ignore[reportUnknownMemberType]
    buffer = io.BytesIO()
    gradient.save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def job_view(
    job: Job, root_url: str, now: float, *, output_shape: str = "kyma", success_word: str = "succeeded"
) -> dict[str, Any]:
    """The `image.job` object, as submit and poll both return it; `output_shape` and `success_word`
    imitate other gateways (see `Switches.job_output_shape`)."""
    status = job.reported_status(now)
    urls = [f"{root_url}/files/{job.id}/{index}.png" for index in range(job.n)]
    outputs: dict[str, object] = {
        "kyma": {"url": urls[0], "urls": urls},
        "url": {"url": urls[0]},
        "list": [{"url": url} for url in urls],
        "images": {"images": urls},
    }
    return {
        "id": job.id,
        "object": "image.job",
        "status": success_word if status == "succeeded" else status,
        "model": job.model.id,
        "created_at": _iso(job.created_at),
        "completed_at": _iso(job.created_at + job.delay_seconds) if job.settled else None,
        "output": outputs[output_shape] if status == "succeeded" else None,
        "error": _OUTCOME_ERRORS.get(status),
        "estimated_cost": job.estimated_cost,
        "charged_amount": job.charged_amount,
    }


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ImageRoutes:
    """Submit, poll and download, bound to the emulator's state."""

    def __init__(self, state: EmulatorState) -> None:
        self._state = state

    def routes(self) -> list[Route]:
        return [
            Route("/v1/images/generations", self.submit, methods=["POST"]),
            Route("/v1/jobs/{job_id}", self.poll, methods=["GET"]),
            Route("/files/{job_id}/{index:int}.png", self.download, methods=["GET"]),
        ]

    async def submit(self, request: Request) -> Response:
        state, switches = self._state, self._state.switches
        key = authenticate(request)
        if failure := state.pop_failure():
            raise failure
        body = await json_object(request)
        requested = required_string(body, "model")
        resolved = state.catalog.resolve(requested)
        if resolved is None:
            raise model_not_found(requested)
        model = resolved[0]
        if model.kind != "image":
            raise invalid_request(
                f"Model '{model.id}' is a chat model; use POST /v1/chat/completions.", "invalid_model"
            )
        prompt = required_string(body, "prompt")
        if len(prompt) > MAX_PROMPT_CHARS:
            raise invalid_request(f"'prompt' must be at most {MAX_PROMPT_CHARS} characters.")
        n = optional_integer(body, "n", 1, MAX_IMAGES) or 1
        size = image_size(optional_string(body, "size"))
        if model.needs_image_url and not optional_string(body, "image_url"):
            raise invalid_request(f"{model.id} edits an image: 'image_url' is required.", "image_url_required")
        idempotency_key = optional_string(body, "idempotency_key", max_length=MAX_IDEMPOTENCY_KEY_CHARS)

        root_url = _root_url(request)
        if replayed := state.jobs.replay(key, idempotency_key):
            return JSONResponse(self._view(replayed, root_url), status_code=200)
        if switches.enforce_rate_limits and (refusal := self._concurrency_refusal()):
            raise state.rate_limit_error(refusal)
        if not state.ledger.can_afford(estimated_cost(model, n)):
            raise insufficient_balance()
        synchronous = switches.dialect == "openai"  # answered at once, already paid: no job to poll
        job = state.jobs.submit(
            owner=key,
            idempotency_key=idempotency_key,
            model=model,
            prompt=prompt,
            n=n,
            size=size,
            outcome=switches.image_outcome,
            delay_seconds=0 if synchronous else switches.image_delay_seconds,
        )
        if synchronous:
            state.jobs.settle_finished()
            urls = [f"{root_url}/files/{job.id}/{index}.png" for index in range(job.n)]
            return JSONResponse({"created": int(job.created_at), "data": [{"url": url} for url in urls]})
        return JSONResponse(self._view(job, root_url), status_code=202)

    async def poll(self, request: Request) -> Response:
        key = authenticate(request)
        job_id = str(request.path_params["job_id"])
        job = self._state.jobs.get(job_id, key)
        lagging = job is not None and job.polls < self._state.switches.job_not_found_polls
        if job is not None:
            job.polls += 1
        if job is None or lagging:
            raise not_found(f"Job '{job_id}' not found.", "job_not_found")
        return JSONResponse(self._view(job, _root_url(request)))

    def _view(self, job: Job, root_url: str) -> dict[str, Any]:
        switches = self._state.switches
        return job_view(
            job,
            root_url,
            self._state.clock.now(),
            output_shape="url" if switches.dialect == "documented" else switches.job_output_shape,
            success_word=switches.job_success_word,
        )

    async def download(self, request: Request) -> Response:
        job_id = str(request.path_params["job_id"])
        index = int(request.path_params["index"])
        job = self._state.jobs.get_succeeded(job_id)
        if job is None or index >= job.n:
            raise not_found(f"No image {index} for job '{job_id}'.")
        if index not in job.images:
            job.images[index] = await anyio.to_thread.run_sync(render_png, job.prompt, index, job.width, job.height)
        return Response(job.images[index], media_type="image/png")

    def _concurrency_refusal(self) -> Refusal | None:
        """Media limits count jobs in flight, not requests (`image_concurrent` in kyma_mcp/data/tiers.json)."""
        in_flight = self._state.jobs.in_flight()
        cap = self._state.limits.image_jobs_in_flight
        if len(in_flight) < cap:
            return None
        frees_at = min(job.finishes_at for job in in_flight)
        return Refusal(f"{cap} image jobs in flight", max(1, math.ceil(frees_at - self._state.clock.now())))


def _root_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")
