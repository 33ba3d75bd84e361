"""Asking the user before a costly call: `KYMA_CONFIRM_ABOVE_USD`.

A billed call whose estimate is above the threshold is sent only once the user agreed:
- a client that declared the elicitation capability (form mode) is asked, through the SDK's
  `Resolve`/`Elicit` helper: on the 2026-07-28 protocol it rides an `InputRequiredResult` round
  trip; on the handshake era it is an `elicitation/create` request mid-call, answered within
  `KYMA_TOOL_TIMEOUT_SECONDS`. Decline, cancel or no answer refuse the call;
- a client that did not declare it is never asked (that is a protocol error): the call is refused
  with the estimate and a one-time `confirm` token, bound to the call's fingerprint and valid
  for `TOKEN_SECONDS`; the agent asks the user in its own words and passes the token back. Tokens
  live in the store, so any replica redeems them (once).

Each billed tool declares a resolver (run by the SDK before the tool's body) that estimates the
call and decides whether to ask; the body, which quotes the call again as it will be sent, then
calls `Confirmations.check` with what the resolver found. Nothing is reserved or sent before.
"""

from __future__ import annotations

import enum
import hashlib
import json
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

import anyio
from mcp.server.elicitation import AcceptedElicitation, ElicitationResult
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.resolve import Elicit
from mcp.types import ClientCapabilities
from mcp_types.version import is_version_at_least
from pydantic import BaseModel, Field

from kyma_mcp.errors import KymaError, StoreUnavailableError, confirmation_needed_error, user_declined_error
from kyma_mcp.spend import Quote, usd

if TYPE_CHECKING:
    from kyma_mcp.store import Store, StoreHandle

TOKEN_SECONDS = 600.0
"""How long a `confirm` token stays valid."""
MAX_TOKENS = 256
"""Outstanding tokens kept at most; the oldest go first."""
INPUT_REQUIRED_VERSION = "2026-07-28"
"""From this protocol version on, elicitation rides an `InputRequiredResult` (the SDK's resolver path)."""


class SpendConfirmation(BaseModel):
    """The form the user sees: the question names the model, the estimate and the cap."""

    confirm: bool = Field(title="Send this call", description="Spend the estimated amount on this call")


class Consent(enum.Enum):
    """What the resolver found before the body ran."""

    NOT_NEEDED = "not needed"
    """No threshold, a dry run, a token to redeem, or an estimate at or under the threshold."""
    NOT_ASKED = "not asked"
    """The client cannot be asked (no elicitation capability)."""
    ACCEPTED = "accepted"
    DECLINED = "declined"
    """Declined, cancelled, not answered in time, or answered `confirm: false`."""


ConsentOutcome = ElicitationResult[SpendConfirmation]
"""What a tool's `consent` parameter receives: the SDK's elicitation outcome, or (when the resolver
decided without asking) an accepted outcome carrying a `Consent`."""


def can_elicit(capabilities: ClientCapabilities | None) -> bool:
    """Whether the client declared form elicitation (a bare `elicitation: {}` counts, url-only does not)."""
    elicitation = capabilities.elicitation if capabilities is not None else None
    return elicitation is not None and (elicitation.form is not None or elicitation.url is None)


def question(tool: str, quote: Quote, threshold: float, cap: float | None) -> str:
    """The question the user reads: what will be spent on what, against which limits. It must read the
    same when the resolver runs again on the 2026-07-28 retry, or the SDK asks again."""
    capped = f"; this call's cap is max_cost_usd {usd(cap)}" if cap is not None else ""
    return (
        f"kyma-mcp asks before spending more than KYMA_CONFIRM_ABOVE_USD {usd(threshold)}{capped}. "
        f"Send this {tool} call? {quote.text(source=False)}"
    )


async def ask(
    ctx: Context[Any, Any],
    tool: str,
    *,
    threshold: float | None,
    cap: float | None,
    skip: bool,
    estimate: Callable[[], Awaitable[Quote | None]],
    answer_seconds: float,
) -> Elicit[SpendConfirmation] | Consent:
    """A billed tool's resolver body: ask the user when the estimate is above `threshold`.

    `skip` (a dry run, a `confirm` token) and any failure to estimate (the body reports it) need no
    question. Returns the SDK's `Elicit` marker on the 2026-07-28 protocol; on the handshake era it
    asks itself, so that no answer within `answer_seconds` counts as a decline.
    """
    if threshold is None or skip:
        return Consent.NOT_NEEDED
    try:
        quote = await estimate()
    except KymaError:
        return Consent.NOT_NEEDED
    if quote is None or quote.cost_usd is None or quote.cost_usd <= threshold:
        return Consent.NOT_NEEDED
    if not can_elicit(ctx.client_capabilities):
        return Consent.NOT_ASKED
    message = question(tool, quote, threshold, cap)
    version = ctx.protocol_version
    if version is not None and is_version_at_least(version, INPUT_REQUIRED_VERSION):
        return Elicit(message, SpendConfirmation)
    if not ctx.request_context.session.can_send_request:  # e.g. stateless HTTP: no way to ask mid-call
        return Consent.NOT_ASKED
    outcome: ConsentOutcome | None = None
    with anyio.move_on_after(answer_seconds):
        try:
            outcome = await ctx.elicit(message, SpendConfirmation)
        except Exception:  # the client failed to answer: as good as no
            return Consent.DECLINED
    return consent_of(outcome) if outcome is not None else Consent.DECLINED


def consent_of(outcome: ConsentOutcome) -> Consent:
    if not isinstance(outcome, AcceptedElicitation):
        return Consent.DECLINED
    data = cast(object, outcome.data)  # a `Consent` when the resolver decided without asking
    if isinstance(data, Consent):
        return data
    return Consent.ACCEPTED if isinstance(data, SpendConfirmation) and data.confirm else Consent.DECLINED


def fingerprint(tool: str, request: object) -> str:
    """SHA-256 of what the call will send; a token is good only for the same call."""
    text = json.dumps([tool, request], sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


class Confirmations:
    """The outstanding `confirm` tokens: one-time, bound to a call's fingerprint, expiring.

    Kept in the store when it can be used, so a token issued by one process (or replica behind a
    load balancer) is good once at any; else in this process's memory.
    """

    def __init__(self, store: StoreHandle | None = None, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock
        self._tokens: OrderedDict[str, tuple[str, float]] = OrderedDict()

    async def _shared(self) -> Store | None:
        if self._store is None:
            return None
        try:
            return await self._store.get()
        except StoreUnavailableError:
            return None

    async def issue(self, call: str) -> str:
        now = self._clock()
        token = secrets.token_hex(8)
        store = await self._shared()
        if store is not None:
            try:
                await store.issue_token(token, call, expires_at=now + TOKEN_SECONDS, now=now)
                return token
            except StoreUnavailableError:  # opened, but cannot be written (locked, full): keep it here
                pass
        for old, (_, until) in list(self._tokens.items()):
            if until < now:
                del self._tokens[old]
        while len(self._tokens) >= MAX_TOKENS:
            self._tokens.popitem(last=False)
        self._tokens[token] = (call, now + TOKEN_SECONDS)
        return token

    async def redeem(self, token: str, call: str) -> bool:
        """Use `token` for `call`: True once, if it was issued for this very call and has not expired."""
        now = self._clock()
        store = await self._shared()
        try:
            if store is not None and await store.redeem_token(token, call, now=now):
                return True
        except StoreUnavailableError:
            pass
        held = self._tokens.get(token)  # issued while the store could not be used
        if held is None or held[0] != call:
            return False
        del self._tokens[token]
        return held[1] >= now

    async def check(
        self,
        outcome: ConsentOutcome,
        quote: Quote | None,
        *,
        threshold: float | None,
        call: Callable[[], str],
        token: str | None,
    ) -> None:
        """Let the call go on, or refuse it: declined by the user, or needing a token from the agent.

        `call` gives the call's `fingerprint`, worked out only when a token is needed (it hashes the
        whole request, a long prompt included, which most calls never need).

        Raises:
            BudgetExceededError: the estimate is above `threshold` and the user has not agreed.
        """
        if threshold is None or quote is None or quote.cost_usd is None or quote.cost_usd <= threshold:
            return
        if token is not None and await self.redeem(token, call()):
            return
        consent = consent_of(outcome)
        if consent is Consent.ACCEPTED:
            return
        if consent is Consent.DECLINED:
            raise user_declined_error(quote.text(), usd(threshold))
        minutes = round(TOKEN_SECONDS / 60)
        raise confirmation_needed_error(
            quote.text(), usd(threshold), await self.issue(call()), minutes, stale=token is not None
        )
