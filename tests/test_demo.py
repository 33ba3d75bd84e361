"""`kyma-mcp demo` as a first impression: says it is the emulator, prints money plainly, ends on the next step."""

import re
import subprocess
import sys

import pytest

from kyma_mcp.demo import money


@pytest.mark.parametrize(
    ("usd", "shown"), [(6e-05, "$0.00006"), (0.000104, "$0.000104"), (0.081, "$0.081"), (0.0, "$0"), (12.5, "$12.5")]
)
def test_money_has_no_exponent(usd: float, shown: str) -> None:
    assert money(usd) == shown


def test_the_demo_reads_as_a_first_impression() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "kyma_mcp", "demo"], capture_output=True, text=True, timeout=120, check=False
    )

    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert "local stand-in for Kyma" in out
    assert "nothing is billed" in out
    assert not re.search(r"(?:\$|: )[\d.]+e-\d", out)  # no $6e-05 (job ids in file names may hold "9e-1")
    assert re.search(r"cost_usd: \$0\.0000\d", out)
    streamed = [line for line in out.splitlines() if "characters from" in line or "first tokens from" in line]
    assert len({line.rsplit(" from ", 1)[1] for line in streamed}) == 1
    assert "== resources/read kyma://conversations/" in out  # a two-turn thread with a model switch, read back
    assert "· deepseek-r1 · complete ·" in out
    assert "· qwen-3.6-plus · complete ·" in out
    assert out.rstrip().splitlines()[-1].startswith("next: kyma-mcp install --client ")
