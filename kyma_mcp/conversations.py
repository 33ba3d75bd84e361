"""Threads for `chat`: a turn's history from the store, fitted to the target model, and its record.

A thread is a row of turns. Each turn stores the caller's messages for that turn (images as
references, see below) and the reply, with the model requested and served, tokens, cost, latency
and finish reason. Only `complete` turns are sent again as history; a failed or interrupted turn
stays in the thread, marked, and is never resent.

History that fits: the system message and the newest whole turns, within the target model's
context window less the output allowance (`max_tokens`, else `DEFAULT_OUTPUT_ALLOWANCE`, at most
the model's output limit). Tokens are estimated by `usage.estimate_message_tokens` (3 characters a
token), scaled by how far the last estimate was from the `prompt_tokens` Kyma reported for it.

Images in history are kept as references (the path or URL the caller gave, or the size of a data
URL) in a text part, not re-embedded: re-sending base64 on every later turn would cost about
1,500 tokens per image per turn, and the model already answered about the image in its reply.
To show an image to a model again, pass it in `images` on that turn.

One turn at a time per thread: a turn takes the thread's lease in the store (which works across
processes and replicas); a second call waits, reporting progress, until the first has finished.
A new thread needs no lease (nobody knows its id until the result returns it): it is written with
its first turn, in one transaction, when that turn ends.
"""

from __future__ import annotations

import json
import logging
import math
import secrets
import string
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, cast

import anyio

from kyma_mcp.catalog import ModelInfo
from kyma_mcp.chat import ChatResult
from kyma_mcp.errors import (
    KymaError,
    StoreUnavailableError,
    messages_and_conversation_error,
    store_error,
    unknown_conversation_error,
)
from kyma_mcp.kyma.wire import JSONObject, objects
from kyma_mcp.progress import Progress
from kyma_mcp.store.money import known_micros
from kyma_mcp.usage import estimate_message_tokens

if TYPE_CHECKING:
    from kyma_mcp.store import Store
    from kyma_mcp.store.records import Conversation, NewTurn, Turn, TurnOutcome

CONVERSATION_ID_PATTERN = r"^[A-Za-z0-9_-]{4,64}$"
DEFAULT_OUTPUT_ALLOWANCE = 4096
"""Tokens kept free for the reply when the call sets no `max_tokens`."""
LEASE_MARGIN_SECONDS = 30.0
"""A turn's lease outlives its deadline by this much; a lease older than that belongs to a dead process."""
FINISH_WRITE_SECONDS = 10.0
"""How long recording a turn's end may take; above SQLite's busy timeout, bounded even when the call is cancelled."""
TITLE_CHARS = 80
ESTIMATE_CORRECTION_BOUNDS = (0.25, 4.0)

logger = logging.getLogger(__name__)


ID_ALPHABET = string.ascii_letters + string.digits
"""Letters and digits only: an id never starts with `-`, which a command line would read as an option."""


ID_CHARS = 12
_ID_SPACE = len(ID_ALPHABET) ** ID_CHARS


def new_conversation_id() -> str:
    """12 random letters and digits (71 bits): one draw below 62**12 written in base 62, which is the
    same as drawing each character alone, with one read of the system's randomness instead of twelve."""
    number = secrets.randbelow(_ID_SPACE)
    characters: list[str] = []
    for _ in range(ID_CHARS):
        number, digit = divmod(number, len(ID_ALPHABET))
        characters.append(ID_ALPHABET[digit])
    return "".join(characters)


@dataclass(frozen=True)
class OpenTurn:
    """A turn in flight: recorded as pending, holding the thread's lease; or the first turn of a new
    thread, not written yet (`new_thread`)."""

    conversation_id: str
    seq: int
    owner: str
    system: str | None
    earlier: list[Turn]
    new_thread: tuple[Conversation, NewTurn] | None = None
    """A new thread and its first turn, written together when the turn ends: nobody knows its id
    before the result returns it, so there is nothing to serialise against and one write does."""


async def begin(
    store: Store,
    *,
    conversation_id: str | None,
    messages: Sequence[JSONObject],
    system: str | None,
    model_requested: str,
    lease_seconds: float,
    progress: Progress,
    conversation_days: int,
    wait_seconds: float,
) -> OpenTurn:
    """Record the new turn as pending in its thread; a new thread (`conversation_id` None) is only
    made up here, and written with its first turn by `finish`.

    Waits, reporting progress, while another turn of the thread is in flight.

    Raises:
        InvalidRequestError: the conversation does not exist (never did, deleted or expired).
        StoreUnavailableError: the store cannot be used.
    """
    from kyma_mcp.store.records import Conversation, NewTurn  # the store's code loads on first use

    owner = uuid.uuid4().hex
    record = json.dumps(list(messages))
    create = conversation_id is None
    if conversation_id is None:
        conversation_id = new_conversation_id()
        known_system = system
    else:
        existing = await store.conversation(conversation_id)
        if existing is None:
            raise unknown_conversation_error(conversation_id, conversation_days)
        known_system = system if system is not None else existing.system
    conversation = Conversation(
        id=conversation_id, title=title_of(messages), system=known_system, created_at=0.0, updated_at=0.0
    )
    if create:
        first = NewTurn(messages_json=record, model_requested=model_requested, created_at=time.time())
        return OpenTurn(conversation_id, 1, owner, known_system, [], new_thread=(conversation, first))
    waited = False
    while True:
        now = time.time()
        try:
            began = await store.begin_turn(
                conversation,
                NewTurn(messages_json=record, model_requested=model_requested, created_at=now),
                create=create,
                owner=owner,
                lease_until=now + lease_seconds + LEASE_MARGIN_SECONDS,
                replace_system=system is not None,
            )
        except LookupError:
            raise unknown_conversation_error(conversation_id, conversation_days) from None
        if began is not None:
            seq, earlier = began
            return OpenTurn(conversation_id, seq, owner, known_system, earlier)
        if not waited or progress.due():
            await progress.report("waiting for the previous turn of this conversation to finish")
            waited = True
        await anyio.sleep(wait_seconds)


async def finish(store: Store, turn: OpenTurn, outcome: TurnOutcome) -> None:
    """Record how the turn ended and free the thread (a new thread: write it with its first turn);
    shielded, so a cancelled call still marks its turn.

    Bounded by `FINISH_WRITE_SECONDS`: a store that does not answer in time leaves the turn pending,
    and its lease expires on its own (see `LEASE_MARGIN_SECONDS`), so the thread is never stuck; a new
    thread is then not written at all.

    Raises:
        StoreUnavailableError: the turn could not be recorded, or not in time (if only its reply did
            not fit, the turn of an existing thread is recorded as failed without it, and the thread
            is free; a new thread is not written).
    """
    with anyio.CancelScope(shield=True, deadline=anyio.current_time() + FINISH_WRITE_SECONDS):
        if turn.new_thread is not None:
            await store.record_thread(*turn.new_thread, outcome, now=time.time())
            return
        try:
            await store.finish_turn(turn.conversation_id, turn.seq, outcome, owner=turn.owner, now=time.time())
        except StoreUnavailableError:
            if not outcome.reply:
                raise
            # The reply may be what does not fit (a full disk): record the turn without it, so the
            # thread's lease is given back now rather than when it expires; the error still goes on.
            bare = replace(outcome, status="failed", reply="", error_word=StoreUnavailableError.word)
            await store.finish_turn(turn.conversation_id, turn.seq, bare, owner=turn.owner, now=time.time())
            raise
        return
    # Only the deadline leaves the block without returning.
    raise store_error(store.where, f"it did not answer within {FINISH_WRITE_SECONDS:g} s", trouble="locked")


async def finish_failed(store: Store, turn: OpenTurn, outcome: TurnOutcome) -> None:
    """`finish` for a call that is already failing or cancelled: a store error is logged, not raised,
    so the call's own exception (its error word, or the cancellation) is what goes on."""
    try:
        await finish(store, turn, outcome)
    except StoreUnavailableError as exc:
        logger.warning("a turn's record was not written: %s", exc.word)


def outcome_of(result: ChatResult, estimate: int) -> TurnOutcome:
    """A reply's record: complete, or interrupted when the stream broke or the deadline hit mid-reply."""
    from kyma_mcp.store.records import TurnOutcome

    return TurnOutcome(
        status="interrupted" if result.finish_reason == "interrupted" else "complete",
        reply=result.reply,
        model_served=result.model_served,
        prompt_tokens=result.usage.prompt_tokens,
        completion_tokens=result.usage.completion_tokens,
        cost_micros=known_micros(result.usage.cost_usd),
        latency_ms=result.latency_ms,
        finish_reason=result.finish_reason,
        prompt_estimate=estimate,
    )


def cancelled_of(partial: ChatResult, estimate: int) -> TurnOutcome:
    """A reply cut short by the client cancelling the call: what arrived, interrupted (never resent)."""
    return replace(outcome_of(partial, estimate), status="interrupted", finish_reason="cancelled")


def failure_of(exc: BaseException) -> TurnOutcome:
    """A turn that raised: failed with its error word, or interrupted (cancelled by the client).

    A Kyma error cost nothing (the spend ledger releases such a call too); a call that timed out or was
    cancelled may have been charged, so its cost is unknown."""
    from kyma_mcp.store.records import TurnOutcome

    if isinstance(exc, KymaError):
        return TurnOutcome(status="failed", error_word=exc.word, cost_micros=0)
    if isinstance(exc, TimeoutError):
        return TurnOutcome(status="failed", error_word="timeout")
    return TurnOutcome(status="interrupted")


@dataclass(frozen=True)
class Fitted:
    messages: list[JSONObject]
    estimate: int
    """Estimated tokens of `messages` (before correction), recorded for the next turn's correction."""
    left_out: int


def fit_history(
    *,
    system: str | None,
    earlier: Sequence[Turn],
    current: Sequence[JSONObject],
    context_window: int | None,
    output_allowance: int,
) -> Fitted:
    """The request's messages: system, the newest complete turns that fit, then the current turn."""
    head: list[JSONObject] = [{"role": "system", "content": system}] if system else []
    turns = [history_messages(turn) for turn in earlier if turn.status == "complete"]
    budget = None if context_window is None else context_window - output_allowance
    correction = _correction(earlier)
    kept: list[list[JSONObject]] = []
    used = estimate_message_tokens(head) + estimate_message_tokens(current)
    for messages in reversed(turns):
        cost = estimate_message_tokens(messages)
        if budget is not None and math.ceil((used + cost) * correction) > budget:
            break
        kept.append(messages)
        used += cost
    wire = head + [message for messages in reversed(kept) for message in messages] + list(current)
    return Fitted(wire, used, len(turns) - len(kept))


def fit_to_model(
    model: ModelInfo | None,
    *,
    system: str | None,
    earlier: Sequence[Turn],
    current: Sequence[JSONObject],
    max_tokens: int | None,
) -> Fitted:
    """`fit_history` for `model` (None: not in the catalog, nothing is left out), leaving room for its reply."""
    allowance = min(max_tokens or DEFAULT_OUTPUT_ALLOWANCE, (model and model.max_output_tokens) or 1 << 30)
    return fit_history(
        system=system,
        earlier=earlier,
        current=current,
        context_window=model.context_window if model else None,
        output_allowance=allowance,
    )


async def read_thread(
    store: Store, conversation_id: str, system: str | None, *, conversation_days: int
) -> tuple[str | None, list[Turn]]:
    """A thread's system message (unless `system` replaces it) and turns, read only.

    Raises:
        InvalidRequestError: no such conversation.
    """
    found = await store.conversation(conversation_id)
    if found is None:
        raise unknown_conversation_error(conversation_id, conversation_days)
    return (system if system is not None else found.system), await store.turns(conversation_id)


def left_out_note(left_out: int, model_id: str, context_window: int | None, conversation_id: str) -> str:
    turns = f"{left_out} earliest turn{'s' if left_out != 1 else ''}"
    return (
        f"{turns} of this conversation were not sent, to fit {model_id}'s {context_window or 0:,}-token context "
        f"window with room for the reply; they stay in kyma://conversations/{conversation_id}. Use a model with a "
        "larger context window to send the whole thread."
    )


def history_messages(turn: Turn) -> list[JSONObject]:
    """A complete turn as it is resent: its messages, then the reply."""
    messages = cast(list[JSONObject], json.loads(turn.messages_json))
    return [*messages, {"role": "assistant", "content": turn.outcome.reply}]


def recorded(messages: Sequence[JSONObject], sources: Mapping[str, str]) -> list[JSONObject]:
    """The turn's messages as stored: image parts become text references (never base64).

    `sources` maps an image URL sent to what the caller named it by (a path or URL)."""
    stored: list[JSONObject] = []
    for message in messages:
        content: object = message.get("content")
        if isinstance(content, list):
            texts = [
                str(part.get("text", "")) if part.get("type") != "image_url" else _reference(part, sources)
                for part in objects(cast(list[object], content))
            ]
            content = "\n".join(texts)
        stored.append({"role": message["role"], "content": content})
    return stored


def _reference(part: JSONObject, sources: Mapping[str, str]) -> str:
    image = part.get("image_url")
    url = str(cast(JSONObject, image).get("url", "")) if isinstance(image, dict) else ""
    source = sources.get(url) or (f"a data URL of {len(url):,} characters" if url.startswith("data:") else url)
    return f"[image shown in an earlier turn, not sent again: {source}]"


def title_of(messages: Sequence[JSONObject]) -> str:
    """The first line of the first user message, shortened: the thread's title in listings."""
    for message in messages:
        content = message.get("content")
        if message.get("role") == "user" and isinstance(content, str) and content.strip():
            line = " ".join(content.split())
            return line if len(line) <= TITLE_CHARS else line[: TITLE_CHARS - 1] + "…"
    return "(untitled)"


def _correction(earlier: Sequence[Turn]) -> float:
    """Kyma's count over our estimate for the latest turn that has both; 1 when none has."""
    for turn in reversed(earlier):
        reported, estimated = turn.outcome.prompt_tokens, turn.outcome.prompt_estimate
        if reported and estimated:
            low, high = ESTIMATE_CORRECTION_BOUNDS
            return min(high, max(low, reported / estimated))
    return 1.0


def check_arguments(conversation_id: str | None, has_messages: bool) -> None:
    """`messages` carry a whole history; a thread already has one.

    Raises:
        InvalidRequestError: both were given.
    """
    if conversation_id is not None and has_messages:
        raise messages_and_conversation_error()
