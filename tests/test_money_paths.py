"""The branches that protect the user's money, each with a gateway that misbehaves exactly there.

- A submit whose answer never came (a timeout, a 5xx) tells the agent the idempotency key to retry
  with, and retrying with it reaches Kyma with the same key (Kyma returns that job, billed once).
- A job that was submitted and then cannot be polled keeps its job id: a poll that keeps failing
  returns `running` with the id; a poll refused outright names the id and `get_image_job`.
- A new job that answers 404 (replica lag), or succeeds without its URLs, is polled again for
  `Timing.replica_lag_seconds`, then named, never waited on to the deadline nor submitted twice.
- `reasoning_effort` reaches the gateway as sent (a model that reasons longer costs more, so the
  agent's choice must not be dropped or replaced).

The journal's key reuse, files found instead of downloaded twice, the spend counted once per job and
a chat never resent after a read failure are covered in test_image_journal.py, test_images.py and
test_client_retries.py.
"""

import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client

from kyma_mcp.server import build_server
from kyma_mcp.settings import Settings
from tests.conftest import FAST_TIMING, TEST_KEY
from tests.results import error_text, structured

pytestmark = pytest.mark.anyio

PNG_1PX_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGMAAQAABQABDQottAAAAABJRU5ErkJggg=="
Route = Callable[[httpx2.Request], Awaitable[httpx2.Response]]


class Gateway:
    """A scripted Kyma: `routes` maps "METHOD path-prefix" to a handler; anything else is a 404 (the
    catalog then falls back to the bundled snapshot). Every request is kept, with its JSON body."""

    def __init__(self, routes: dict[str, Route]) -> None:
        self.routes = routes
        self.seen: list[tuple[str, str, dict[str, Any]]] = []

    async def __call__(self, request: httpx2.Request) -> httpx2.Response:
        path = request.url.path.removeprefix("/v1/")
        body: dict[str, Any] = json.loads(request.content) if request.content else {}
        self.seen.append((request.method, path, body))
        for route, handler in self.routes.items():
            method, _, prefix = route.partition(" ")
            if request.method == method and path.startswith(prefix):
                return await handler(request)
        return httpx2.Response(404, json={"error": {"message": "no such route"}})

    def bodies(self, method: str, prefix: str) -> list[dict[str, Any]]:
        return [body for m, path, body in self.seen if m == method and path.startswith(prefix)]


def client_for(gateway: Gateway, tmp_path: Path, **settings: Any) -> Client:
    config = Settings.model_validate(
        {
            "api_key": TEST_KEY,
            "base_url": "https://kyma.test/v1",
            "output_dir": str(tmp_path),
            "store": "off",
            "max_retries": 0,
            "timing": FAST_TIMING,
            "result_facts": True,
        }
        | settings
    )
    return Client(build_server(config, transport=httpx2.MockTransport(gateway)))


async def hang(request: httpx2.Request) -> httpx2.Response:
    await anyio.sleep(60)
    raise AssertionError("unreachable: the call's deadline passes first")


async def bad_gateway(request: httpx2.Request) -> httpx2.Response:
    return httpx2.Response(502, json={"error": {"message": "upstream hiccup"}})


async def job_submitted(request: httpx2.Request) -> httpx2.Response:
    return httpx2.Response(202, json={"id": "job-1", "status": "pending", "model": "flux-1.1-ultra"})


async def job_succeeded(request: httpx2.Request) -> httpx2.Response:
    return httpx2.Response(
        200,
        json={"id": "job-1", "status": "succeeded", "model": "flux-1.1-ultra", "data": [{"b64_json": PNG_1PX_B64}]},
    )


@pytest.mark.parametrize("failure", [hang, bad_gateway], ids=["no answer in time", "502"])
async def test_an_unanswered_submit_names_its_key_and_retrying_with_it_sends_the_same_key(
    tmp_path: Path, failure: Route
) -> None:
    gateway = Gateway({"POST images/generations": failure})
    arguments = {"prompt": "a lighthouse", "model": "flux-1.1-ultra"}
    async with client_for(gateway, tmp_path, tool_timeout_seconds=0.8) as client:
        with anyio.fail_after(10):
            failed = await client.call_tool("generate_image", arguments)
        hint = re.search(r'retry generate_image with idempotency_key="([^"]+)"', error_text(failed))
        assert hint is not None, error_text(failed)
        key = hint.group(1)

        gateway.routes["POST images/generations"] = job_succeeded
        retried = await client.call_tool("generate_image", arguments | {"idempotency_key": key})

    assert structured(retried)["job_id"] == "job-1"
    submits = gateway.bodies("POST", "images/generations")
    assert [body["idempotency_key"] for body in submits] == [key, key]


async def test_a_job_whose_polls_keep_failing_is_running_with_its_job_id(tmp_path: Path) -> None:
    gateway = Gateway({"POST images/generations": job_submitted, "GET jobs/": bad_gateway})
    async with client_for(gateway, tmp_path, tool_timeout_seconds=0.8) as client:
        with anyio.fail_after(10):
            result = await client.call_tool("generate_image", {"prompt": "a lighthouse", "model": "flux-1.1-ultra"})

    data = structured(result)
    assert (data["status"], data["job_id"]) == ("running", "job-1")
    assert "could not be polled" in data["message"]
    assert len(gateway.bodies("GET", "jobs/")) >= 2, "a failed poll is tried again, not fatal"
    assert len(gateway.bodies("POST", "images/generations")) == 1


async def not_found(request: httpx2.Request) -> httpx2.Response:
    return httpx2.Response(404, json={"error": {"message": "no such job"}})


async def succeeded_without_urls(request: httpx2.Request) -> httpx2.Response:
    return httpx2.Response(200, json={"id": "job-1", "status": "succeeded", "model": "flux-1.1-ultra"})


LAGGING = FAST_TIMING.model_copy(update={"replica_lag_seconds": 0.3})


async def test_a_new_job_not_found_is_waited_out_for_the_replica_lag_and_then_named(tmp_path: Path) -> None:
    gateway = Gateway({"POST images/generations": job_submitted, "GET jobs/": not_found})
    async with client_for(gateway, tmp_path, timing=LAGGING, tool_timeout_seconds=30) as client:
        with anyio.fail_after(10):  # the lag (0.3 s), not the 30 s deadline
            result = await client.call_tool("generate_image", {"prompt": "a lighthouse", "model": "flux-1.1-ultra"})

    assert error_text(result).startswith("[invalid_request] Kyma has no image job 'job-1'")
    assert 'call get_image_job with job_id="job-1"' in error_text(result), "the submitted job keeps its id"
    assert len(gateway.bodies("GET", "jobs/")) >= 3, "404s right after the submit are polled again"
    assert len(gateway.bodies("POST", "images/generations")) == 1


async def test_a_success_without_its_urls_is_waited_out_for_the_replica_lag_and_stays_running(tmp_path: Path) -> None:
    gateway = Gateway({"POST images/generations": job_submitted, "GET jobs/": succeeded_without_urls})
    async with client_for(gateway, tmp_path, timing=LAGGING, tool_timeout_seconds=30) as client:
        with anyio.fail_after(10):
            result = await client.call_tool("generate_image", {"prompt": "a lighthouse", "model": "flux-1.1-ultra"})

    data = structured(result)
    assert (data["status"], data["job_id"]) == ("running", "job-1")
    assert "finishing (no image URL yet)" in data["message"]
    assert len(gateway.bodies("GET", "jobs/")) >= 3, "a success without its URLs is polled again"


async def test_a_poll_refused_after_submission_names_the_job_and_get_image_job(tmp_path: Path) -> None:
    async def forbidden(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(403, json={"error": {"message": "key revoked"}})

    gateway = Gateway({"POST images/generations": job_submitted, "GET jobs/": forbidden})
    async with client_for(gateway, tmp_path) as client:
        result = await client.call_tool("generate_image", {"prompt": "a lighthouse", "model": "flux-1.1-ultra"})

    assert 'call get_image_job with job_id="job-1"' in error_text(result)


STREAM = (
    b'data: {"choices": [{"delta": {"content": "hi"}, "finish_reason": null}]}\n\n'
    b'data: {"choices": [{"delta": {}, "finish_reason": "stop"}]}\n\n'
    b"data: [DONE]\n\n"
)


@pytest.mark.parametrize("effort", ["high", "xhigh", None])
async def test_reasoning_effort_reaches_the_gateway_as_sent(tmp_path: Path, effort: str | None) -> None:
    async def stream(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=STREAM, headers={"content-type": "text/event-stream"})

    gateway = Gateway({"POST chat/completions": stream})
    arguments: dict[str, Any] = {"prompt": "think hard", "model": "deepseek-r1"}
    if effort is not None:
        arguments["reasoning_effort"] = effort
    async with client_for(gateway, tmp_path) as client:
        result = await client.call_tool("chat", arguments)

    assert structured(result)["reply"] == "hi"
    (sent,) = gateway.bodies("POST", "chat/completions")
    assert sent.get("reasoning_effort") == effort
    assert ("reasoning_effort" in sent) == (effort is not None)
