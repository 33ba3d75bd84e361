"""The errors kyma-mcp reports, and the one place their text is composed.

Every failure a tool can meet is a `KymaError`: a stable `word` and a `detail` that says what
happened, then what the agent should do next. The two are kept apart; `str(error)` joins them as
`[word] detail`, which is the text the model reads. The server turns them into MCP `ToolError`s;
nothing else reaches the model. Every sentence the model can read in an error is composed by a
function of this module, so a wording is fixed in one place.

    KymaError
      AuthMissingError          [auth_missing]
      AuthInvalidError          [auth_invalid]          401/403
      InsufficientBalanceError  [insufficient_balance]  402
      ModelNotFoundError        [model_not_found]       404 on a model
      InvalidRequestError       [invalid_request]       400/404/409/413/422, bad arguments
      RateLimitedError          [rate_limited]          429
      UpstreamUnavailableError  [upstream_unavailable]  5xx, connection failures
        StreamBrokenError                               a chat stream that ended early
      UpstreamTimeoutError      [timeout]
      JobFailedError            [job_failed]
      PathDeniedError           [path_denied]
      BudgetExceededError       [budget_exceeded]       a cap, a budget or the user said no; nothing was spent
      StoreUnavailableError     [store_unavailable]     the store (threads, ledger, job journal) cannot be used
"""

from __future__ import annotations

import copy
import functools
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import ClassVar, Literal, Self, cast

TOPUP_URL = "https://kymaapi.com/billing"
_UPSTREAM_TEXT_LIMIT = 300
_SHOWN_CHARS = 200
"""Longest piece of a caller's or Kyma's value (a path, a URL) repeated in an error."""


class KymaError(Exception):
    """A failure for the model: a stable `word` and a `detail` (what happened. What to do.)."""

    word: ClassVar[str] = "upstream_unavailable"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def __str__(self) -> str:
        return f"[{self.word}] {self.detail}"

    @property
    def what_happened(self) -> str:
        """The error as a note on a partial result: its word and what happened."""
        return str(self)

    def extended(self, more: str) -> Self:
        """The same error (same class and fields) with `more` said after its detail."""
        clone = copy.copy(self)
        clone.detail = f"{self.detail} {more}"
        clone.args = (clone.detail,)
        return clone


class AuthMissingError(KymaError):
    word = "auth_missing"


class AuthInvalidError(KymaError):
    word = "auth_invalid"


class InsufficientBalanceError(KymaError):
    word = "insufficient_balance"


class ModelNotFoundError(KymaError):
    word = "model_not_found"


class InvalidRequestError(KymaError):
    word = "invalid_request"


class RateLimitedError(KymaError):
    word = "rate_limited"

    def __init__(self, detail: str, retry_after_seconds: float | None = None) -> None:
        super().__init__(detail)
        self.retry_after_seconds = retry_after_seconds


class UpstreamUnavailableError(KymaError):
    word = "upstream_unavailable"


class StreamBrokenError(UpstreamUnavailableError):
    """A chat stream that ended before its end; `happened` is the event alone, for a partial reply's note."""

    def __init__(self, happened: str) -> None:
        super().__init__(
            f"{happened} No reply had arrived. Call chat again, or pick another model if it keeps happening."
        )
        self.happened = happened

    @property
    def what_happened(self) -> str:
        return f"[{self.word}] {self.happened}"


class UpstreamTimeoutError(KymaError):
    word = "timeout"


class JobFailedError(KymaError):
    word = "job_failed"


class PathDeniedError(KymaError):
    word = "path_denied"


class BudgetExceededError(KymaError):
    word = "budget_exceeded"


class StoreUnavailableError(KymaError):
    word = "store_unavailable"


WORDS = tuple(
    cls.word
    for cls in (
        AuthMissingError,
        AuthInvalidError,
        InsufficientBalanceError,
        ModelNotFoundError,
        InvalidRequestError,
        RateLimitedError,
        UpstreamUnavailableError,
        UpstreamTimeoutError,
        JobFailedError,
        PathDeniedError,
        BudgetExceededError,
        StoreUnavailableError,
    )
)
"""Every error word, in the order of the table above."""


def shorten_upstream(message: str) -> str:
    """Kyma's own words for a failure on one line, shortened; "no details" when it said nothing."""
    text = " ".join(message.split())
    if len(text) > _UPSTREAM_TEXT_LIMIT:
        text = text[: _UPSTREAM_TEXT_LIMIT - 1] + "…"
    return text or "no details"


def size_text(size: int) -> str:
    """A byte count as people write it: `50 MB`, `1.5 KB`, `300 bytes`."""
    for unit, scale in (("MB", 1_048_576), ("KB", 1024)):
        if size >= scale:
            return f"{size / scale:.3g} {unit}"
    return f"{size} bytes"


def _times(retried: int) -> str:
    return f"{retried} time{'s' if retried != 1 else ''}"


def unpriced_error(model: str, price_source: str, why: str) -> BudgetExceededError:
    return BudgetExceededError(
        f"{model} has no price in the catalog ({price_source}), so kyma-mcp cannot keep this "
        f"call within {why}; nothing was sent. Use a priced model (list_models shows prices), or set "
        "KYMA_ALLOW_UNPRICED=1 in the server's environment to allow unpriced calls."
    )


def budget_crossed_error(
    estimate: str,
    budget: str,
    period: str,
    spent: str,
    pending: str | None,
    remaining: str,
    when: str,
    unknown_calls: int = 0,
    unknown_estimate: str = "",
) -> BudgetExceededError:
    """`unknown_calls`: calls whose charge is unknown; they count at their estimates (`unknown_estimate`)."""
    held = f", {pending} reserved by calls in flight" if pending else ""
    guessed = (
        f", {unknown_calls} call{'s' if unknown_calls != 1 else ''} of unknown cost counted at their estimates "
        f"({unknown_estimate})"
        if unknown_calls
        else ""
    )
    return BudgetExceededError(
        f"This call (estimated {estimate}) would cross the budget of {budget} per {period} (KYMA_BUDGET_USD): "
        f"spent {spent} this period{held}{guessed}, {remaining} remaining; the period {when}. Nothing was sent. Use a "
        "cheaper model or fewer tokens (dry_run shows the estimate), or wait for the reset."
    )


def confirmation_needed_error(
    estimate: str, threshold: str, token: str, minutes: int, *, stale: bool
) -> BudgetExceededError:
    """A call above KYMA_CONFIRM_ABOVE_USD from a client that cannot be asked: the agent asks, then confirms."""
    again = "That confirm token is unknown, used, expired or for other arguments. " if stale else ""
    return BudgetExceededError(
        f"{again}This call's estimate is above KYMA_CONFIRM_ABOVE_USD {threshold}: {estimate}. Nothing was sent. "
        f'Ask the user; if they agree, call again with the same arguments and confirm="{token}" '
        f"(good once, for {minutes} min)."
    )


def nobody_answered_error(kind: type[KymaError], answers: str) -> KymaError:
    """compare: no model produced anything; `kind` is the first failure's, `answers` each model's words."""
    return kind(f"No model answered, so nothing is compared. {answers}")


def spend_unreadable_note(problem: str) -> str:
    """get_limits without its spend part: the ledger cannot be read."""
    return f"Spend this period: unknown, the spend ledger cannot be read: {problem}"


def user_declined_error(estimate: str, threshold: str) -> BudgetExceededError:
    return BudgetExceededError(
        f"Nothing was sent: the user declined this call ({estimate}; above KYMA_CONFIRM_ABOVE_USD {threshold}). "
        "Ask them before trying again, or use a cheaper model or fewer tokens (dry_run shows the estimate)."
    )


def over_cap_error(whose: str, cap: str, estimate: str, options: Sequence[str]) -> BudgetExceededError:
    """`whose` estimate ("This call's") is over max_cost_usd `cap`; `options` are what would fit instead."""
    fits = (
        f"Within the cap: {', or '.join(options)}; or raise max_cost_usd."
        if options
        else "Nothing in the catalog fits that cap: raise max_cost_usd or shorten the request."
    )
    return BudgetExceededError(f"{whose} estimate is over max_cost_usd {cap}: {estimate}. Nothing was sent. {fits}")


StoreTrouble = Literal["corrupt", "full", "locked", "other"]
_STORE_FIXES: dict[StoreTrouble, str] = {
    "corrupt": "Move that file aside (kyma-mcp then starts a new one) or set KYMA_STORE=off",
    "full": "Free space on that disk (or point KYMA_STORE_URL at another) or set KYMA_STORE=off",
    "locked": (
        "Close the program holding it (a database browser, a backup or sync tool, a hung kyma-mcp) "
        "or set KYMA_STORE=off"
    ),
    "other": "Fix that (free disk space, close the other program, check KYMA_STORE_URL) or set KYMA_STORE=off",
}


def store_error(
    where: str, problem: str, *, corrupt: bool = False, trouble: StoreTrouble = "other"
) -> StoreUnavailableError:
    """The store at `where` cannot be used; stateless calls keep working, so say so, and what to do."""
    fix = _STORE_FIXES["corrupt" if corrupt else trouble]
    return StoreUnavailableError(
        f"kyma-mcp's store ({where}) cannot be used: {problem}. Calls without conversation_id still work. "
        f"{fix}, then retry."
    )


def messages_and_conversation_error() -> InvalidRequestError:
    return InvalidRequestError(
        "Pass `messages` or `conversation_id`, not both: the conversation already holds its history. "
        "Send the new user message as `prompt` with the conversation_id."
    )


def unknown_conversation_error(conversation_id: str, retention_days: int) -> InvalidRequestError:
    return InvalidRequestError(
        f"No conversation '{conversation_id}' here: it never existed in this store, was deleted, or went unused for "
        f"over {retention_days} days (KYMA_CONVERSATION_DAYS). Read kyma://conversations for the current ids, or "
        "call chat without conversation_id to start a new one."
    )


def unsaved_thread_error(conversation_id: str, reason: str) -> StoreUnavailableError:
    """A thread whose first turn was answered, and whose record, written after the reply, failed."""
    return StoreUnavailableError(
        f"Conversation '{conversation_id}' was not kept: its first reply was delivered, then writing it failed "
        f"({reason}). Start a new thread: call chat without conversation_id, with the earlier exchange in `messages`."
    )


# --- Kyma's HTTP answers ------------------------------------------------------------------------


def missing_key_error(endpoint: str) -> AuthMissingError:
    return AuthMissingError(
        f"Kyma's {endpoint} needs an API key and KYMA_API_KEY is not set. Set it (a ky-… key from "
        "https://kymaapi.com) in this MCP server's environment and restart the server; list_models and "
        "recommend_model work without one."
    )


_TOKEN = r"\b(ky|kyma|km|sk)-[A-Za-z0-9_\-]{6,}"


def redact(text: str, secrets: Iterable[str]) -> str:
    """Remove every secret in each of its forms (`secret_forms`), and any bearer token, from text
    that may reach the model or a log.

    Every result's strings pass here: one search for all of them first, and text holding none (nearly
    all) comes back as it is, without a replace per form and a substitution.
    """
    secrets = tuple(secrets)
    if _anything_secret(secrets).search(text) is None:
        return text
    for form in secret_forms(secrets):
        text = text.replace(form, "***")
    return re.sub(_TOKEN, r"\1-***", text)


@functools.lru_cache(maxsize=8)
def _anything_secret(secrets: tuple[str, ...]) -> re.Pattern[str]:
    """One pattern matching wherever `redact` would change something (compiled on first use)."""
    return re.compile("|".join([*(re.escape(form) for form in secret_forms(secrets)), _TOKEN]))


@functools.lru_cache(maxsize=8)
def secret_forms(secrets: tuple[str, ...]) -> tuple[str, ...]:
    """The ways a secret shows up in text, longest first: verbatim, without its `ky-` prefix,
    URL-encoded, and base64-encoded at any offset (as in `Basic base64(user:key)`).

    For base64 the stable middle of the encoding is used: the 4-character groups that hold
    only the secret's bytes, whatever comes before or after it.
    """
    import base64
    from urllib.parse import quote, quote_plus

    forms: set[str] = set()
    for secret in secrets:
        if secret:
            forms.add(secret)
        if len(secret) < 8:
            continue  # a short secret's other forms would match ordinary text
        bare = secret.split("-", 1)[1] if secret.startswith(("ky-", "sk-", "km-")) else secret
        for variant in {secret, bare}:
            if len(variant) >= 8:
                forms |= {variant, quote(variant, safe=""), quote_plus(variant)}
        for offset in range(3):
            encoded = base64.b64encode(b"\0" * offset + secret.encode()).decode("ascii")
            core = encoded[4 if offset else 0 : -4]
            if len(core) >= 8:
                forms.add(core)
    return tuple(sorted(forms, key=len, reverse=True))


def error_for_status(
    status: int,
    detail: str,
    *,
    model: str | None = None,
    retry_after_seconds: float | None = None,
    topup_url: str | None = None,
    retried: int = 0,
    rate_limits: str | None = None,
) -> KymaError:
    """Map one Kyma HTTP error answer (after `retried` retries) to the error the agent sees.

    `detail` is Kyma's own message (see `shorten_upstream`); its closing full stop is dropped so
    that the sentence composed around it reads as one.
    """
    detail = detail.rstrip(" .") or "no details"
    said = f"Kyma answered {status}: {detail}"
    tries = f"; retried {_times(retried)}" if retried else ""
    if status in (401, 403):
        return AuthInvalidError(
            f"{said}. The API key in KYMA_API_KEY was rejected: check it is a current ky-… key and restart the server."
        )
    if status == 402:
        url = topup_url or TOPUP_URL
        cheaper = "use a cheaper model (recommend_model with priority=cheapest)"
        if url in detail:  # Kyma's own message already says where to top up
            return InsufficientBalanceError(f"{said}. Then retry, or {cheaper}.")
        return InsufficientBalanceError(f"{said}. Top up at {url}, or {cheaper}, then retry.")
    if status == 404 and model is not None:
        return unknown_model_error(model, ())
    if status == 429:
        wait = (
            f"try again in {math.ceil(retry_after_seconds)} s"
            if retry_after_seconds and math.isfinite(retry_after_seconds)
            else "try again in a few seconds"
        )
        limits = f"Kyma allows {rate_limits}" if rate_limits else "Kyma's rate limit was reached"
        return RateLimitedError(f"{limits} ({detail}){tries}; {wait}.", retry_after_seconds)
    if status >= 500 or status == 409:
        return UpstreamUnavailableError(
            f"{said}{tries}. Kyma could not serve this request right now; retry in a few seconds or pick another model."
        )
    if status == 408:
        return UpstreamTimeoutError(f"{said}{tries}. Retry, or ask for fewer tokens.")
    return InvalidRequestError(f"{said}. Fix the arguments and call again.")


_EVENT_STATUSES = {
    "authentication_error": 401,
    "invalid_api_key": 401,
    "insufficient_balance": 402,
    "insufficient_quota": 402,
    "invalid_request_error": 400,
    "not_found_error": 404,
    "model_not_found": 404,
    "rate_limit_error": 429,
    "rate_limit_exceeded": 429,
    "timeout": 408,
    "overloaded_error": 503,
}


def stream_error(error: object, secrets: Iterable[str]) -> KymaError:
    """A `data: {"error": …}` event mid-stream: the gateway's own error, with the word its status or type names.

    A numeric `status`/`code` is read as an HTTP status; else `type`/`code` names one; else it is a 502.
    """
    payload = cast(Mapping[str, object], error) if isinstance(error, Mapping) else {"message": error}
    status = next((v for key in ("status", "code") if isinstance(v := payload.get(key), int) and 400 <= v <= 599), None)
    named = next((str(payload[key]) for key in ("type", "code") if isinstance(payload.get(key), str)), "")
    message = payload.get("message")
    detail = " ".join(str(message if message is not None else named or "no details").split())[:_UPSTREAM_TEXT_LIMIT]
    return error_for_status(status or _EVENT_STATUSES.get(named, 502), redact(f"{detail} (sent mid-stream)", secrets))


def deadline_error(seconds: float) -> UpstreamTimeoutError:
    """The call's own deadline passed before Kyma answered."""
    return UpstreamTimeoutError(
        f"Kyma did not answer within the {seconds:g} s deadline (KYMA_TOOL_TIMEOUT_SECONDS). "
        "Retry, ask for fewer tokens, or use a faster model such as llama-3.3-70b."
    )


def request_timeout_error(method: str, path: str, attempts: int) -> UpstreamTimeoutError:
    after = f" after {attempts} attempts" if attempts > 1 else ""
    return UpstreamTimeoutError(f"Kyma did not answer {method} {path} in time{after}. Retry, or ask for fewer tokens.")


def unreachable_error(base_url: str, failure: str, attempts: int) -> UpstreamUnavailableError:
    after = f" after {attempts} attempts" if attempts > 1 else ""
    return UpstreamUnavailableError(
        f"Could not reach Kyma at {base_url} ({failure}){after}. Check the network and KYMA_BASE_URL, then retry."
    )


def answer_broke_error(what: str, failure: str) -> UpstreamUnavailableError:
    """Kyma's answer broke off, or could not be decoded (e.g. a corrupt gzip body)."""
    return UpstreamUnavailableError(
        f"Kyma's answer to {what} broke off or could not be decoded ({failure}); retry later."
    )


def not_json_error(what: str, *, an_object: bool = False) -> UpstreamUnavailableError:
    shape = "a JSON object" if an_object else "readable JSON"
    return UpstreamUnavailableError(f"Kyma's answer to {what} was not {shape}; retry later.")


def answer_too_large_error(url: str, limit: int) -> UpstreamUnavailableError:
    return UpstreamUnavailableError(
        f"The answer from {url} is larger than {limit:,} bytes (a KYMA_MAX_* bound); it was not read."
    )


def call_bytes_exceeded_error(url: str, total: int) -> UpstreamUnavailableError:
    return UpstreamUnavailableError(
        f"The images of this call passed {total:,} bytes together (KYMA_MAX_IMAGE_BYTES_PER_CALL); {url} was not read."
    )


def redirected_answer_error(status: int, where: str, base_url: str) -> UpstreamUnavailableError:
    return UpstreamUnavailableError(
        f"Kyma answered {status}, a redirect to {where}, instead of an answer. "
        f"Check KYMA_BASE_URL ({base_url}) is Kyma's API address, then retry."
    )


def not_an_event_stream_error(status: int, kind: str, said: str) -> UpstreamUnavailableError:
    return UpstreamUnavailableError(
        f"Kyma answered {status} with {kind} instead of an event stream ({said}). "
        "Check KYMA_BASE_URL points at Kyma's API (…/v1), then retry."
    )


def no_model_list_error() -> UpstreamUnavailableError:
    return UpstreamUnavailableError("The gateway's model list had no 'data' array; retry later.")


def stream_broke_error(failure: str) -> StreamBrokenError:
    return StreamBrokenError(f"The stream from Kyma broke off ({failure}).")


def stream_unfinished_error() -> StreamBrokenError:
    return StreamBrokenError("The stream from Kyma ended before the reply finished (no finish_reason).")


def stream_line_too_long_error(limit: int) -> StreamBrokenError:
    return StreamBrokenError(
        f"Kyma's stream sent a line longer than {limit:,} bytes (KYMA_MAX_SSE_LINE_BYTES); it was not read further."
    )


def no_slot_error(why: str, seconds: int) -> RateLimitedError:
    """`why` is what limits the rate, e.g. "Kyma allows 30 requests/min (25 per model) on Tier 0"."""
    return RateLimitedError(
        f"{why}; this call would wait {seconds} s for a slot, past its deadline. "
        f"Try again in {seconds} s, or send fewer calls at once.",
        retry_after_seconds=seconds,
    )


def jobs_in_flight_error(cap: int) -> RateLimitedError:
    return RateLimitedError(
        f"{cap} image jobs are already in flight, the most Kyma runs and queues at once for this tier. "
        "Wait for one to finish (get_image_job), then try again.",
        retry_after_seconds=10,
    )


# --- Models -------------------------------------------------------------------------------------


def unknown_model_error(model_id: str, known: Iterable[str], *, next_step: str = "") -> ModelNotFoundError:
    """The one "unknown model" text: the id, the closest `known` ids, then `next_step` (else: list_models)."""
    import difflib

    close = difflib.get_close_matches(model_id, list(known), n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    then = next_step or "Call list_models to see the valid ids."
    return ModelNotFoundError(f"Kyma does not serve model '{model_id[:_SHOWN_CHARS]}'.{hint} {then}")


def not_an_image_model_error(
    model_id: str, *, kind: str | None, image_models: Sequence[tuple[str, float | None]]
) -> ModelNotFoundError:
    """`model_id` is a model of another `kind`, or unknown (`None`); `image_models` are (id, USD per image)."""
    listed = ", ".join(f"{mid} (${usd:g}/image)" if usd is not None else mid for mid, usd in image_models)
    choose = f"Use one of: {listed}." if listed else "See list_models(kind=image)."
    if kind is not None:
        return ModelNotFoundError(f"'{model_id}' is a {kind} model, not an image model. {choose}")
    return unknown_model_error(model_id, (mid for mid, _ in image_models), next_step=choose)


def no_vision_error(model_id: str, vision_models: Sequence[str]) -> InvalidRequestError:
    names = ", ".join(vision_models) or "a vision model from list_models(capability='vision')"
    return InvalidRequestError(
        f"Model '{model_id}' does not accept images (the gateway's model list gives it no image input). "
        f"Use a vision model such as {names}."
    )


# --- Tool arguments -----------------------------------------------------------------------------

ARGUMENT_FORMATS = {
    "size": "auto, WxH such as 1024x768, or an aspect such as 16:9",
    "model": "a model id such as qwen-3.6-plus",
    "job_id": "the job_id a generate_image result gave",
    "idempotency_key": "printable ASCII without spaces",
}
"""What a value of each pattern-checked argument looks like, said instead of the pattern itself."""


def argument_problem(where: str, message: str, kind: str) -> str:
    """One validation problem, worded for the model (a pattern is described, never printed)."""
    if kind == "string_pattern_mismatch":
        shape = ARGUMENT_FORMATS.get(where.split(".")[0])
        return f"{where}: must be {shape}" if shape else f"{where}: has a format it does not accept"
    return f"{where}: {message}"


def bad_arguments_error(tool: str, problems: Sequence[str]) -> InvalidRequestError:
    return InvalidRequestError(f"Bad arguments for {tool}: {'; '.join(problems)}. Fix them and call again.")


def unknown_tool_error(name: str, tools: Iterable[str]) -> InvalidRequestError:
    return InvalidRequestError(
        f"There is no tool '{name[:_SHOWN_CHARS]}'. Call one of: {', '.join(sorted(tools))} (see tools/list)."
    )


def too_few_models_error() -> InvalidRequestError:
    return InvalidRequestError("compare needs at least two different models in `models`.")


def sent_nothing_error(model: str) -> UpstreamTimeoutError:
    return UpstreamTimeoutError(f"{model} sent nothing before the deadline.")


def no_tokens_before_deadline_error(seconds: float) -> UpstreamTimeoutError:
    return UpstreamTimeoutError(
        f"No tokens arrived before the {seconds:g} s deadline (KYMA_TOOL_TIMEOUT_SECONDS); "
        "compare fewer or faster models, or ask for less."
    )


def prompt_or_messages_error() -> InvalidRequestError:
    return InvalidRequestError("Give exactly one of `prompt` (a string) or `messages` (a non-empty list).")


def unparsable_json_argument_error(name: str) -> InvalidRequestError:
    return InvalidRequestError(f"`{name}` looks like JSON but does not parse; send valid JSON.")


def tools_not_an_array_error() -> InvalidRequestError:
    return InvalidRequestError('`tools` must be a JSON array of {"type":"function","function":{…}} objects.')


def images_need_user_message_error() -> InvalidRequestError:
    return InvalidRequestError("`images` need a user message to attach to; add a prompt.")


# --- Local image files (chat's `images`) --------------------------------------------------------

IMAGE_FORMATS = "PNG, JPEG, GIF or WebP"


def bad_data_url_error() -> InvalidRequestError:
    return InvalidRequestError("A data URL image must look like data:image/png;base64,<data>.")


def unsupported_scheme_error(source: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"Image '{source[:80]}' uses an unsupported scheme; give an https URL, a data URL or a local file path."
    )


def no_file_error(path: str, *, absolute: bool, reason: str = "") -> InvalidRequestError:
    because = f" ({reason})" if reason else ""
    hint = "" if absolute else " Relative paths depend on the host's working folder: use an absolute path."
    return InvalidRequestError(f"No readable file at '{path[:_SHOWN_CHARS]}'{because}.{hint}")


def outside_image_dirs_error(path: str, allowed: Sequence[str]) -> PathDeniedError:
    folders = ", ".join(allowed) or "none (KYMA_IMAGE_DIRS is empty)"
    return PathDeniedError(
        f"'{path[:_SHOWN_CHARS]}' is outside the folders images may be read from: {folders}. Move the image there, "
        "or ask the operator to add its folder to KYMA_IMAGE_DIRS."
    )


def images_past_call_bound_error(path: str, left: int) -> InvalidRequestError:
    return InvalidRequestError(
        f"'{path[:_SHOWN_CHARS]}' would take this call's local images past the {left:,} bytes left of the per-call "
        "bound (KYMA_MAX_IMAGE_BYTES_PER_CALL). Send fewer or smaller images."
    )


def not_regular_file_error(path: str) -> PathDeniedError:
    return PathDeniedError(f"'{path[:_SHOWN_CHARS]}' is not a regular file; only {IMAGE_FORMATS} image files are read.")


def image_too_large_error(path: str, size: int, limit: int) -> InvalidRequestError:
    return InvalidRequestError(
        f"'{path[:_SHOWN_CHARS]}' is {size / 1_048_576:.1f} MB; images are limited to {size_text(limit)}. "
        "Downscale it first."
    )


def not_an_image_error(path: str) -> PathDeniedError:
    return PathDeniedError(f"'{path[:_SHOWN_CHARS]}' is not a {IMAGE_FORMATS} image; other files are never read.")


def unreadable_file_error(path: str, reason: str | None) -> PathDeniedError:
    return PathDeniedError(f"'{path[:_SHOWN_CHARS]}' could not be read ({reason or 'error'}).")


# --- Image jobs and their files -----------------------------------------------------------------


def no_job_error(job_id: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"Kyma has no image job '{job_id}' for this API key. Use the job_id a generate_image result gave "
        "(jobs are visible only to the key that submitted them)."
    )


def incomplete_job_error() -> UpstreamUnavailableError:
    return UpstreamUnavailableError("Kyma's image job answer had no id or status; retry later.")


def unusable_job_id_error(shown_id: str) -> UpstreamUnavailableError:
    return UpstreamUnavailableError(f"Kyma's image job answer had an unusable id ({shown_id!r}).")


def edit_needs_image_url_error(model_id: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"{model_id} edits an existing image (the gateway's model list says so): pass image_url (an https "
        "URL of the source image), or use a text-to-image model such as recraft-v4."
    )


def image_url_not_https_error() -> InvalidRequestError:
    return InvalidRequestError("image_url must be an https:// URL that Kyma can fetch.")


def submit_timeout_error() -> UpstreamTimeoutError:
    return UpstreamTimeoutError("Kyma did not accept the image job in time.")


def with_retry_hint(error: UpstreamTimeoutError | UpstreamUnavailableError, key: str) -> KymaError:
    """The same error, telling the agent how to retry a submit Kyma may have received without paying twice."""
    return error.extended(
        f'Kyma may have started the job anyway: retry generate_image with idempotency_key="{key}" '
        "to get that job instead of paying for a second one."
    )


def after_submit(error: KymaError, job_id: str) -> KymaError:
    """The same error, naming the submitted job and how to pick it up (a new submit would be billed again)."""
    if job_id in error.detail and "get_image_job" in error.detail:
        return error
    return error.extended(
        f'Image job {job_id} was submitted: call get_image_job with job_id="{job_id}" to get its images; '
        "it does not submit or charge again."
    )


def job_failed_error(
    job_id: str, model: str, status: str, *, reason: str | None, charged: float | None, held: float | None
) -> JobFailedError:
    """`[job_failed]` with Kyma's reason and what happened to the money."""
    what = {"failed": "failed", "expired": "expired before it finished", "refunded": "was refunded"}
    said = f" (Kyma says: {reason.rstrip('. ')})" if reason else ""
    if charged:
        money = f"Kyma reports ${charged:g} charged."
    elif held is not None:
        money = f"The ${held:g} hold was refunded; nothing was charged."
    else:
        money = "Nothing was charged."
    return JobFailedError(
        f"Image job {job_id} ({model}) {what.get(status, status)}{said}. {money} Call generate_image "
        "again without this job's idempotency_key (reusing it returns this same job), or try another prompt or model."
    )


def download_failed_error(job_id: str, index: int, cause: KymaError) -> UpstreamUnavailableError:
    return UpstreamUnavailableError(
        f"Job {job_id} succeeded, but downloading image {index} failed: {cause.detail} Call get_image_job with "
        f'job_id="{job_id}" to try again; the job is not run or charged again.'
    )


def saved_file_unreadable_error(path: object, reason: str | None) -> PathDeniedError:
    return PathDeniedError(f"Cannot read '{path}' ({reason or 'error'}).")


def bad_file_url_error(url: str) -> UpstreamUnavailableError:
    return UpstreamUnavailableError(f"Kyma gave a file URL that is not http(s): '{url}'.")


def redirect_not_https_error(url: str) -> UpstreamUnavailableError:
    return UpstreamUnavailableError(f"The download redirected to {url}, which is not https.")


def not_an_image_download_error(url: str, kind: str) -> UpstreamUnavailableError:
    return UpstreamUnavailableError(f"{url} is {kind}, not an image; it was not downloaded.")


def not_an_image_file_error(url: str) -> UpstreamUnavailableError:
    return UpstreamUnavailableError(f"{url} did not send a {IMAGE_FORMATS} image; it was not saved.")


def bad_inline_image_error() -> UpstreamUnavailableError:
    return UpstreamUnavailableError("The gateway's b64_json image was not valid base64.")


def download_broke_error(url: str, failure: str) -> UpstreamUnavailableError:
    return UpstreamUnavailableError(f"The download of {url} broke off ({failure}); retry.")


def too_many_redirects_error(url: str, redirects: int) -> UpstreamUnavailableError:
    return UpstreamUnavailableError(f"{url} redirected more than {redirects} times.")


def folder_error(folder: object, reason: str | None) -> PathDeniedError:
    return PathDeniedError(
        f"Cannot create the image folder '{folder}' ({reason or 'error'}). "
        "Set KYMA_OUTPUT_DIR to a writable absolute path and restart the server."
    )


def unsafe_file_name_error(name: str) -> PathDeniedError:
    return PathDeniedError(f"Refusing to save an image as '{name[:100]}'.")


def unwritable_file_error(path: object, reason: str | None) -> PathDeniedError:
    return PathDeniedError(f"Cannot write '{path}' ({reason or 'error'}). Set KYMA_OUTPUT_DIR to a writable folder.")
