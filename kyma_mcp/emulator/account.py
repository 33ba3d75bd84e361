"""The caller's account: GET /v1/credits/balance and GET /v1/auth/limits (recorded
answers: tests/fixtures/kyma/auth_limits_*.json).

Documented: `balance` and `low_balance`; `rpm_limit`, `rpm_used`, `rpm_remaining`,
`has_credits`, `used_today`. INFERRED: `currency`, `tier`, `lifetime_purchased` (the tier's
minimum deposit, since tiers follow purchases), `low_balance` below $1, and the limit fields
named after the tier matrix (`per_model_rpm`, `tpm_limit`, `max_single_request`,
`image_concurrent`); `used_today` counts chat requests since the emulator started or was reset.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kyma_mcp.emulator.dialects import DOCUMENTED_BALANCE_FIELDS, DOCUMENTED_LIMITS_FIELDS, picked
from kyma_mcp.emulator.parsing import authenticate
from kyma_mcp.emulator.state import EmulatorState

LOW_BALANCE_USD = 1.0


class AccountRoutes:
    def __init__(self, state: EmulatorState) -> None:
        self._state = state

    def routes(self) -> list[Route]:
        return [
            Route("/v1/credits/balance", self.balance, methods=["GET"]),
            Route("/v1/auth/limits", self.limits, methods=["GET"]),
        ]

    async def balance(self, request: Request) -> Response:
        authenticate(request)
        balance = self._state.balance
        limits = self._state.limits
        body = {
            "balance": balance,
            "low_balance": balance < LOW_BALANCE_USD,
            "currency": "USD",
            "tier": limits.tier,
            "lifetime_purchased": limits.min_deposit,
        }
        documented = self._state.switches.dialect == "documented"
        return JSONResponse(picked(body, DOCUMENTED_BALANCE_FIELDS) if documented else body)

    async def limits(self, request: Request) -> Response:
        authenticate(request)
        state = self._state
        limits = state.limits
        used, _ = state.rate_window.usage(state.switches.rate_window_seconds)
        body = {
            "tier": limits.tier,
            "rpm_limit": limits.rpm,
            "rpm_used": used,
            "rpm_remaining": max(limits.rpm - used, 0),
            "per_model_rpm": limits.per_model_rpm,
            "tpm_limit": limits.tpm,
            "max_single_request": limits.max_single_request,
            "image_concurrent": limits.image_concurrent,
            "has_credits": state.balance > 0,
            "used_today": state.requests["/v1/chat/completions"],
        }
        documented = state.switches.dialect == "documented"
        return JSONResponse(picked(body, DOCUMENTED_LIMITS_FIELDS) if documented else body)
