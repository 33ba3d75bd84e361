"""The command line: version, and a bad setting stops start-up with one line and exit code 2."""

import subprocess
import sys

import pytest

from kyma_mcp import __version__
from kyma_mcp.cli import main


def test_version_prints_and_exits(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])

    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"kyma-mcp {__version__}"


@pytest.mark.parametrize(
    ("variable", "value"),
    [("KYMA_BASE_URL", "not a url"), ("KYMA_TOOL_TIMEOUT_SECONDS", "-5")],
)
def test_bad_setting_stops_with_one_line_and_exit_2(variable: str, value: str) -> None:
    env = {"PATH": "/usr/bin:/bin", variable: value}
    done = subprocess.run(
        [sys.executable, "-m", "kyma_mcp"], env=env, capture_output=True, text=True, timeout=30, check=False
    )

    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert variable in lines[0]
    assert lines[0].startswith("kyma-mcp: ")


def test_a_bad_key_value_is_never_echoed(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("KYMA_API_KEY", "ky-canary-secret")
    monkeypatch.setenv("KYMA_TIER", "12")

    assert main([]) == 2
    err = capsys.readouterr().err
    assert "KYMA_TIER" in err
    assert "canary" not in err
