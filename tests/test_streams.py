"""Streams that end well, and chat passing through what Kyma's chat API documents (tools, json_schema, caching)."""

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest

from kyma_mcp.chat import ReplyBuilder
from kyma_mcp.emulator import EmulatorHandle
from kyma_mcp.errors import KymaError, RateLimitedError, stream_error
from kyma_mcp.kyma.client import KymaClient
from kyma_mcp.settings import Settings
from tests.conftest import ConnectFactory
from tests.results import error_text, structured, text_of

pytestmark = pytest.mark.anyio

WEATHER = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
}


async def test_a_clean_end_after_finish_reason_without_done_is_complete(
    connect: ConnectFactory, emulator: EmulatorHandle
) -> None:
    emulator.switches.send_done = False
    async with connect() as client:
        result = await client.call_tool("chat", {"prompt": "no done marker"})

    data = structured(result)
    assert data["finish_reason"] == "stop"
    assert data["notes"] == []
    assert data["usage"]["cost_usd"] > 0


async def test_a_stream_that_ends_before_any_finish_reason_is_interrupted(
    connect: ConnectFactory, emulator: EmulatorHandle
) -> None:
    emulator.switches.send_done = False
    emulator.switches.drop_stream_after_chunks = 3
    async with connect() as client:
        result = await client.call_tool("chat", {"prompt": "cut short"})

    assert structured(result)["finish_reason"] == "interrupted"


async def test_an_error_event_mid_stream_keeps_what_arrived_and_names_the_error(
    connect: ConnectFactory, emulator: EmulatorHandle
) -> None:
    emulator.switches.error_event_after_chunks = 3
    async with connect() as client:
        result = await client.call_tool("chat", {"prompt": "fail midway"})

    data = structured(result)
    assert data["finish_reason"] == "interrupted"
    assert data["reply"].startswith("Echo from")
    assert data["notes"][0].startswith("[upstream_unavailable] Kyma answered 502: Upstream provider error mid-stream.")


async def test_an_error_event_before_any_text_is_the_error(connect: ConnectFactory, emulator: EmulatorHandle) -> None:
    emulator.switches.error_event_after_chunks = 0
    async with connect() as client:
        text = error_text(await client.call_tool("chat", {"prompt": "fail at once"}))

    assert text.startswith("[upstream_unavailable] Kyma answered 502: Upstream provider error mid-stream.")


def test_error_events_map_to_the_matching_word() -> None:
    limited = stream_error({"message": "slow down", "type": "rate_limit_error"}, ())
    by_status = stream_error({"message": "no money", "code": 402}, ())

    assert isinstance(limited, RateLimitedError)
    assert by_status.word == "insufficient_balance"


async def test_a_gateway_that_rejects_stream_options_is_retried_without_and_remembered(
    connect: ConnectFactory, emulator: EmulatorHandle
) -> None:
    emulator.switches.reject_stream_options = True
    async with connect() as client:
        first = await client.call_tool("chat", {"prompt": "one"})
        second = await client.call_tool("chat", {"prompt": "two"})

    assert structured(first)["finish_reason"] == structured(second)["finish_reason"] == "stop"
    assert emulator.state.requests["/v1/chat/completions"] == 3  # one refused, then two without it


async def test_tool_calls_are_assembled_and_returned(connect: ConnectFactory) -> None:
    async with connect() as client:
        result = await client.call_tool(
            "chat", {"prompt": "weather in Hanoi?", "tools": [WEATHER], "tool_choice": "required"}
        )

    data = structured(result)
    assert data["finish_reason"] == "tool_calls"
    [call] = data["tool_calls"]
    assert call["type"] == "function"
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"])["echo"].startswith("Echo from")
    assert f"get_weather (id {call['id']})" in text_of(result)


async def test_tools_and_a_tool_name_may_come_as_json_text(connect: ConnectFactory) -> None:
    async with connect() as client:
        result = await client.call_tool(
            "chat", {"prompt": "weather?", "tools": json.dumps([WEATHER]), "tool_choice": "get_weather"}
        )
        bad = await client.call_tool("chat", {"prompt": "weather?", "tools": '{"not": "a list"}'})

    assert structured(result)["tool_calls"][0]["function"]["name"] == "get_weather"
    assert error_text(bad).startswith("[invalid_request] `tools` must be a JSON array")


async def test_tool_results_go_back_in_messages(connect: ConnectFactory) -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Hanoi"}'}}
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "weather in Hanoi?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "31 C, humid"},
        {"role": "user", "content": "so, shorts?"},
    ]
    async with connect() as client:
        result = await client.call_tool("chat", {"messages": messages, "tools": [WEATHER]})

    assert structured(result)["reply"].startswith("Echo from qwen-3.6-plus: so, shorts?")


async def test_response_format_json_schema_passes_through(connect: ConnectFactory) -> None:
    schema = {"type": "json_schema", "json_schema": {"name": "echo", "schema": {"type": "object"}}}
    async with connect() as client:
        as_object = await client.call_tool("chat", {"prompt": "as json", "response_format": schema})
        as_text = await client.call_tool("chat", {"prompt": "as json", "response_format": json.dumps(schema)})

    assert json.loads(structured(as_object)["reply"])["echo"].startswith("Echo from")
    assert json.loads(structured(as_text)["reply"])["echo"].startswith("Echo from")


async def test_prompt_cache_usage_and_the_alias_are_shown(connect: ConnectFactory) -> None:
    async with connect() as client:
        result = await client.call_tool("chat", {"prompt": "hi", "model": "best"})

    data = structured(result)
    assert data["usage"]["cached_tokens"] == 0
    assert data["usage"]["cache_write_tokens"] == 0
    assert data["usage"]["cache_discount"] == 0
    assert data["alias"] == "best"
    assert "alias 'best' to qwen-3.6-plus" in text_of(result)


async def test_unknown_reasoning_effort_values_go_to_the_gateway(connect: ConnectFactory) -> None:
    async with connect() as client:
        result = await client.call_tool("chat", {"prompt": "think", "reasoning_effort": "xhigh"})

    assert structured(result)["finish_reason"] == "stop"


def test_tool_call_fragments_assemble_by_index() -> None:
    builder = ReplyBuilder()
    fragments = [
        {"index": 0, "id": "a", "function": {"name": "f", "arguments": '{"x":'}},
        {"index": 1, "id": "b", "function": {"name": "g", "arguments": "{}"}},
        {"index": 0, "function": {"arguments": "1}"}},
    ]
    for fragment in fragments:
        builder.add({"choices": [{"delta": {"tool_calls": [fragment]}}]})

    assert [c["function"] for c in builder.tool_calls] == [
        {"name": "f", "arguments": '{"x":1}'},
        {"name": "g", "arguments": "{}"},
    ]
    assert builder.started


async def test_a_400_that_does_not_name_stream_options_is_not_retried() -> None:
    seen: list[dict[str, Any]] = []

    def gateway(request: httpx2.Request) -> httpx2.Response:
        if request.url.path.endswith("/auth/limits"):
            return httpx2.Response(404)
        seen.append(json.loads(request.content))
        return httpx2.Response(400, json={"error": {"message": "messages: too long"}})

    config = Settings.model_validate({"api_key": "ky-test-key-123456", "max_retries": 0})
    client = KymaClient(config, transport=httpx2.MockTransport(gateway))
    with pytest.raises(Exception, match="too long"):
        async with client.chat_stream({"model": "m", "messages": [], "stream_options": {"include_usage": True}}):
            pass

    assert len(seen) == 1


class Pieces(httpx2.AsyncByteStream):
    """A response body that arrives in the given network reads."""

    def __init__(self, pieces: list[bytes]) -> None:
        self._pieces = pieces

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self._pieces:
            yield piece


async def read_pieces(pieces: list[bytes]) -> list[Any]:
    """What `ChatStream.chunks` yields for a stream read in these pieces (an error as its text, last)."""

    def gateway(request: httpx2.Request) -> httpx2.Response:
        if request.url.path.endswith("/auth/limits"):
            return httpx2.Response(404)
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, stream=Pieces(pieces))

    config = Settings.model_validate({"api_key": "ky-test-key-123456", "max_retries": 0, "tier": 4})
    client = KymaClient(config, transport=httpx2.MockTransport(gateway))
    seen: list[Any] = []
    try:
        async with client.chat_stream({"model": "m", "messages": []}) as stream:
            async for chunk in stream.chunks():
                seen.append(chunk)
    except KymaError as exc:
        seen.append(str(exc))
    return seen


def splits(body: bytes) -> list[list[bytes]]:
    """The body whole, a byte at a time, and cut in two at every byte."""
    return [[body], [body[i : i + 1] for i in range(len(body))]] + [[body[:i], body[i:]] for i in range(1, len(body))]


def delta(text: str, reason: str | None = None) -> dict[str, Any]:
    return {"choices": [{"delta": {"content": text}, "finish_reason": reason}]}


SSE_LINES = (
    ": keep-alive\n"
    f"data: {json.dumps(delta('Grüße, 日本'), ensure_ascii=False)}\r\n\r\n"
    f"data:{json.dumps(delta('no space'))}\n\n"
    f"data: \t {json.dumps(delta('spaces'))} \t\n"
    "event: ping\n"
    "data: 7\n\n"  # JSON but not an object: skipped
    f"data: {json.dumps(delta('!', 'stop'))}\n\n"
)


async def test_stream_lines_read_the_same_however_the_network_cuts_them() -> None:
    expected = [delta("Grüße, 日本"), delta("no space"), delta("spaces"), delta("!", "stop")]
    for body in (SSE_LINES + "data: [DONE]\n\nnot read\n", SSE_LINES + "data:[DONE]", SSE_LINES):
        for pieces in splits(body.encode()):
            assert await read_pieces(pieces) == expected, pieces


async def test_what_arrived_before_a_bad_line_in_the_same_read_is_delivered_first() -> None:
    first = f"data: {json.dumps(delta('kept'))}\n\n"
    for bad, said in (
        ('data: {"error": {"message": "overloaded", "type": "server_error"}}\n\n', "overloaded"),
        ("data: {not json\n\n", "not JSON"),
    ):
        for pieces in ([(first + bad).encode()], [first.encode(), bad.encode()]):
            seen = await read_pieces(pieces)
            assert seen[0] == delta("kept")
            assert said in seen[1]
            assert len(seen) == 2
