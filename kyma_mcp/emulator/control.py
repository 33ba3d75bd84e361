"""Runtime control under /_emulator, so a subprocess emulator can be driven over HTTP.

GET /_emulator/switches, POST /_emulator/switches (a JSON object of fields to change; 400 on
an unknown field, a wrong type or a value out of range), POST /_emulator/reset (the switches
the emulator started with; empty ledger, jobs, rate window and counts), GET /_emulator/state.
No auth: the emulator is a local test double, bound to loopback by default.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kyma_mcp.emulator.errors import invalid_request
from kyma_mcp.emulator.parsing import json_object
from kyma_mcp.emulator.state import EmulatorState


class ControlRoutes:
    def __init__(self, state: EmulatorState) -> None:
        self._state = state

    def routes(self) -> list[Route]:
        return [
            Route("/_emulator/switches", self.get_switches, methods=["GET"]),
            Route("/_emulator/switches", self.update_switches, methods=["POST"]),
            Route("/_emulator/reset", self.reset, methods=["POST"]),
            Route("/_emulator/state", self.snapshot, methods=["GET"]),
        ]

    async def get_switches(self, request: Request) -> Response:
        return JSONResponse(self._state.switches.to_json())

    async def update_switches(self, request: Request) -> Response:
        changes = await json_object(request)
        try:
            self._state.switches.update(changes)
        except ValueError as exc:
            raise invalid_request(str(exc), "invalid_switch") from None
        return JSONResponse(self._state.switches.to_json())

    async def reset(self, request: Request) -> Response:
        self._state.reset()
        return JSONResponse(self._state.switches.to_json())

    async def snapshot(self, request: Request) -> Response:
        return JSONResponse(self._state.snapshot())
