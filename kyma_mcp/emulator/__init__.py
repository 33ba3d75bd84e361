"""A faithful local Kyma gateway: the documented API on loopback, with switches for faults.

Used by kyma-mcp's own tests, `kyma-mcp demo`, benchmarks, and anyone developing an agent
offline (`kyma-mcp emulator`). It follows `reference/kyma-api.md`; where Kyma's behaviour is
undocumented the module that guesses says INFERRED in its docstring.

    with running_emulator(Switches(latency_ms=50)) as emulator:
        ...  # KYMA_BASE_URL=emulator.base_url, KYMA_API_KEY=ky-anything
        emulator.switches.fail_next.append(503)
        assert emulator.state.charge_count == 1
"""

from kyma_mcp.emulator.app import create_app
from kyma_mcp.emulator.runner import EmulatorHandle, main, running_emulator
from kyma_mcp.emulator.state import EmulatorState
from kyma_mcp.emulator.switches import Switches

__all__ = ["EmulatorHandle", "EmulatorState", "Switches", "create_app", "main", "running_emulator"]
