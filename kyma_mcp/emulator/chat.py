"""POST /v1/chat/completions: validation, a deterministic reply, usage and cost, SSE streaming.

The reply is "Echo from <served model>: <first words of the last user message>" followed by
filler words picked from a SHA-256 of that message, so the same prompt always gets the same
text. Its length is `Switches.reply_words`, or N when the last user message contains the
directive `[[words=N]]` (removed from the echo). The output is cut at
min(max_tokens or 4096, the model's max_output_tokens), with finish_reason "length".

INFERRED (the emulator's own simplifications): one word is one token; prompt tokens are the
words of every message plus 4 per message, image parts count 0; `json_object` and
`json_schema` response formats both answer `{"echo":"<reply>"}` (the schema is not honoured);
the whole cost is charged when the response starts, even if the stream is later dropped;
streaming sends one word per chunk with the role on the first and finish_reason on the last.

Tool calling (docs.kymaapi.com/guides/tool-calling): with `tools` and a `tool_choice` of
`required` or `{"type":"function","function":{"name":…}}`, the reply is one call to that tool
(the first one for `required`) with arguments `{"echo":"<last user words>"}` and finish_reason
`tool_calls`, streamed as two `delta.tool_calls` fragments of one `index`. `auto` answers text
(INFERRED: the emulator never decides to call a tool on its own).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, cast

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from kyma_mcp.emulator.catalog import Catalog, Model
from kyma_mcp.emulator.errors import insufficient_balance, invalid_request, model_not_found
from kyma_mcp.emulator.parsing import (
    authenticate,
    json_object,
    optional_bool,
    optional_integer,
    optional_number,
    optional_object,
    required_string,
)
from kyma_mcp.emulator.state import EmulatorState

DEFAULT_MAX_TOKENS = 4096
"""Kyma's default when a request sets no max_tokens (its chat-completions reference)."""

ROLES = ("system", "user", "assistant", "tool")
RESPONSE_FORMATS = ("text", "json_object", "json_schema")
TOKENS_PER_MESSAGE = 4
ECHOED_PROMPT_WORDS = 8

_WORDS_DIRECTIVE = re.compile(r"\[\[words=(\d+)\]\]")
_PIECE = re.compile(r"\S+\s*")
_FILLER = (
    "amber", "bridge", "canyon", "delta", "ember", "fjord", "garden", "harbor", "island", "jasmine",
    "kernel", "lantern", "meadow", "nebula", "orchard", "prairie", "quartz", "river", "summit", "tundra",
    "umbra", "valley", "willow", "xylem", "yonder", "zephyr", "signal", "packet", "vector", "matrix",
    "cobalt", "granite",
)  # fmt: skip


STREAM_ERROR_EVENT: dict[str, Any] = {
    "error": {"message": "Upstream provider error mid-stream.", "type": "api_error", "code": "upstream_error"}
}
"""What `error_event_after_chunks` sends (INFERRED shape: the gateway's error envelope as one event)."""


class StreamDropped(Exception):
    """Raised mid-stream on purpose: the server then closes the connection without [DONE]."""


@dataclass(frozen=True)
class Message:
    role: str
    text: str
    images: int


@dataclass(frozen=True)
class ChatRequest:
    """A validated chat request."""

    model: Model
    alias: str | None
    messages: tuple[Message, ...]
    max_tokens: int | None
    stream: bool
    include_usage: bool
    json_mode: bool
    tool: str | None = None
    """The tool the reply must call (tool_choice required or a named function), if any."""

    @property
    def prompt_tokens(self) -> int:
        return sum(len(message.text.split()) + TOKENS_PER_MESSAGE for message in self.messages)

    @property
    def images(self) -> int:
        return sum(message.images for message in self.messages)


@dataclass(frozen=True)
class Completion:
    """The reply as the model would produce it, with its usage and cost."""

    id: str
    created: int
    model: Model
    content: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    tool: str | None = None

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def cost(self) -> float:
        spent = self.prompt_tokens * self.model.input_per_1m + self.completion_tokens * self.model.output_per_1m
        return round(spent / 1_000_000, 8)

    @property
    def pieces(self) -> list[str]:
        """One word per piece, each with its trailing whitespace; they join back to `content`."""
        return _PIECE.findall(self.content)

    def usage(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "cached_tokens": 0,
            "cache_write_tokens": 0,
            "cost": self.cost,
            "cache_discount": 0,
        }

    def body(self) -> dict[str, Any]:
        """The non-streaming `chat.completion` object."""
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model.id,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": self.content}
                    if self.tool is None
                    else {"role": "assistant", "content": None, "tool_calls": [self._call(self.content)]},
                    "finish_reason": self.finish_reason,
                }
            ],
            "usage": self.usage(),
        }

    def chunks(self, *, include_usage: bool) -> list[dict[str, Any]]:
        """The `chat.completion.chunk` objects of the stream, without the final [DONE]."""
        if self.tool is not None:
            half = len(self.content) // 2
            first, rest = self._call(self.content[:half]), {"index": 0, "function": {"arguments": self.content[half:]}}
            chunks = [
                self._chunk(
                    [{"index": 0, "delta": {"role": "assistant", "tool_calls": [first]}, "finish_reason": None}]
                ),
                self._chunk([{"index": 0, "delta": {"tool_calls": [rest]}, "finish_reason": "tool_calls"}]),
            ]
            return [*chunks, {**self._chunk([]), "usage": self.usage()}] if include_usage else chunks
        pieces = self.pieces
        chunks: list[dict[str, Any]] = []
        for index, piece in enumerate(pieces):
            delta = {"role": "assistant", "content": piece} if index == 0 else {"content": piece}
            finish = self.finish_reason if index == len(pieces) - 1 else None
            chunks.append(self._chunk([{"index": 0, "delta": delta, "finish_reason": finish}]))
        if include_usage:
            chunks.append({**self._chunk([]), "usage": self.usage()})
        return chunks

    def _call(self, arguments: str) -> dict[str, Any]:
        return {
            "index": 0,
            "id": f"call_{self.id[-8:]}",
            "type": "function",
            "function": {"name": self.tool, "arguments": arguments},
        }

    def _chunk(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model.id,
            "choices": choices,
        }


def parse_chat_request(body: dict[str, object], catalog: Catalog) -> ChatRequest:
    """Validate a chat request body.

    Raises:
        GatewayError: 404 for an unknown model, 400 for anything else that is wrong.
    """
    requested = required_string(body, "model")
    resolved = catalog.resolve(requested)
    if resolved is None:
        raise model_not_found(requested)
    model, alias = resolved
    if model.kind != "chat":
        raise invalid_request(f"Model '{model.id}' generates images; use POST /v1/images/generations.", "invalid_model")
    messages = _messages(body.get("messages"))
    if any(message.images for message in messages) and not model.supports_vision:
        raise invalid_request(
            f"Model '{model.id}' does not accept images; pick a model with supports_vision in GET /v1/models.",
            "vision_not_supported",
        )
    optional_number(body, "temperature", 0, 2)
    optional_number(body, "top_p", 0, 1)
    response_format = optional_object(body, "response_format").get("type", "text")
    if response_format not in RESPONSE_FORMATS:
        raise invalid_request(f"'response_format.type' must be one of {', '.join(RESPONSE_FORMATS)}.")
    return ChatRequest(
        model=model,
        alias=alias,
        messages=messages,
        max_tokens=optional_integer(body, "max_tokens", 1),
        stream=optional_bool(body, "stream"),
        include_usage=optional_bool(optional_object(body, "stream_options"), "include_usage"),
        json_mode=response_format != "text",
        tool=_forced_tool(body),
    )


def _forced_tool(body: dict[str, object]) -> str | None:
    """The function a reply must call: the named one, or the first tool for `required`; None otherwise."""
    tools = body.get("tools")
    if tools is None:
        return None
    if not isinstance(tools, list) or not tools:
        raise invalid_request("'tools' must be a non-empty array of function tools.")
    names: list[str] = []
    for index, tool in enumerate(cast(list[object], tools)):
        function = cast(dict[str, object], tool).get("function") if isinstance(tool, dict) else None
        name = cast(dict[str, object], function).get("name") if isinstance(function, dict) else None
        if not isinstance(name, str) or not name:
            raise invalid_request(f'tools[{index}] must be {{"type":"function","function":{{"name":…}}}}.')
        names.append(name)
    choice = body.get("tool_choice", "auto")
    if choice == "required":
        return names[0]
    if isinstance(choice, dict):
        function = cast(dict[str, object], choice).get("function")
        name = cast(dict[str, object], function).get("name") if isinstance(function, dict) else None
        if name not in names:
            raise invalid_request(f"tool_choice names a function that is not in 'tools': {name!r}.")
        return str(name)
    if choice not in ("auto", "none"):
        raise invalid_request("'tool_choice' must be auto, none, required or a function object.")
    return None


def complete(request: ChatRequest, served: Model, reply_words: int) -> Completion:
    """The deterministic reply of `served` to `request`, cut at the output limit."""
    last_user = next((message.text for message in reversed(request.messages) if message.role == "user"), "")
    directive = _WORDS_DIRECTIVE.search(last_user)
    wanted = max(1, int(directive.group(1))) if directive else reply_words
    limit = min(request.max_tokens or DEFAULT_MAX_TOKENS, served.max_output_tokens)
    prompt = _WORDS_DIRECTIVE.sub(" ", last_user)
    words = list(itertools.islice(_reply_words(served.id, prompt, request.images), min(wanted, limit)))
    text = " ".join(words)
    structured = request.json_mode or request.tool is not None
    content = json.dumps({"echo": text}, ensure_ascii=False, separators=(",", ":")) if structured else text
    return Completion(
        id=f"chatcmpl-{secrets.token_hex(12)}",
        created=int(time.time()),
        model=served,
        content=content,
        finish_reason="tool_calls" if request.tool else "length" if wanted > limit else "stop",
        prompt_tokens=request.prompt_tokens,
        completion_tokens=len(words),
        tool=request.tool,
    )


def _reply_words(model_id: str, prompt: str, images: int) -> Iterator[str]:
    seen = f" (saw {images} image{'s' if images != 1 else ''})" if images else ""
    yield from f"Echo from {model_id}{seen}:".split()
    yield from prompt.split()[:ECHOED_PROMPT_WORDS]
    for block in itertools.count():
        digest = hashlib.sha256(f"{block}:{prompt}".encode()).digest()
        for offset in range(0, len(digest), 2):
            yield _FILLER[int.from_bytes(digest[offset : offset + 2], "big") % len(_FILLER)]


def _messages(value: object) -> tuple[Message, ...]:
    if not isinstance(value, list) or not value:
        raise invalid_request("'messages' must be a non-empty array.")
    return tuple(_message(index, item) for index, item in enumerate(cast(list[object], value)))


def _message(index: int, value: object) -> Message:
    if not isinstance(value, dict):
        raise invalid_request(f"messages[{index}] must be an object.")
    raw = cast(dict[str, object], value)
    role = raw.get("role")
    if role not in ROLES:
        raise invalid_request(f"messages[{index}].role must be one of {', '.join(ROLES)}.")
    content = raw.get("content")
    if isinstance(content, str):
        return Message(role, content, 0)
    if content is None and role == "assistant":  # an assistant turn that only called tools
        return Message(role, "", 0)
    if not isinstance(content, list):
        raise invalid_request(f"messages[{index}].content must be a string or an array of content parts.")
    texts: list[str] = []
    images = 0
    for part_index, part in enumerate(cast(list[object], content)):
        kind, text = _part(part)
        if kind is None:
            raise invalid_request(f"messages[{index}].content[{part_index}] must be a text or image_url part.")
        if kind == "image_url":
            images += 1
        else:
            texts.append(text)
    return Message(role, " ".join(texts), images)


def _part(value: object) -> tuple[str | None, str]:
    """A content part's kind ("text" or "image_url") and text; kind None when malformed."""
    if not isinstance(value, dict):
        return None, ""
    part = cast(dict[str, object], value)
    if part.get("type") == "text" and isinstance(text := part.get("text"), str):
        return "text", text
    image = part.get("image_url")
    url = cast(dict[str, object], image).get("url") if isinstance(image, dict) else image
    if part.get("type") == "image_url" and isinstance(url, str) and url:
        return "image_url", ""
    return None, ""


class ChatRoutes:
    """The chat endpoint, bound to the emulator's state."""

    def __init__(self, state: EmulatorState) -> None:
        self._state = state

    def routes(self) -> list[Route]:
        return [Route("/v1/chat/completions", self.completions, methods=["POST"])]

    async def completions(self, request: Request) -> Response:
        state, switches = self._state, self._state.switches
        authenticate(request)
        if failure := state.pop_failure():
            raise failure
        body = await json_object(request)
        if switches.reject_stream_options and "stream_options" in body:
            raise invalid_request("Unrecognized request argument supplied: stream_options", "unsupported_parameter")
        chat = parse_chat_request(body, state.catalog)
        layer = switches.fallback_layer
        served = (state.catalog.chat_model(switches.fallback_model) if layer == 3 else None) or chat.model
        completion = complete(chat, served, switches.reply_words)
        if not state.ledger.can_afford():
            raise insufficient_balance()
        refusal = state.rate_window.admit(
            model=chat.model.id,
            tokens=completion.total_tokens,
            limits=state.limits,
            window=switches.rate_window_seconds,
            enforce=switches.enforce_rate_limits,
        )
        if refusal is not None:
            raise state.rate_limit_error(refusal)
        state.ledger.charge(completion.cost, completion.id)

        plain = switches.dialect == "openai"  # no X-Kyma-* headers, no usage.cost
        headers = {"X-Kyma-Model": served.id}
        if chat.alias:
            headers["X-Kyma-Alias"] = chat.alias
        if layer:
            headers |= {"X-Kyma-Fallback": "true", "X-Kyma-Fallback-Layer": str(layer)}
        headers = {} if plain else headers
        if not chat.stream:
            return JSONResponse(_plain(completion.body()) if plain else completion.body(), headers=headers)
        chunks = completion.chunks(include_usage=chat.include_usage)
        chunks = [_plain(chunk) for chunk in chunks] if plain else chunks
        done = switches.send_done and switches.dialect != "documented"  # [DONE] is not documented for Kyma
        if (cut := switches.error_event_after_chunks) is not None:
            chunks, done = [*chunks[:cut], STREAM_ERROR_EVENT], False
        events = _stream(
            state,
            chunks,
            first_byte_delay=(switches.first_byte_delay_ms + switches.model_first_byte_ms.get(chat.model.id, 0)) / 1000,
            interval=(
                switches.slow_token_interval_ms if chat.model.id in switches.slow_models else switches.token_interval_ms
            )
            / 1000,
            drop_after=switches.drop_stream_after_chunks,
            done=done,
        )
        headers["Cache-Control"] = "no-cache"
        return StreamingResponse(events, media_type="text/event-stream", headers=headers)


async def _stream(
    state: EmulatorState,
    chunks: list[dict[str, Any]],
    *,
    first_byte_delay: float,
    interval: float,
    drop_after: int | None,
    done: bool = True,
) -> AsyncIterator[str]:
    """Server-sent events for `chunks`, then `data: [DONE]` when `done`; timings fixed when the request began.

    `state.open_streams` counts streams still being written, so tests can see a client abort one.
    """
    state.open_streams += 1
    try:
        if first_byte_delay:
            await anyio.sleep(first_byte_delay)
        if not interval and drop_after is None:
            # Nothing to pace: one write instead of one per word keeps load tests about the client.
            state.first_chunk_at = time.monotonic()
            yield "".join(map(_event, chunks)) + ("data: [DONE]\n\n" if done else "")
            return
        for sent, chunk in enumerate(chunks):
            if sent == drop_after:
                raise StreamDropped
            if sent and interval:
                await anyio.sleep(interval)
            if not sent:
                state.first_chunk_at = time.monotonic()
            yield _event(chunk)
        if drop_after is not None:
            raise StreamDropped
        if done:
            yield "data: [DONE]\n\n"
    finally:
        state.open_streams -= 1


def _plain(body: dict[str, Any]) -> dict[str, Any]:
    """A body with OpenAI's usage only: Kyma's cost and cache fields removed."""
    usage = body.get("usage")
    if not isinstance(usage, dict):
        return body
    kept = ("prompt_tokens", "completion_tokens", "total_tokens")
    return {**body, "usage": {key: value for key, value in cast(dict[str, Any], usage).items() if key in kept}}


def _event(chunk: dict[str, Any]) -> str:
    return f"data: {json.dumps(chunk, ensure_ascii=False, separators=(',', ':'))}\n\n"
