"""The hostile bench (bench/hostile.py) still runs: a few of its cases, tiny, against this checkout."""

import sys
from pathlib import Path

import anyio
import pytest

from bench.hostile import Counts, Target, run, to_markdown


@pytest.mark.slow
@pytest.mark.anyio
async def test_the_hostile_bench_runs_its_cases_and_reports_each(tmp_path: Path) -> None:
    target = Target("now", Path(sys.executable).with_name("kyma-mcp"))
    with anyio.fail_after(120):
        rows = await run([target], ["unterminated", "fields", "sessions"], Counts.tiny(), tmp_path)

    unterminated, fields, sessions = rows
    assert [row.case for row in rows] == [
        "SSE unterminated `data:` line",
        "reply with 64 KiB `model`/`finish_reason`",
        "50 sessions (default cap)",
    ]
    assert unterminated.outcome.startswith("[upstream_unavailable] Kyma's stream sent a line longer than")
    assert fields.outcome.startswith("reply of 5 chars")
    assert sessions.outcome == "opened: 50 x 200"
    assert [row.legit[:3] for row in rows] == ["yes"] * 3
    assert not any(row.killed for row in rows)
    assert all(row.peak_mib is not None and row.peak_mib < 100 for row in rows)
    table = to_markdown(rows, [target])
    assert all(f"| {row.case} | now |" in table for row in rows)
