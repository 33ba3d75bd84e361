"""All of the `chat` tool's logic, without MCP: arguments → Kyma request, streamed chunks → result."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

import anyio
from pydantic import BaseModel, Field

from kyma_mcp.catalog import Catalog, CatalogView, ModelInfo, find, retirement_note
from kyma_mcp.errors import (
    KymaError,
    ModelNotFoundError,
    deadline_error,
    images_need_user_message_error,
    no_vision_error,
    prompt_or_messages_error,
    tools_not_an_array_error,
    unknown_model_error,
    unparsable_json_argument_error,
)
from kyma_mcp.kyma.client import KymaClient, RouteInfo, clip
from kyma_mcp.kyma.wire import JSONObject, integer, json_object, number, objects, parse
from kyma_mcp.progress import Progress
from kyma_mcp.spend import Quote

PARTIAL_REPLY_MARGIN_SECONDS = 0.5
"""A streamed reply stops this long before the deadline (a tenth of a shorter deadline), so what
arrived can still be returned."""
REPLY_READ_MARGIN_CHARS = 1_000
"""Reading stops this far past `Bounds.reply_chars` (KYMA_MAX_REPLY_CHARS): enough to know the reply was cut."""


def reply_margin(deadline_seconds: float) -> float:
    """How long before the deadline reading stops: 0.5 s, or a tenth of a deadline under 5 s, so a
    short KYMA_TOOL_TIMEOUT_SECONDS still waits most of itself for the first token."""
    return min(PARTIAL_REPLY_MARGIN_SECONDS, 0.1 * deadline_seconds)


Role = Literal["system", "user", "assistant", "tool"]
MAX_TOOL_CALLS = 64
"""Tool calls kept from one reply (and accepted in one assistant message)."""


class TextPart(BaseModel):
    type: Literal["text"] = "text"
    text: str = Field(max_length=400_000)


class ImageURL(BaseModel):
    url: str = Field(max_length=30_000_000)


class ImagePart(BaseModel):
    type: Literal["image_url"] = "image_url"
    image_url: ImageURL


class ChatMessage(BaseModel):
    """One OpenAI-style message; `content` is text or a list of text/image parts (null beside `tool_calls`)."""

    role: Role
    content: str | list[TextPart | ImagePart] | None = Field(default=None, max_length=400_000)
    tool_call_id: str | None = Field(default=None, max_length=200)
    tool_calls: list[dict[str, Any]] | None = Field(default=None, max_length=MAX_TOOL_CALLS)


class Usage(BaseModel):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    cost_usd: float | None = Field(default=None, description="USD Kyma charged for this call, when it says")
    cached_tokens: int | None = None
    cache_write_tokens: int | None = None
    cache_discount: float | None = None


class Fallback(BaseModel):
    used: bool = False
    layer: int | None = Field(default=None, description="1 = same model via another route, 3 = a different model")


class ChatResult(BaseModel):
    reply: str
    model_requested: str
    model_served: str | None = Field(default=None, description="The model that answered (X-Kyma-Model)")
    finish_reason: str | None = Field(default=None, description="stop, length, tool_calls, or interrupted")
    tool_calls: list[dict[str, Any]] | None = None
    alias: str | None = None
    usage: Usage
    fallback: Fallback = Field(default_factory=Fallback)
    latency_ms: int
    notes: list[str] = Field(default_factory=list[str], description="What to do about truncation, fallbacks, …")
    conversation_id: str | None = Field(default=None, description="Pass back to continue this thread")
    estimate: Quote | None = Field(default=None, description="dry_run only: the estimated cost")

    @classmethod
    def dry_run(cls, model_requested: str, quote: Quote, notes: Sequence[str]) -> ChatResult:
        """The structured result of a `dry_run`: no reply, the estimate, what the cap would do."""
        return cls(
            reply="",
            model_requested=model_requested,
            finish_reason="dry_run",
            usage=Usage(),
            fallback=Fallback(),
            latency_ms=0,
            notes=list(notes),
            estimate=quote,
        )

    def answer_text(self) -> str:
        """The reply and its tool calls, as the agent reads them."""
        parts = [self.reply] if self.reply or not self.tool_calls else []
        if self.tool_calls:
            parts.append("Tool calls (send each result back as a tool message with its tool_call_id):")
            for call in self.tool_calls:
                function = json_object(call.get("function"))
                parts.append(f"- {function.get('name')} (id {call.get('id')}): {function.get('arguments') or '{}'}")
        return "\n".join(parts)

    def text(self) -> str:
        """The readable text content: the reply, its tool calls, any notes the agent should act on, the thread."""
        text = self.answer_text()
        lines = [f"[kyma-mcp] {note}" for note in self.notes]
        if self.conversation_id:
            lines.append(f"[kyma-mcp] conversation_id: {self.conversation_id}")
        return text + "\n\n---\n" + "\n".join(lines) if lines else text


def build_messages(
    *,
    prompt: str | None,
    messages: Sequence[ChatMessage] | None,
    system: str | None,
    image_urls: Sequence[str],
) -> list[JSONObject]:
    """The `messages` array Kyma receives; images attach to the last user message.

    Raises:
        InvalidRequestError: neither or both of prompt/messages, or no user message to attach images to.
    """
    if (prompt is None) == (not messages):
        raise prompt_or_messages_error()
    wire: list[JSONObject] = [m.model_dump(exclude_none=True) for m in messages or ()]
    if prompt is not None:
        wire.append({"role": "user", "content": prompt})
    if system:
        wire.insert(0, {"role": "system", "content": system})
    if image_urls:
        target = next((m for m in reversed(wire) if m["role"] == "user" and m.get("content") is not None), None)
        if target is None:
            raise images_need_user_message_error()
        parts: list[JSONObject] = (
            [{"type": "text", "text": target["content"]}] if isinstance(target["content"], str) else target["content"]
        )
        target["content"] = parts + [{"type": "image_url", "image_url": {"url": url}} for url in image_urls]
    return wire


def has_images(messages: Sequence[JSONObject]) -> bool:
    return any(part.get("type") == "image_url" for m in messages for part in objects(m.get("content")))


def check_vision(model_id: str, messages: Sequence[JSONObject], view: CatalogView) -> None:
    """Refuse images, before anything is spent, only for a model the gateway's live list says is text-only.

    The gateway is the judge: an unknown model, or one known only from the bundled snapshot, is sent.
    """
    model = view.find(model_id) if view.live else None
    if model is None or model.has("vision") or not has_images(messages):
        return
    vision = sorted((m for m in view.models if m.has("vision")), key=lambda m: m.output_usd_per_1m or 0)
    raise no_vision_error(model.id, [m.id for m in vision[:3]])


class ReplyBuilder:
    """Accumulates streamed chunks into the text, finish reason and usage of one reply.

    Text fields echoed into the result (`model`, `finish_reason`) are cut to `max_field_chars`.
    """

    def __init__(self, max_field_chars: int = 200) -> None:
        self._max_field_chars = max_field_chars
        self._parts: list[str] = []
        self.chunks = 0
        self.characters = 0
        self.finish_reason: str | None = None
        self.response_model: str | None = None
        self.usage: JSONObject = {}
        self._calls: dict[int, JSONObject] = {}
        self._model_seen: object = None

    def add(self, chunk: JSONObject) -> None:
        """One streamed chunk (called per token: each check is one lookup, nothing is built for a chunk
        that only carries text).

        Containers are checked by exact class, as `json` decodes them: the values stay `Any` for the
        type checker, so no `typing.cast` (a function call at run time) is needed per token.
        """
        self.chunks += 1
        model = chunk.get("model")
        if model != self._model_seen and isinstance(model, str):
            self._model_seen = model
            self.response_model = clip(model, self._max_field_chars)
        usage = chunk.get("usage")
        if usage and usage.__class__ is dict:
            self.usage = usage
        choices: Any = chunk.get("choices")
        if choices.__class__ is not list:
            return
        for part in choices:
            if part.__class__ is not dict:
                continue
            delta = part.get("delta")
            if delta.__class__ is dict:
                content = delta.get("content")
                if isinstance(content, str):
                    self._parts.append(content)
                    self.characters += len(content)
                if calls := delta.get("tool_calls"):
                    for call in objects(calls):
                        self._add_call(call)
            if reason := part.get("finish_reason"):
                self.finish_reason = clip(str(reason), self._max_field_chars)

    def _add_call(self, part: JSONObject) -> None:
        """One `delta.tool_calls` fragment: parts of one call share an `index`; names and arguments arrive in pieces."""
        index = integer(part.get("index"))
        index = len(self._calls) if index is None else index
        if index not in self._calls and len(self._calls) >= MAX_TOOL_CALLS:
            return
        call = self._calls.setdefault(index, {"id": None, "type": "function", "name": "", "arguments": ""})
        if isinstance(part.get("id"), str):
            call["id"] = clip(part["id"], self._max_field_chars)
        function = json_object(part.get("function"))
        for key in ("name", "arguments"):
            if isinstance(piece := function.get(key), str):
                call[key] += piece
                self.characters += len(piece)

    @property
    def tool_calls(self) -> list[JSONObject]:
        """The assembled calls in OpenAI's shape, ready to go back in an assistant message."""
        return [
            {
                "id": call["id"] or f"call_{index}",
                "type": "function",
                "function": {"name": clip(call["name"], self._max_field_chars), "arguments": call["arguments"]},
            }
            for index, call in sorted(self._calls.items())
        ]

    @property
    def text(self) -> str:
        return "".join(self._parts)

    @property
    def started(self) -> bool:
        return bool(self._parts) or bool(self._calls)


def finish(
    builder: ReplyBuilder,
    *,
    model_requested: str,
    route: RouteInfo,
    latency_ms: int,
    max_tokens: int | None,
    catalog: Sequence[ModelInfo],
    interruption: str | None = None,
    max_reply_chars: int = 40_000,
    cut_at_bytes: int | None = None,
) -> ChatResult:
    """Turn a finished (or interrupted) stream into the tool result, with notes for the agent."""
    notes: list[str] = []
    reply = builder.text
    finish_reason = builder.finish_reason
    if interruption is not None:
        finish_reason = "interrupted"
        notes.append(
            f"{interruption} The reply above is what arrived before that ({len(reply)} characters); it was not "
            "retried, to avoid paying twice. Call chat again to get a complete answer."
        )
    served = route.model_served or builder.response_model
    if finish_reason == "length":
        notes.append(_length_note(served or model_requested, max_tokens, catalog))
    if route.fallback_used:
        notes.append(_fallback_note(model_requested, served, route.fallback_layer))
    if len(reply) > max_reply_chars:
        notes.append(
            f"The reply was cut at {max_reply_chars:,} characters (KYMA_MAX_REPLY_CHARS) to fit the host's result "
            "limit, and the rest was not read; ask for a shorter answer or split the task."
        )
        reply = reply[:max_reply_chars]
    elif cut_at_bytes is not None:
        notes.append(
            f"Reading the stream stopped after {cut_at_bytes:,} bytes (KYMA_MAX_STREAM_BYTES); the reply may be "
            "incomplete. Ask for a shorter answer."
        )
    if route.alias:
        notes.append(f"Kyma resolved the alias '{route.alias}' to {served or 'a model'} (X-Kyma-Alias).")
    usage = builder.usage
    details = json_object(usage.get("prompt_tokens_details"))
    return ChatResult(
        reply=reply,
        model_requested=model_requested,
        model_served=served,
        finish_reason=finish_reason,
        tool_calls=builder.tool_calls or None,
        alias=route.alias,
        usage=Usage(
            prompt_tokens=integer(usage.get("prompt_tokens")),
            completion_tokens=integer(usage.get("completion_tokens")),
            total_tokens=integer(usage.get("total_tokens")),
            cost_usd=number(usage.get("cost")),
            cached_tokens=integer(usage.get("cached_tokens", details.get("cached_tokens"))),
            cache_write_tokens=integer(usage.get("cache_write_tokens")),
            cache_discount=number(usage.get("cache_discount")),
        ),
        fallback=Fallback(used=route.fallback_used, layer=route.fallback_layer),
        latency_ms=latency_ms,
        notes=notes,
    )


def _length_note(model_id: str, max_tokens: int | None, catalog: Sequence[ModelInfo]) -> str:
    model = find(catalog, model_id)
    cap = model.max_output_tokens if model else None
    asked = max_tokens or 4096
    note = f"The reply stopped at the output limit (finish_reason: length, max_tokens {asked:,})."
    if cap and asked < cap:
        note += f" Call again with a larger max_tokens (up to {cap:,} for {model_id})"
    else:
        note += f" {model_id} cannot write more in one reply"
    chat_models = [m for m in catalog if m.kind == "chat" and m.id != model_id]
    most = max((m.max_output_tokens or 0 for m in chat_models), default=0)
    if most > (cap or 0):
        roomy = " or ".join(sorted(m.id for m in chat_models if m.max_output_tokens == most)[:2])
        note += f", or use a model with a larger max_output_tokens such as {roomy} ({most:,})"
    return note + "."


def _fallback_note(requested: str, served: str | None, layer: int | None) -> str:
    if layer == 3 or (served and served != requested and layer is None):
        return (
            f"Kyma's fallback answered with a different model ({served}) because '{requested}' was unavailable "
            f"(layer {layer or '?'}). Retry later if you need '{requested}' itself."
        )
    return f"Kyma served '{requested}' through a fallback route (layer {layer or '?'}); the model is unchanged."


def json_argument(name: str, value: object) -> object:
    """A free-form argument given as JSON text (`tools`, `tool_choice`, `response_format`) as its value.

    Text that is not a JSON array or object stays text (`auto`, `json_object`, a tool name).

    Raises:
        InvalidRequestError: `tools` that is not a JSON array of objects.
    """
    parsed: object = value
    if isinstance(value, str) and value.lstrip().startswith(("[", "{")):
        parsed = parse(value)  # text opening with [ or { is never JSON null: None means it did not parse
        if parsed is None:
            raise unparsable_json_argument_error(name)
    tools_ok = isinstance(parsed, list) and all(isinstance(tool, dict) for tool in cast(list[object], parsed))
    if name == "tools" and parsed is not None and not tools_ok:
        raise tools_not_an_array_error()
    return cast(object, parsed)  # narrowed to list by the check above


@dataclass(frozen=True)
class RequestOptions:
    """What a chat request carries besides model, messages and max_tokens: one builder for `chat`,
    each model of `compare`, and the judge (which sets none).

    `tools`, `tool_choice` and a `response_format` object (e.g. `json_schema` with its schema) pass
    through as given: the gateway judges them.
    """

    temperature: float | None = None
    top_p: float | None = None
    stop: list[str] | None = None
    response_format: object = "text"
    reasoning_effort: str | None = None
    tools: object = None
    tool_choice: object = None

    @classmethod
    def from_arguments(
        cls,
        *,
        temperature: float | None = None,
        top_p: float | None = None,
        stop: list[str] | None = None,
        response_format: object = "text",
        reasoning_effort: str | None = None,
        tools: object = None,
        tool_choice: object = None,
    ) -> RequestOptions:
        """The options from a tool's arguments, JSON text (`tools`, `tool_choice`, `response_format`) parsed.

        Raises:
            InvalidRequestError: JSON text that does not parse, or `tools` that is not an array of objects.
        """
        return cls(
            temperature=temperature,
            top_p=top_p,
            stop=stop,
            response_format=json_argument("response_format", response_format),
            reasoning_effort=reasoning_effort,
            tools=json_argument("tools", tools),
            tool_choice=json_argument("tool_choice", tool_choice),
        )

    def payload(self, model_id: str, wire: list[JSONObject], *, max_tokens: int | None) -> JSONObject:
        """The body of `POST /chat/completions` for one call: only the fields the caller set."""
        payload: JSONObject = {"model": model_id, "messages": wire, "stream_options": {"include_usage": True}}
        optional = {
            "max_tokens": max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "stop": self.stop,
            "tools": self.tools,
            "tool_choice": self.tool_choice,
        }
        payload |= {key: value for key, value in optional.items() if value is not None}
        choice = self.tool_choice
        if isinstance(choice, str) and choice not in ("auto", "none", "required"):
            payload["tool_choice"] = {"type": "function", "function": {"name": choice}}
        response_format = self.response_format
        if isinstance(response_format, dict):
            payload["response_format"] = cast(JSONObject, response_format)
        elif response_format not in ("text", None):
            payload["response_format"] = {"type": response_format}
        if self.reasoning_effort is not None:
            payload["reasoning_effort"] = self.reasoning_effort
        return payload


async def stream_reply(
    client: KymaClient,
    catalog: Catalog,
    progress: Progress,
    payload: JSONObject,
    *,
    max_tokens: int | None,
    deadline_at: float,
    deadline_seconds: float,
    partial: PartialReply | None = None,
) -> ChatResult:
    """Stream one completion, reporting progress; keep what arrived if the stream breaks or the deadline hits.

    If the call is cancelled (the client's `notifications/cancelled`) after tokens arrived, what
    arrived is left in `partial` before the cancellation goes on: a cancelled call sends no result,
    so this is the only way its caller can still record the reply."""
    model_id: str = payload["model"]
    bounds = client.bounds
    builder = ReplyBuilder(bounds.field_chars)
    cut_at_bytes: int | None = None
    started = time.monotonic()
    interruption: str | None = None
    route = RouteInfo(model_served=None, alias=None, fallback_used=False, fallback_layer=None)
    try:
        try:
            async with client.chat_stream(payload) as stream:
                route = stream.route
                speaker = route.model_served or model_id  # one name for the whole progress stream
                with anyio.move_on_at(deadline_at - reply_margin(deadline_seconds)) as scope:
                    batches = stream.batches()
                    read_up_to = bounds.reply_chars + REPLY_READ_MARGIN_CHARS
                    announced = False
                    add = builder.add
                    async for batch in batches:  # a network read's chunks: the per-token work is `add` alone
                        for chunk in batch:
                            add(chunk)
                        if not announced:
                            if builder.started:
                                announced = True
                                await progress.report(f"first tokens from {speaker}")
                        elif progress.due():
                            await progress.report(f"{builder.characters} characters from {speaker}")
                        if builder.characters > read_up_to:
                            await batches.aclose()  # the rest would be cut anyway: leaving the block ends the stream
                            break
                if stream.cut:
                    cut_at_bytes = stream.bytes_read
                if scope.cancelled_caught:
                    if not builder.started:
                        raise deadline_error(deadline_seconds)
                    interruption = f"The {deadline_seconds:g} s deadline (KYMA_TOOL_TIMEOUT_SECONDS) passed mid-reply."
        except ModelNotFoundError:
            chat_ids = [m.id for m in (await catalog.view()).models if m.kind == "chat"]
            raise unknown_model_error(model_id, chat_ids) from None
        except KymaError as exc:  # a broken stream, or the gateway's error event mid-stream
            if not builder.started:
                raise
            interruption = exc.what_happened  # with its word: a broken stream, or the gateway's own error event
        view = await catalog.view()
        result = finish(
            builder,
            model_requested=model_id,
            route=route,
            latency_ms=round((time.monotonic() - started) * 1000),
            max_tokens=max_tokens,
            catalog=view.models,
            interruption=interruption,
            max_reply_chars=bounds.reply_chars,
            cut_at_bytes=cut_at_bytes,
        )
        model = view.find(route.model_served or model_id)
        if model is not None and (note := retirement_note(model, view.models)):
            result.notes.append(note)
        return result
    except anyio.get_cancelled_exc_class():
        if partial is not None and builder.started:
            partial.result = finish(
                builder,
                model_requested=model_id,
                route=route,
                latency_ms=round((time.monotonic() - started) * 1000),
                max_tokens=max_tokens,
                catalog=(),
                interruption=CANCELLED_MID_REPLY,
                max_reply_chars=bounds.reply_chars,
            )
        raise


CANCELLED_MID_REPLY = "The call was cancelled mid-reply."


class PartialReply:
    """Where `stream_reply` leaves what arrived when its call is cancelled after tokens arrived."""

    def __init__(self) -> None:
        self.result: ChatResult | None = None
