"""The command line: version, and a bad setting stops start-up with one line and exit code 2."""

import os
import subprocess
import sys
import threading

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
    [
        ("KYMA_BASE_URL", "not a url"),
        ("KYMA_TOOL_TIMEOUT_SECONDS", "-5"),
        ("KYMA_LOG_LEVEL", "LOUD"),
        ("KYMA_OUTPUT_DIR", "~nosuchuser-kyma/images"),
    ],
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


def test_help_lists_subcommands_options_and_environment(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])

    out = capsys.readouterr().out
    for word in ("demo", "install", "uninstall", "emulator", "--transport", "--log-level"):
        assert word in out
    assert "KYMA_BASE_URL" in out
    assert "https://kymaapi.com/v1" in out
    assert "KYMA_LOG_LEVEL" in out


@pytest.mark.parametrize("subcommand", ["demo", "install", "uninstall", "doctor", "emulator"])
def test_every_subcommand_prints_help_instead_of_running(subcommand: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([subcommand, "--help"])

    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: kyma-mcp {subcommand}")


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_a_terminal_start_hints_on_stderr_and_keeps_stdout_clean() -> None:
    import pty

    controller, terminal = pty.openpty()
    env = {"PATH": "/usr/bin:/bin"}
    process = subprocess.Popen(
        [sys.executable, "-m", "kyma_mcp"], stdin=terminal, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    os.close(terminal)
    backstop = threading.Timer(30, process.terminate)  # without a hint, readline would wait forever
    backstop.start()
    try:
        assert process.stderr is not None
        hint = process.stderr.readline().decode()
    finally:
        backstop.cancel()
        process.terminate()
        out, err = process.communicate(timeout=30)
        os.close(controller)

    assert "waiting for an MCP host" in hint
    assert "kyma-mcp demo" in hint
    assert "kyma-mcp install" in hint
    assert out == b""
    assert err.strip() == b""  # that one line, then nothing more
