"""The `chat` tool end to end: in-memory MCP client (both eras) → kyma-mcp → emulator over loopback."""

from pathlib import Path
from typing import Any

import anyio
import pytest

from kyma_mcp.emulator import EmulatorHandle
from tests.conftest import BOTH_ERAS, FAST_TIMING, ConnectFactory
from tests.results import error_text, structured, text_of

pytestmark = pytest.mark.anyio

PNG_1PX = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6300010000050001"
    "0d0a2db40000000049454e44ae426082"
)


async def test_chat_returns_the_reply_with_route_usage_and_cost(connect: ConnectFactory) -> None:
    async with connect() as client:
        result = await client.call_tool("chat", {"prompt": "What is a rate limit?", "model": "qwen-3.6-plus"})

    data = structured(result)
    assert not result.is_error
    assert data["reply"].startswith("Echo from qwen-3.6-plus: What is a rate limit?")
    assert text_of(result) == f"{data['reply']}\n\n---\n[kyma-mcp] conversation_id: {data['conversation_id']}"
    assert data["model_requested"] == data["model_served"] == "qwen-3.6-plus"
    assert data["finish_reason"] == "stop"
    assert data["usage"]["completion_tokens"] == 24
    assert data["usage"]["cost_usd"] > 0
    assert data["fallback"] == {"used": False, "layer": None}
    assert data["notes"] == []
    assert isinstance(data["latency_ms"], int)


async def test_the_same_prompt_gets_the_same_reply(connect: ConnectFactory) -> None:
    async with connect() as client:
        first = await client.call_tool("chat", {"prompt": "repeat me"})
        second = await client.call_tool("chat", {"prompt": "repeat me"})

    assert structured(first)["reply"] == structured(second)["reply"]


async def test_an_alias_reports_the_model_kyma_served(connect: ConnectFactory) -> None:
    async with connect() as client:
        result = await client.call_tool("chat", {"prompt": "hi", "model": "reasoning"})

    assert structured(result)["model_requested"] == "reasoning"
    assert structured(result)["model_served"] == "deepseek-r1"


async def test_messages_and_system_reach_kyma_in_order(connect: ConnectFactory) -> None:
    messages = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": [{"type": "text", "text": "second question"}]},
    ]
    async with connect() as client:
        result = await client.call_tool("chat", {"messages": messages, "system": "be brief"})

    assert "second question" in structured(result)["reply"]


@BOTH_ERAS
async def test_streamed_tokens_arrive_as_increasing_progress(connect: ConnectFactory, emulator: EmulatorHandle) -> None:
    emulator.switches.token_interval_ms = 5  # 0.1 s of streaming; progress goes out every 20 ms (FAST_TIMING)
    emulator.switches.reply_words = 20
    seen: list[tuple[float, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, message))

    async with connect() as client:
        result = await client.call_tool("chat", {"prompt": "stream please"}, progress_callback=on_progress)

    assert not result.is_error
    values = [value for value, _ in seen]
    assert len(values) >= 2
    assert values == sorted(values)
    assert len(set(values)) == len(values)
    assert seen[0][1] is not None
    assert "first tokens" in seen[0][1]


async def test_streamed_progress_is_throttled_to_the_progress_interval(
    connect: ConnectFactory, emulator: EmulatorHandle
) -> None:
    emulator.switches.token_interval_ms = 5
    emulator.switches.reply_words = 20
    counts: dict[float, int] = {}
    for interval in (60.0, 0.0):
        seen: list[str] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            seen.append(message or "")  # noqa: B023 - called during this iteration's call only

        timing = FAST_TIMING.model_copy(update={"progress_interval_seconds": interval})
        async with connect(timing=timing) as client:
            result = await client.call_tool("chat", {"prompt": "stream please"}, progress_callback=on_progress)
        assert not result.is_error
        counts[interval] = sum(message.startswith("first tokens") or " characters from " in message for message in seen)

    assert counts[60.0] == 1, "only the first tokens go out within one interval"
    assert counts[0.0] >= 3, "without an interval streamed chunks are reported as they come"


@BOTH_ERAS
async def test_progress_names_one_model_the_served_one(connect: ConnectFactory, emulator: EmulatorHandle) -> None:
    emulator.switches.token_interval_ms = 5
    emulator.switches.reply_words = 20
    messages: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        messages.append(message or "")

    async with connect() as client:
        result = await client.call_tool("chat", {"prompt": "stream", "model": "best"}, progress_callback=on_progress)

    served = structured(result)["model_served"]
    assert served != "best"
    assert len(messages) >= 2
    assert all(message.endswith(f"from {served}") for message in messages)


async def test_a_reply_cut_at_max_tokens_says_how_to_get_more(connect: ConnectFactory) -> None:
    async with connect() as client:
        result = await client.call_tool("chat", {"prompt": "[[words=50]] long please", "max_tokens": 5})

    data = structured(result)
    assert data["finish_reason"] == "length"
    assert len(data["reply"].split()) == 5
    assert "max_tokens" in data["notes"][0]
    assert "glm-4.7-flash" in data["notes"][0]
    assert "[kyma-mcp]" in text_of(result)


async def test_a_reply_cut_at_the_models_own_cap_suggests_a_bigger_model(connect: ConnectFactory) -> None:
    async with connect(bounds={"reply_chars": 200_000}) as client:  # read the whole 8,192-token reply
        result = await client.call_tool(
            "chat", {"prompt": "[[words=9000]] go", "model": "gemma-4-31b", "max_tokens": 20000}
        )

    data = structured(result)
    assert data["finish_reason"] == "length"
    assert data["usage"]["completion_tokens"] == 8192
    assert "gemma-4-31b cannot write more" in data["notes"][0]


@pytest.mark.parametrize(("layer", "served"), [(1, "qwen-3.6-plus"), (3, "llama-3.3-70b")])
async def test_fallbacks_are_reported_never_hidden(
    connect: ConnectFactory, emulator: EmulatorHandle, layer: int, served: str
) -> None:
    emulator.switches.fallback_layer = layer

    async with connect() as client:
        result = await client.call_tool("chat", {"prompt": "hi", "model": "qwen-3.6-plus"})

    data = structured(result)
    assert data["fallback"] == {"used": True, "layer": layer}
    assert data["model_served"] == served
    assert f"layer {layer}" in data["notes"][0]


async def test_json_response_format_is_passed_on(connect: ConnectFactory) -> None:
    async with connect() as client:
        result = await client.call_tool("chat", {"prompt": "give json", "response_format": "json_object"})

    assert structured(result)["reply"].lstrip().startswith("{")


async def test_without_a_key_chat_asks_for_one_and_list_models_still_works(connect: ConnectFactory) -> None:
    async with connect(api_key=None) as client:
        chat = await client.call_tool("chat", {"prompt": "hi"})
        models = await client.call_tool("list_models", {})

    assert error_text(chat).startswith("[auth_missing]")
    assert "KYMA_API_KEY" in error_text(chat)
    assert not models.is_error
    assert structured(models)["source"] == "live"


async def test_a_rejected_key_is_auth_invalid(connect: ConnectFactory) -> None:
    async with connect(api_key="sk-not-a-kyma-key") as client:
        result = await client.call_tool("chat", {"prompt": "hi"})

    assert error_text(result).startswith("[auth_invalid]")


async def test_an_empty_balance_points_to_the_top_up_page(connect: ConnectFactory, emulator: EmulatorHandle) -> None:
    emulator.switches.balance_usd = 0

    async with connect() as client:
        result = await client.call_tool("chat", {"prompt": "hi"})

    assert error_text(result).startswith("[insufficient_balance]")
    assert "https://kymaapi.com/billing" in error_text(result)


async def test_an_unknown_model_suggests_list_models_and_near_misses(connect: ConnectFactory) -> None:
    async with connect() as client:
        result = await client.call_tool("chat", {"prompt": "hi", "model": "qwen-3.6-plsu"})

    text = error_text(result)
    assert text.startswith("[model_not_found]")
    assert "list_models" in text
    assert "qwen-3.6-plus" in text


async def test_rate_limits_are_retried_then_reported_with_the_wait(
    connect: ConnectFactory, emulator: EmulatorHandle
) -> None:
    emulator.switches.fail_next = [429, 429, 429]
    emulator.switches.retry_after_seconds = 0.05

    async with connect(max_retries=2) as client:
        result = await client.call_tool("chat", {"prompt": "hi"})

    text = error_text(result)
    assert text.startswith("[rate_limited]")
    assert "retried 2 times" in text
    assert "try again in 1 s" in text


async def test_a_server_error_then_success_is_invisible_to_the_agent(
    connect: ConnectFactory, emulator: EmulatorHandle
) -> None:
    emulator.switches.fail_next = [503]
    emulator.switches.retry_after_seconds = 0

    async with connect() as client:
        result = await client.call_tool("chat", {"prompt": "hi"})

    assert not result.is_error


async def test_persistent_server_errors_are_upstream_unavailable(
    connect: ConnectFactory, emulator: EmulatorHandle
) -> None:
    emulator.switches.fail_next = [502]

    async with connect(max_retries=0) as client:
        result = await client.call_tool("chat", {"prompt": "hi"})

    assert error_text(result).startswith("[upstream_unavailable]")


async def test_a_hung_upstream_ends_at_the_deadline_as_timeout(
    connect: ConnectFactory, emulator: EmulatorHandle
) -> None:
    emulator.switches.hang = True

    with anyio.fail_after(10):
        async with connect(tool_timeout_seconds=1) as client:
            result = await client.call_tool("chat", {"prompt": "hi"})
            emulator.switches.hang = False
            after = await client.call_tool("chat", {"prompt": "still there?"})

    assert error_text(result).startswith("[timeout]")
    assert "KYMA_TOOL_TIMEOUT_SECONDS" in error_text(result)
    assert not after.is_error


async def test_a_stream_that_breaks_keeps_what_arrived(connect: ConnectFactory, emulator: EmulatorHandle) -> None:
    emulator.switches.drop_stream_after_chunks = 6

    async with connect() as client:
        result = await client.call_tool("chat", {"prompt": "tell me a story"})

    data = structured(result)
    assert not result.is_error
    assert data["finish_reason"] == "interrupted"
    assert data["reply"].startswith("Echo from")
    assert "not retried" in data["notes"][0]


async def test_a_stream_that_breaks_before_the_first_token_says_what_to_do(
    connect: ConnectFactory, emulator: EmulatorHandle
) -> None:
    emulator.switches.drop_stream_after_chunks = 0

    async with connect() as client:
        text = error_text(await client.call_tool("chat", {"prompt": "tell me a story"}))

    assert text.startswith("[upstream_unavailable] The stream from Kyma broke off")
    assert "Call chat again" in text


async def test_the_deadline_mid_reply_returns_the_partial_reply(
    connect: ConnectFactory, emulator: EmulatorHandle
) -> None:
    emulator.switches.token_interval_ms = 100  # 24 words ≈ 2.4 s; reading stops 0.5 s before the deadline

    with anyio.fail_after(10):
        async with connect(tool_timeout_seconds=1.2) as client:
            result = await client.call_tool("chat", {"prompt": "slow story"})

    data = structured(result)
    assert data["finish_reason"] == "interrupted"
    assert 0 < len(data["reply"].split()) < 24
    assert "deadline" in data["notes"][0]


async def test_a_short_deadline_still_waits_most_of_itself_for_a_slow_first_token(
    connect: ConnectFactory, emulator: EmulatorHandle
) -> None:
    # Reading stops a tenth of a short deadline early, not the 0.5 s kept before a long one: with a
    # 0.6 s deadline that margin would have left 0.1 s, and this 150 ms first byte a [timeout].
    emulator.switches.first_byte_delay_ms = 150

    async with connect(tool_timeout_seconds=0.6) as client:
        result = await client.call_tool("chat", {"prompt": "hi"})

    assert not result.is_error, error_text(result)
    assert structured(result)["reply"].startswith("Echo from")


async def test_a_local_image_is_sent_to_a_vision_model(connect: ConnectFactory, tmp_path: Path) -> None:
    image = tmp_path / "dot.png"
    image.write_bytes(PNG_1PX)

    async with connect() as client:
        result = await client.call_tool(
            "chat", {"prompt": "what is this?", "model": "gemma-4-31b", "images": [str(image), "https://x.test/a.png"]}
        )

    assert "2 image" in structured(result)["reply"]


async def test_images_for_a_text_only_model_are_refused_before_spending(
    connect: ConnectFactory, emulator: EmulatorHandle, tmp_path: Path
) -> None:
    image = tmp_path / "dot.png"
    image.write_bytes(PNG_1PX)

    async with connect() as client:
        result = await client.call_tool("chat", {"prompt": "see", "model": "qwen-3-32b", "images": [str(image)]})

    assert error_text(result).startswith("[invalid_request]")
    assert "gemma-4-31b" in error_text(result)
    assert emulator.state.charge_count == 0


@pytest.mark.parametrize(
    ("source", "word"),
    [
        ("/no/such/image.png", "path_denied"),  # outside KYMA_IMAGE_DIRS: not even looked up
        ("~nosuchuser-kyma/a.png", "invalid_request"),
        ("/etc", "path_denied"),
        ("/etc/hostname", "path_denied"),
        ("../../../../../../etc/passwd", "path_denied"),
        ("http://plain.test/a.png", "invalid_request"),
        ("data:text/plain;base64,aGk=", "invalid_request"),
    ],
)
async def test_bad_image_sources_are_refused(connect: ConnectFactory, source: str, word: str) -> None:
    async with connect() as client:
        result = await client.call_tool("chat", {"prompt": "see", "model": "gemma-4-31b", "images": [source]})

    assert error_text(result).startswith(f"[{word}]")


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        ({"messages": []}, "messages"),
        ({"prompt": "hi", "temperature": 5}, "temperature"),
        ({"prompt": "hi", "max_tokens": 0}, "max_tokens"),
        ({"prompt": "hi", "top_p": 1.5}, "top_p"),
        ({"prompt": "hi", "model": "bad model id!"}, "model"),
        ({"prompt": "hi", "response_format": "xml"}, "response_format"),
        ({}, "prompt"),
        ({"prompt": "hi", "messages": [{"role": "user", "content": "hi"}]}, "exactly one"),
    ],
)
async def test_bad_arguments_are_tool_errors_not_crashes(
    connect: ConnectFactory, arguments: dict[str, Any], fragment: str
) -> None:
    async with connect() as client:
        result = await client.call_tool("chat", arguments)
        healthy = await client.call_tool("chat", {"prompt": "still serving?"})

    text = error_text(result)
    assert text.startswith("[invalid_request]")
    assert fragment in text
    assert not healthy.is_error


@BOTH_ERAS
async def test_cancelling_a_call_aborts_the_upstream_request(connect: ConnectFactory, emulator: EmulatorHandle) -> None:
    emulator.switches.token_interval_ms = 100
    emulator.switches.reply_words = 500

    async with connect() as client:
        with anyio.move_on_after(0.5):
            await client.call_tool("chat", {"prompt": "a very long answer"})
        with anyio.fail_after(5):
            while emulator.state.open_streams:  # noqa: ASYNC110 - the emulator's thread owns this counter
                await anyio.sleep(0.02)
        emulator.switches.token_interval_ms = 0
        after = await client.call_tool("chat", {"prompt": "next"})

    assert not after.is_error


async def test_an_image_file_over_20_mb_is_refused_unread(connect: ConnectFactory, tmp_path: Path) -> None:
    huge = tmp_path / "huge.png"
    with huge.open("wb") as file:
        file.write(PNG_1PX)
        file.truncate(21 * 1024 * 1024)  # sparse: no 21 MB actually written

    async with connect() as client:
        result = await client.call_tool("chat", {"prompt": "see", "model": "gemma-4-31b", "images": [str(huge)]})

    assert error_text(result).startswith("[invalid_request]")
    assert "20 MB" in error_text(result)
