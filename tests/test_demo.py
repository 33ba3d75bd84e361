"""`kyma-mcp demo` as a first impression: says it is the emulator, prints money plainly, shows a capped call
refused and a 3-model compare, ends on the next step."""

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


@pytest.mark.slow
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
    before_compare = out.split("\n== compare ", 1)[0].splitlines()
    streamed = [line for line in before_compare if "characters from" in line or "first tokens from" in line]
    assert len({line.rsplit(" from ", 1)[1] for line in streamed}) == 1  # one model per chat's progress
    assert "== resources/read kyma://conversations/" in out  # a two-turn thread with a model switch, read back
    assert "· deepseek-r1 · complete ·" in out
    assert "· qwen-3.6-plus · complete ·" in out
    refused = out.split('"max_cost_usd": 0.0005}', 1)[1]  # a capped call, refused before it is sent
    assert "[ERROR]\n  | [budget_exceeded] This call's estimate is over max_cost_usd $0.0005: kimi-k2.6:" in refused
    compared = out.split("\n== compare ", 1)[1].split("\n== ", 1)[0]  # a 3-model compare, each model streaming
    assert all(f"| ## {model} · stop · " in compared for model in ("qwen-3.6-plus", "kimi-k2.6", "deepseek-r1"))
    assert "Total cost: $0.000" in compared
    assert "characters from kimi-k2.6" in compared
    assert re.search(r"Spend this day: \$0\.\d{4} over 6 calls; no budget", out)  # get_limits: the period's money
    assert out.rstrip().splitlines()[-1].startswith("next: kyma-mcp install --client ")
