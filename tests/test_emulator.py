"""The Kyma emulator, over real HTTP on loopback: what reference/kyma-api.md documents, and its switches."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Iterator
from importlib import resources
from typing import Any

import anyio
import httpx2
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from kyma_mcp.emulator import EmulatorHandle, Switches, create_app, running_emulator
from kyma_mcp.emulator.catalog import TierLimits, load_catalog
from kyma_mcp.emulator.chat import ChatRequest, Message, complete
from kyma_mcp.emulator.clock import Clock
from kyma_mcp.emulator.images import image_size
from kyma_mcp.emulator.ratelimit import RateWindow
from kyma_mcp.emulator.runner import build_parser, switches_from_args

KEY = "ky-test-0123456789"
OTHER_KEY = "kyma-other-key"
CATALOG = json.loads((resources.files("kyma_mcp") / "data" / "catalog.json").read_text(encoding="utf-8"))
TIERS = json.loads((resources.files("kyma_mcp") / "data" / "tiers.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def module_emulator() -> Iterator[EmulatorHandle]:
    with running_emulator() as handle:
        yield handle


@pytest.fixture
def emu(module_emulator: EmulatorHandle) -> EmulatorHandle:
    """One server for the module, back to a healthy $10 Tier 0 account before each test."""
    module_emulator.state.reset()
    return module_emulator


@pytest.fixture
def client(emu: EmulatorHandle) -> Iterator[httpx2.Client]:
    with httpx2.Client(base_url=emu.base_url, headers={"Authorization": f"Bearer {KEY}"}, timeout=10) as http:
        yield http


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def chat(client: httpx2.Client, text: str = "Hello there, how are you?", **body: Any) -> httpx2.Response:
    return client.post("/chat/completions", json={"model": "qwen-3.6-plus", "messages": user(text), **body})


def sse_events(response: httpx2.Response) -> list[str]:
    return [line.removeprefix("data: ") for line in response.text.splitlines() if line.startswith("data: ")]


def error_of(response: httpx2.Response) -> dict[str, Any]:
    return response.json()["error"]


def wait_for_job(client: httpx2.Client, job_id: str, *, timeout: float = 5) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/jobs/{job_id}").json()
        if job["status"] not in ("pending", "processing") or time.monotonic() > deadline:
            return job
        time.sleep(0.02)


# --- public endpoints and auth ---------------------------------------------------------------


def test_public_endpoints_answer_without_a_key_and_serve_the_bundled_data(emu: EmulatorHandle) -> None:
    with httpx2.Client(base_url=emu.base_url) as anonymous:
        models = anonymous.get("/models")
        tiers = anonymous.get("/limits/tiers")
        pricing = anonymous.get("/pricing")
        capabilities = anonymous.get("/capabilities")

    assert models.json() == {"object": "list", "data": CATALOG["data"], "aliases": CATALOG["aliases"]}
    assert tiers.json() == TIERS
    assert tiers.headers["cache-control"] == "public, max-age=300"
    prices = pricing.json()
    assert pricing.headers["cache-control"] == "public, max-age=60"
    assert prices["object"] == "pricing.catalog"
    assert [row["id"] for row in prices["text"]] == sorted(row["id"] for row in prices["text"])
    assert (prices["text_count"], prices["media_count"]) == (len(prices["text"]), len(prices["media"]))
    assert {row["id"]: row["usd_per_call"] for row in prices["media"]}["flux-1.1-ultra"] == 0.081
    assert capabilities.json()["max_tokens_default"] == 4096


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer km-mcp-only-key", "Bearer sk-openai-key", "Bearer ky-", "Basic ky-abc", "ky-no-scheme"],
)
def test_refuses_requests_without_a_rest_key(emu: EmulatorHandle, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = httpx2.get(f"{emu.base_url}/credits/balance", headers=headers)

    assert response.status_code == 401
    assert error_of(response) == {
        "message": "Invalid API key. Check your key starts with ky-",
        "type": "authentication_error",
        "code": "invalid_api_key",
    }


@pytest.mark.parametrize("key", ["ky-current-style", "kyma-older-style"])
def test_accepts_ky_and_kyma_keys(emu: EmulatorHandle, key: str) -> None:
    response = httpx2.get(f"{emu.base_url}/credits/balance", headers={"Authorization": f"Bearer {key}"})

    assert response.status_code == 200
    assert response.json() == {
        "balance": 10.0,
        "low_balance": False,
        "currency": "USD",
        "tier": 0,
        "lifetime_purchased": 0.0,
    }


def test_unknown_endpoints_answer_in_the_error_envelope(client: httpx2.Client) -> None:
    missing = client.get("/no-such-thing")
    wrong_method = client.get("/chat/completions")

    assert (missing.status_code, error_of(missing)["code"]) == (404, "not_found")
    assert (wrong_method.status_code, error_of(wrong_method)["code"]) == (405, "method_not_allowed")


# --- chat ------------------------------------------------------------------------------------


def test_chat_completion_has_the_openai_shape_kyma_usage_and_charges_its_cost(
    emu: EmulatorHandle, client: httpx2.Client
) -> None:
    response = chat(client, "Hello there, how are you?")

    body = response.json()
    assert response.status_code == 200
    assert response.headers["x-kyma-model"] == "qwen-3.6-plus"
    assert "x-kyma-alias" not in response.headers
    assert "x-kyma-fallback" not in response.headers
    assert body["object"] == "chat.completion"
    assert body["model"] == "qwen-3.6-plus"
    assert body["id"].startswith("chatcmpl-")
    [choice] = body["choices"]
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"].startswith("Echo from qwen-3.6-plus: Hello there, how are you?")
    assert choice["finish_reason"] == "stop"
    usage = body["usage"]
    assert usage["prompt_tokens"] == 5 + 4
    assert usage["completion_tokens"] == len(choice["message"]["content"].split()) == 24
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert (usage["cached_tokens"], usage["cache_write_tokens"], usage["cache_discount"]) == (0, 0, 0)
    assert usage["cost"] == round((9 * 0.655 + 24 * 3.93) / 1_000_000, 8)
    assert emu.state.balance == round(10.0 - usage["cost"], 8)
    assert emu.state.charge_count == 1


def test_chat_reply_is_deterministic_for_the_same_prompt(client: httpx2.Client) -> None:
    first = chat(client, "Name three rivers").json()["choices"][0]["message"]["content"]
    again = chat(client, "Name three rivers").json()["choices"][0]["message"]["content"]
    other = chat(client, "Name three mountains").json()["choices"][0]["message"]["content"]

    assert first == again
    assert first != other


def test_streamed_reply_is_the_same_text_one_word_per_chunk_then_usage_and_done(client: httpx2.Client) -> None:
    whole = chat(client, "Stream me something").json()

    response = chat(client, "Stream me something", stream=True, stream_options={"include_usage": True})

    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-kyma-model"] == "qwen-3.6-plus"
    events = sse_events(response)
    assert events[-1] == "[DONE]"
    *content_chunks, usage_chunk = [json.loads(event) for event in events[:-1]]
    assert content_chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in content_chunks)
    assert [chunk["choices"][0]["finish_reason"] for chunk in content_chunks] == [None] * 23 + ["stop"]
    text = "".join(chunk["choices"][0]["delta"]["content"] for chunk in content_chunks)
    assert text == whole["choices"][0]["message"]["content"]
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"] == whole["usage"]


def test_stream_without_include_usage_has_no_usage_chunk(client: httpx2.Client) -> None:
    events = sse_events(chat(client, "[[words=3]] hi", stream=True))

    assert len(events) == 3 + 1
    assert all("usage" not in json.loads(event) for event in events[:-1])


def test_alias_is_resolved_and_reported_in_headers(client: httpx2.Client) -> None:
    response = chat(client, model="best")

    assert response.headers["x-kyma-alias"] == "best"
    assert response.headers["x-kyma-model"] == "qwen-3.6-plus"
    assert response.json()["model"] == "qwen-3.6-plus"


@pytest.mark.parametrize(
    ("model", "text", "max_tokens", "expected_tokens", "finish_reason"),
    [
        ("qwen-3.6-plus", "[[words=50]] go", 10, 10, "length"),
        ("qwen-3.6-plus", "[[words=50]] go", 50, 50, "stop"),
        ("qwen-3.6-plus", "[[words=5000]] go", None, 4096, "length"),
        ("gemma-4-31b", "[[words=9000]] go", 20000, 8192, "length"),
    ],
    ids=["max_tokens", "exactly_enough", "default_4096", "model_cap"],
)
def test_output_is_cut_at_max_tokens_the_default_and_the_model_cap(
    client: httpx2.Client, model: str, text: str, max_tokens: int | None, expected_tokens: int, finish_reason: str
) -> None:
    body = chat(client, text, model=model, max_tokens=max_tokens).json()

    assert body["usage"]["completion_tokens"] == expected_tokens
    assert len(body["choices"][0]["message"]["content"].split()) == expected_tokens
    assert body["choices"][0]["finish_reason"] == finish_reason


def test_unknown_model_is_404_model_not_found(client: httpx2.Client) -> None:
    response = chat(client, model="gpt-9")

    assert response.status_code == 404
    assert error_of(response) == {
        "message": "Model 'gpt-9' not found. Check model ID with GET /v1/models",
        "type": "invalid_request_error",
        "code": "model_not_found",
    }


def test_image_model_cannot_chat(client: httpx2.Client) -> None:
    response = chat(client, model="flux-1.1-ultra")

    assert response.status_code == 400
    assert error_of(response)["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    "body",
    [
        {"messages": []},
        {"messages": "hello"},
        {"messages": [{"role": "robot", "content": "hi"}]},
        {"messages": [{"role": "user", "content": 42}]},
        {"messages": [{"role": "user", "content": [{"type": "audio"}]}]},
        {"temperature": 2.5},
        {"top_p": -0.1},
        {"max_tokens": 0},
        {"max_tokens": "100"},
        {"stream": "yes"},
        {"response_format": {"type": "yaml"}},
        {"model": None},
    ],
)
def test_invalid_chat_requests_are_400(client: httpx2.Client, body: dict[str, Any]) -> None:
    response = client.post("/chat/completions", json={"model": "qwen-3.6-plus", "messages": user("hi"), **body})

    assert response.status_code == 400
    assert error_of(response)["type"] == "invalid_request_error"


def test_a_body_that_is_not_json_is_400(client: httpx2.Client) -> None:
    response = client.post("/chat/completions", content=b"{not json", headers={"content-type": "application/json"})

    assert response.status_code == 400


def test_images_need_a_vision_model_and_the_reply_counts_them(client: httpx2.Client) -> None:
    parts = [
        {"type": "text", "text": "What is in these?"},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
    ]
    messages = [{"role": "user", "content": parts}]

    refused = client.post("/chat/completions", json={"model": "llama-3.3-70b", "messages": messages})
    seen = client.post("/chat/completions", json={"model": "vision", "messages": messages})

    assert refused.status_code == 400
    assert error_of(refused)["code"] == "vision_not_supported"
    assert seen.status_code == 200
    assert seen.json()["choices"][0]["message"]["content"].startswith("Echo from gemma-4-31b (saw 2 images): What")


def test_json_object_response_format_answers_a_json_object(client: httpx2.Client) -> None:
    body = chat(client, "Give me JSON", response_format={"type": "json_object"}).json()

    content = body["choices"][0]["message"]["content"]
    assert json.loads(content)["echo"].startswith("Echo from qwen-3.6-plus: Give me JSON")
    assert body["usage"]["completion_tokens"] == len(content.split()) == 24


# --- faults, fallback, money, limits -----------------------------------------------------------


def test_fail_next_429_sends_retry_after_then_the_gateway_recovers(emu: EmulatorHandle, client: httpx2.Client) -> None:
    emu.switches.fail_next = [429]
    emu.switches.retry_after_seconds = 2
    emu.switches.retry_after_ms = 1500

    limited = chat(client)
    recovered = chat(client)

    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "2"
    assert limited.headers["retry-after-ms"] == "1500"
    assert error_of(limited) == {
        "message": "Rate limit exceeded (30 requests/minute). Try again in a few seconds.",
        "type": "rate_limit",
        "code": "rate_limited",
    }
    assert recovered.status_code == 200
    assert emu.state.charge_count == 1


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_fail_next_5xx_is_an_upstream_error(emu: EmulatorHandle, client: httpx2.Client, status: int) -> None:
    emu.switches.fail_next = [status, status]

    responses = [chat(client).status_code, chat(client).status_code, chat(client).status_code]

    assert responses == [status, status, 200]


def test_fail_next_also_applies_to_image_submits(emu: EmulatorHandle, client: httpx2.Client) -> None:
    emu.switches.fail_next = [503]

    response = client.post("/images/generations", json={"model": "flux-1.1-ultra", "prompt": "a fox"})

    assert (response.status_code, error_of(response)["code"]) == (503, "upstream_error")
    assert emu.state.ledger.held == 0


@pytest.mark.parametrize(
    ("layer", "served"),
    [(1, "qwen-3.6-plus"), (3, "llama-3.3-70b")],
)
def test_fallback_layers_set_headers_and_layer_3_swaps_the_model(
    emu: EmulatorHandle, client: httpx2.Client, layer: int, served: str
) -> None:
    emu.switches.fallback_layer = layer

    response = chat(client, model="best")

    assert response.headers["x-kyma-fallback"] == "true"
    assert response.headers["x-kyma-fallback-layer"] == str(layer)
    assert response.headers["x-kyma-model"] == served
    assert response.json()["model"] == served
    assert response.json()["choices"][0]["message"]["content"].startswith(f"Echo from {served}:")


def test_402_once_the_balance_runs_out(emu: EmulatorHandle, client: httpx2.Client) -> None:
    emu.switches.balance_usd = 0.00005

    last_paid = chat(client)
    refused = chat(client)

    assert last_paid.status_code == 200
    assert emu.state.balance <= 0
    assert refused.status_code == 402
    assert error_of(refused) == {
        "message": "Insufficient balance. Top up at https://kymaapi.com/billing",
        "type": "insufficient_balance",
        "code": "insufficient_balance",
        "cta_url": "https://kymaapi.com/billing",
    }
    assert client.get("/credits/balance").json()["low_balance"] is True


def test_image_hold_above_the_balance_is_402(emu: EmulatorHandle, client: httpx2.Client) -> None:
    emu.switches.balance_usd = 0.1

    refused = client.post("/images/generations", json={"model": "flux-1.1-ultra", "prompt": "a fox", "n": 2})

    assert refused.status_code == 402
    assert emu.state.balance == 0.1


def test_tier_0_rpm_is_enforced_over_the_window(emu: EmulatorHandle, client: httpx2.Client) -> None:
    emu.switches.enforce_rate_limits = True
    emu.state.clock.freeze()  # the 60 s window moves only when the test moves the clock
    models = ["qwen-3.6-plus", "llama-3.3-70b"]  # alternate: one model alone would hit its 25 RPM first

    statuses = [chat(client, "hi", model=models[i % 2]).status_code for i in range(30)]
    limited = chat(client, "hi", model="glm-4.7-flash")
    limits = client.get("/auth/limits").json()
    emu.state.clock.advance(59.5)
    still_limited = chat(client, "hi", model="glm-4.7-flash")
    emu.state.clock.advance(1)
    after_window = chat(client, "hi")

    assert statuses == [200] * 30
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "60"
    assert error_of(limited)["message"] == "Rate limit exceeded (30 requests/minute). Try again in a few seconds."
    assert (limits["rpm_used"], limits["rpm_remaining"]) == (30, 0)
    assert (still_limited.status_code, still_limited.headers["retry-after"]) == (429, "1")
    assert after_window.status_code == 200


def test_per_model_rpm_limits_one_model_only(emu: EmulatorHandle, client: httpx2.Client) -> None:
    emu.switches.enforce_rate_limits = True

    statuses = [chat(client, "hi").status_code for _ in range(26)]
    other_model = chat(client, "hi", model="llama-3.3-70b")

    assert statuses == [200] * 25 + [429]
    assert other_model.status_code == 200


def test_rate_window_counts_tokens_per_minute() -> None:
    limits = TierLimits(
        tier=0, rpm=100, per_model_rpm=100, tpm=50, max_single_request=50, image_concurrent=1,
        image_jobs_in_flight=1, min_deposit=0,
    )  # fmt: skip
    clock = Clock()
    clock.freeze()
    window = RateWindow(clock)

    def admit(tokens: int) -> Any:
        return window.admit(model="m", tokens=tokens, limits=limits, window=60, enforce=True)

    assert admit(30) is None
    clock.advance(10)
    refusal = admit(30)
    assert refusal is not None
    assert refusal.limit == "50 tokens/minute"
    assert refusal.retry_after_seconds == 50  # when the first 30 tokens leave the window
    assert admit(20) is None
    assert window.usage(60) == (2, 50)
    clock.advance(50)
    assert window.usage(60) == (1, 20)
    assert admit(30) is None


def test_auth_limits_follow_the_tier(emu: EmulatorHandle, client: httpx2.Client) -> None:
    emu.switches.tier = 2
    chat(client)

    limits = client.get("/auth/limits").json()
    balance = client.get("/credits/balance").json()

    assert limits == {
        "tier": 2,
        "rpm_limit": 120,
        "rpm_used": 1,
        "rpm_remaining": 119,
        "per_model_rpm": 80,
        "tpm_limit": 2_000_000,
        "max_single_request": 1_000_000,
        "image_concurrent": 20,
        "has_credits": True,
        "used_today": 1,
    }
    assert (balance["tier"], balance["lifetime_purchased"]) == (2, 50)


def test_image_jobs_in_flight_are_capped_per_tier(emu: EmulatorHandle, client: httpx2.Client) -> None:
    emu.switches.enforce_rate_limits = True
    emu.switches.image_delay_seconds = 30

    statuses = [
        client.post("/images/generations", json={"model": "recraft-v3", "prompt": f"p{i}"}).status_code
        for i in range(9)
    ]

    assert statuses == [202] * 8 + [429]  # Tier 0: 2 running + 6 queued


def test_stream_can_drop_mid_way_without_done(emu: EmulatorHandle, client: httpx2.Client) -> None:
    emu.switches.drop_stream_after_chunks = 3
    received: list[str] = []

    body = {"model": "best", "messages": user("hi"), "stream": True}

    with pytest.raises(httpx2.RemoteProtocolError), client.stream("POST", "/chat/completions", json=body) as stream:
        received.extend(line for line in stream.iter_lines() if line.startswith("data: "))

    assert len(received) == 3
    assert "data: [DONE]" not in received


def test_a_client_that_leaves_ends_its_stream(emu: EmulatorHandle, client: httpx2.Client) -> None:
    emu.switches.token_interval_ms = 50
    body = {"model": "best", "messages": user("[[words=200]] long"), "stream": True}

    with client.stream("POST", "/chat/completions", json=body) as stream:
        lines = stream.iter_lines()  # held: a discarded iterator would close the response at once
        next(lines)
        assert emu.state.open_streams == 1
    deadline = time.monotonic() + 2
    while emu.state.open_streams and time.monotonic() < deadline:
        time.sleep(0.01)

    assert emu.state.open_streams == 0


def test_stream_timing_switches_delay_the_first_and_later_chunks(emu: EmulatorHandle, client: httpx2.Client) -> None:
    emu.switches.first_byte_delay_ms = 150
    emu.switches.token_interval_ms = 20
    started = time.monotonic()
    arrivals: list[float] = []

    with client.stream(
        "POST", "/chat/completions", json={"model": "best", "messages": user("[[words=6]] hi"), "stream": True}
    ) as s:
        arrivals.extend(time.monotonic() - started for line in s.iter_lines() if line.startswith("data: {"))

    assert len(arrivals) == 6
    assert arrivals[0] >= 0.15
    assert emu.state.first_chunk_at is not None
    assert emu.state.first_chunk_at >= started + 0.15  # the same monotonic clock: one process
    assert arrivals[-1] - arrivals[0] >= 5 * 0.02 * 0.8


def test_a_models_own_first_byte_delay_holds_back_only_its_streams(emu: EmulatorHandle, client: httpx2.Client) -> None:
    emu.switches.update({"model_first_byte_ms": {"qwen-3.6-plus": 150}})
    started = time.monotonic()

    with client.stream(
        "POST", "/chat/completions", json={"model": "qwen-3.6-plus", "messages": user("hi"), "stream": True}
    ) as s:
        first = next(time.monotonic() - started for line in s.iter_lines() if line.startswith("data: {"))

    assert first >= 0.15
    assert emu.switches.to_json()["model_first_byte_ms"] == {"qwen-3.6-plus": 150.0}


def test_hang_never_answers_until_the_client_gives_up(emu: EmulatorHandle, client: httpx2.Client) -> None:
    emu.switches.hang = True

    with pytest.raises(httpx2.ReadTimeout):
        client.get("/models", timeout=0.2)

    emu.switches.hang = False
    assert client.get("/models").status_code == 200


def test_a_hung_request_does_not_block_shutdown() -> None:
    answers: list[int] = []

    with running_emulator(Switches(hang=True)) as emulator:
        waiter = threading.Thread(target=lambda: answers.append(httpx2.get(f"{emulator.base_url}/models").status_code))
        waiter.start()
        for _ in range(1000):  # until the request hangs in the server (at most 10 s)
            if emulator.state.requests["/v1/models"]:
                break
            time.sleep(0.01)
    waiter.join(5)

    # A 503, not a dropped connection: the hung request was let go, not cut off by the shutdown backstop.
    assert answers == [503]


def test_latency_delays_responses_without_serialising_200_concurrent_requests(emu: EmulatorHandle) -> None:
    emu.switches.latency_ms = 300
    emu.switches.gather_chats = 200  # answered only once all 200 wait in the emulator at once

    async def burst() -> list[int]:
        limits = httpx2.Limits(max_connections=250)
        headers = {"Authorization": f"Bearer {KEY}"}
        async with httpx2.AsyncClient(base_url=emu.base_url, headers=headers, limits=limits, timeout=10) as http:
            statuses: list[int] = []

            async def one(i: int) -> None:
                body = {"model": "best", "messages": user(f"request {i}"), "max_tokens": 8}
                statuses.append((await http.post("/chat/completions", json=body)).status_code)

            async with anyio.create_task_group() as group:
                for i in range(200):
                    group.start_soon(one, i)
            return statuses

    started = time.monotonic()
    statuses = anyio.run(burst)
    elapsed = time.monotonic() - started

    # All 200 held at once: one after another, the latency would keep the last beyond the 10 s timeout.
    assert statuses == [200] * 200
    assert elapsed >= 0.3  # the latency was applied (a sleep never ends early)


def test_gather_chats_answers_a_group_sent_together_and_holds_a_smaller_one(emu: EmulatorHandle) -> None:
    emu.switches.gather_chats = 3

    async def burst(count: int, wait: float) -> list[int | str]:
        headers = {"Authorization": f"Bearer {KEY}"}
        async with httpx2.AsyncClient(base_url=emu.base_url, headers=headers, timeout=10) as http:
            outcomes: list[int | str] = []

            async def one(i: int) -> None:
                body = {"model": "best", "messages": user(f"request {i}"), "max_tokens": 8}
                try:
                    outcomes.append((await http.post("/chat/completions", json=body, timeout=wait)).status_code)
                except httpx2.ReadTimeout:
                    outcomes.append("held")

            async with anyio.create_task_group() as group:
                for i in range(count):
                    group.start_soon(one, i)
            return outcomes

    assert anyio.run(burst, 3, 10) == [200, 200, 200]
    assert anyio.run(burst, 2, 0.5) == ["held", "held"]  # let go when the switch is reset


def test_echo_key_in_errors_leaks_the_key_on_purpose(emu: EmulatorHandle, client: httpx2.Client) -> None:
    emu.switches.echo_key_in_errors = True

    response = chat(client, model="gpt-9")

    assert KEY in error_of(response)["message"]


# --- images ------------------------------------------------------------------------------------


def test_image_job_goes_pending_processing_succeeded_with_a_real_png_of_the_exact_size(
    emu: EmulatorHandle, client: httpx2.Client
) -> None:
    submitted = client.post(
        "/images/generations", json={"model": "flux-1.1-ultra", "prompt": "a lighthouse", "size": "4000x3000"}
    )
    job = submitted.json()
    seen = [job["status"]]
    while seen[-1] in ("pending", "processing"):
        time.sleep(0.03)
        job = client.get(f"/jobs/{job['id']}").json()
        seen.append(job["status"])

    assert submitted.status_code == 202
    assert len(job["id"]) == 24
    assert int(job["id"], 16) >= 0
    assert submitted.json()["output"] is None
    assert submitted.json()["charged_amount"] is None
    assert submitted.json()["created_at"].endswith("Z")
    assert [status for i, status in enumerate(seen) if i == 0 or status != seen[i - 1]] == [
        "pending",
        "processing",
        "succeeded",
    ]
    assert job["object"] == "image.job"
    assert job["completed_at"].endswith("Z")
    assert job["error"] is None
    assert job["estimated_cost"] == job["charged_amount"] == 0.081
    assert emu.state.balance == round(10 - 0.081, 8)
    assert emu.state.charge_count == 1

    image = httpx2.get(job["output"]["url"])  # no auth on files
    assert image.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(image.content)).size == (4000, 3000)
    assert job["output"]["urls"] == [job["output"]["url"]]


def test_same_prompt_draws_the_same_png(emu: EmulatorHandle, client: httpx2.Client) -> None:
    emu.switches.image_delay_seconds = 0
    urls: list[str] = []
    for _ in range(2):
        job_id = client.post("/images/generations", json={"model": "ideogram-v3", "prompt": "a logo"}).json()["id"]
        urls.append(wait_for_job(client, job_id)["output"]["url"])

    first, second = (httpx2.get(url).content for url in urls)

    assert urls[0] != urls[1]
    assert first == second
    assert Image.open(io.BytesIO(first)).size == (1024, 1024)


def test_n_images_are_listed_in_output_urls(emu: EmulatorHandle, client: httpx2.Client) -> None:
    emu.switches.image_delay_seconds = 0
    job_id = client.post(
        "/images/generations", json={"model": "recraft-v3", "prompt": "icons", "n": 3, "size": "16:9"}
    ).json()["id"]

    job = wait_for_job(client, job_id)
    pngs = [httpx2.get(url) for url in job["output"]["urls"]]

    assert job["estimated_cost"] == job["charged_amount"] == round(0.054 * 3, 8)
    assert [png.status_code for png in pngs] == [200, 200, 200]
    assert len({png.content for png in pngs}) == 3
    assert Image.open(io.BytesIO(pngs[0].content)).size == (1024, 576)
    assert httpx2.get(job["output"]["url"].replace("/0.png", "/3.png")).status_code == 404


def test_idempotent_replay_returns_the_same_job_and_charges_once(emu: EmulatorHandle, client: httpx2.Client) -> None:
    body = {"model": "flux-1.1-ultra", "prompt": "a bridge", "idempotency_key": "order-42"}

    first = client.post("/images/generations", json=body)
    replay = client.post("/images/generations", json=body)
    other_key = httpx2.post(
        f"{emu.base_url}/images/generations", json=body, headers={"Authorization": f"Bearer {OTHER_KEY}"}
    )

    assert (first.status_code, replay.status_code, other_key.status_code) == (202, 200, 202)
    assert replay.json()["id"] == first.json()["id"]
    assert other_key.json()["id"] != first.json()["id"]
    wait_for_job(client, first.json()["id"])
    assert client.post("/images/generations", json=body).json()["status"] == "succeeded"
    assert emu.state.balance == round(10 - 2 * 0.081, 8)  # this key once, the other key once


@pytest.mark.parametrize("outcome", ["failed", "expired", "refunded"])
def test_forced_outcome_refunds_the_hold(emu: EmulatorHandle, client: httpx2.Client, outcome: str) -> None:
    emu.switches.image_outcome = outcome
    emu.switches.image_delay_seconds = 0.05

    job_id = client.post("/images/generations", json={"model": "flux-1.1-ultra", "prompt": "x"}).json()["id"]
    assert emu.state.balance == round(10 - 0.081, 8)
    job = wait_for_job(client, job_id)

    assert job["status"] == outcome
    assert job["output"] is None
    assert job["error"]["code"] == outcome
    assert job["error"]["message"]
    assert job["charged_amount"] == 0
    assert emu.state.balance == 10.0
    assert emu.state.charge_count == 0


def test_unknown_or_foreign_job_is_404(emu: EmulatorHandle, client: httpx2.Client) -> None:
    emu.switches.image_delay_seconds = 60  # keeps the job pending however slow this machine is
    job_id = client.post("/images/generations", json={"model": "flux-1.1-ultra", "prompt": "x"}).json()["id"]

    unknown = client.get("/jobs/0123456789abcdef01234567")
    foreign = httpx2.get(f"{emu.base_url}/jobs/{job_id}", headers={"Authorization": f"Bearer {OTHER_KEY}"})
    file_of_pending_job = httpx2.get(f"{emu.root_url}/files/{job_id}/0.png")

    assert (unknown.status_code, error_of(unknown)["code"]) == (404, "job_not_found")
    assert foreign.status_code == 404
    assert file_of_pending_job.status_code == 404


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"model": "flux-kontext-pro", "prompt": "make it blue"}, 400, "image_url_required"),
        ({"model": "qwen-3.6-plus", "prompt": "x"}, 400, "invalid_model"),
        ({"model": "no-such-image-model", "prompt": "x"}, 404, "model_not_found"),
        ({"model": "flux-1.1-ultra"}, 400, "invalid_request"),
        ({"model": "flux-1.1-ultra", "prompt": "x" * 4001}, 400, "invalid_request"),
        ({"model": "flux-1.1-ultra", "prompt": "x", "n": 5}, 400, "invalid_request"),
        ({"model": "flux-1.1-ultra", "prompt": "x", "n": 0}, 400, "invalid_request"),
        ({"model": "flux-1.1-ultra", "prompt": "x", "idempotency_key": "k" * 129}, 400, "invalid_request"),
    ],
)
def test_invalid_image_requests(client: httpx2.Client, body: dict[str, Any], status: int, code: str) -> None:
    response = client.post("/images/generations", json=body)

    assert response.status_code == status
    assert error_of(response)["code"] == code


def test_edit_model_accepts_an_image_url(client: httpx2.Client) -> None:
    body = {"model": "flux-kontext-pro", "prompt": "make it blue", "image_url": "https://example.com/in.png"}

    assert client.post("/images/generations", json=body).status_code == 202


@pytest.mark.parametrize(
    ("size", "pixels"),
    [
        (None, (1024, 1024)),
        ("auto", (1024, 1024)),
        ("4000x3000", (4000, 3000)),
        ("64x4096", (64, 4096)),
        ("16:9", (1024, 576)),
        ("9:16", (576, 1024)),
        ("21:9", (1024, 440)),
        ("3:2", (1024, 768)),
        ("8000x4500", (1024, 576)),
        ("huge", (1024, 1024)),
    ],
)
def test_image_size_maps_aspects_and_honours_exact_pixels(size: str | None, pixels: tuple[int, int]) -> None:
    assert image_size(size) == pixels


@given(st.text(max_size=30))
def test_any_size_string_gives_a_drawable_size(size: str) -> None:
    width, height = image_size(size)

    assert 64 <= width <= 4096
    assert 64 <= height <= 4096


# --- the reply, as a pure function ----------------------------------------------------------------


@given(
    text=st.text(max_size=200),
    reply_words=st.integers(min_value=1, max_value=80),
    max_tokens=st.none() | st.integers(min_value=1, max_value=100),
    json_mode=st.booleans(),
)
def test_reply_pieces_rebuild_the_content_and_count_its_tokens(
    text: str, reply_words: int, max_tokens: int | None, json_mode: bool
) -> None:
    model = load_catalog().models["qwen-3.6-plus"]
    request = ChatRequest(
        model=model,
        alias=None,
        messages=(Message("user", text, 0),),
        max_tokens=max_tokens,
        stream=False,
        include_usage=False,
        json_mode=json_mode,
    )

    completion = complete(request, model, reply_words)

    assert "".join(completion.pieces) == completion.content
    assert len(completion.pieces) == completion.completion_tokens <= (max_tokens or 4096)
    assert completion.finish_reason == ("length" if reply_words > (max_tokens or 4096) else "stop")
    if json_mode:
        assert isinstance(json.loads(completion.content)["echo"], str)


# --- control plane and CLI --------------------------------------------------------------------------


def test_control_endpoints_read_update_and_reset_the_live_switches(emu: EmulatorHandle, client: httpx2.Client) -> None:
    control = f"{emu.root_url}/_emulator"
    assert httpx2.get(f"{control}/switches").json() == Switches().to_json()

    updated = httpx2.post(f"{control}/switches", json={"latency_ms": 5, "fail_next": [503], "tier": 3})

    assert updated.status_code == 200
    assert (emu.switches.latency_ms, emu.switches.fail_next, emu.switches.tier) == (5.0, [503], 3)
    assert chat(client).status_code == 503
    assert chat(client).status_code == 200
    state = httpx2.get(f"{control}/state").json()
    assert state["requests"] == {"/v1/chat/completions": 2}
    assert state["charges"] == 1
    assert state["balance"] == emu.state.balance < 10

    reset = httpx2.post(f"{control}/reset")

    assert reset.json() == Switches().to_json()
    assert emu.switches.tier == 0
    assert httpx2.get(f"{control}/state").json() == {
        "balance": 10.0,
        "total_charged": 0,
        "charges": 0,
        "held": 0,
        "requests": {},
        "jobs": 0,
        "jobs_in_flight": 0,
        "open_streams": 0,
        "first_chunk_at": None,
        "rate_window": {"requests": 0, "tokens": 0},
    }


@pytest.mark.parametrize(
    "changes",
    [
        {"no_such_switch": 1},
        {"tier": "2"},
        {"hang": 1},
        {"latency_ms": True},
        {"fail_next": [503, "429"]},
        {"tier": 9},
        {"fail_next": [418]},
        {"image_outcome": "exploded"},
        {"fallback_model": "flux-1.1-ultra"},
        {"rate_window_seconds": 0},
        {"model_first_byte_ms": {"qwen-3.6-plus": -1}},
        {"model_first_byte_ms": [200]},
    ],
)
def test_bad_switch_updates_are_400_and_change_nothing(emu: EmulatorHandle, changes: dict[str, Any]) -> None:
    response = httpx2.post(f"{emu.root_url}/_emulator/switches", json={"latency_ms": 7, **changes})

    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_switch"
    assert emu.switches.latency_ms == 0


def test_switches_from_command_line() -> None:
    args = build_parser().parse_args(
        [
            "--port", "0", "--tier", "3", "--latency-ms", "25", "--token-interval-ms", "5", "--balance", "2.5",
            "--image-delay", "1.5", "--enforce-rate-limits", "--rate-window", "10",
        ]
    )  # fmt: skip

    switches = switches_from_args(args)

    assert (args.host, args.port) == ("127.0.0.1", 0)
    assert switches == Switches(
        tier=3,
        latency_ms=25,
        token_interval_ms=5,
        balance_usd=2.5,
        image_delay_seconds=1.5,
        enforce_rate_limits=True,
        rate_window_seconds=10,
    )
    assert switches_from_args(build_parser().parse_args([])) == Switches()


def test_command_line_refuses_out_of_range_values() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--tier", "7"])
    with pytest.raises(ValueError, match="latency_ms"):
        switches_from_args(build_parser().parse_args(["--latency-ms", "-1"]))


def test_create_app_exposes_its_state() -> None:
    switches = Switches(tier=1)

    app = create_app(switches)

    assert app.state.emulator.switches is switches
