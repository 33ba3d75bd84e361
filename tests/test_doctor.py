"""`kyma-mcp doctor` against the emulator (all ✓), a closed port and a bad key (the right ✗ and fix, exit 1)."""

import json
import socket
from pathlib import Path

import pytest

from kyma_mcp.doctor import main
from kyma_mcp.emulator import EmulatorHandle
from kyma_mcp.install.command import install_main
from kyma_mcp.install.hosts import Launch, Machine
from tests.conftest import TEST_KEY


def machine_for(tmp_path: Path, base_url: str, key: str | None = TEST_KEY) -> Machine:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {
        "PATH": "/usr/bin:/bin",
        "KYMA_BASE_URL": base_url,
        "KYMA_OUTPUT_DIR": str(tmp_path / "images"),
        "KYMA_STORE_URL": f"sqlite://{tmp_path / 'store.sqlite3'}",
    }
    if key is not None:
        env["KYMA_API_KEY"] = key
    return Machine(home=home, cwd=tmp_path, env=env, platform="linux")


def installed(machine: Machine, *clients: str) -> Machine:
    for client in clients:
        extra = ["--api-key-env", "KYMA_API_KEY"] if client == "claude-desktop" else []
        assert install_main(["--client", client, *extra], machine=machine) == 0
    return machine


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def failures(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("✗")]


def test_everything_passes_against_the_emulator(
    emulator: EmulatorHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    machine = installed(machine_for(tmp_path, emulator.base_url), "claude-desktop", "codex", "cursor")
    capsys.readouterr()

    assert main([], machine=machine) == 0

    out = capsys.readouterr().out
    assert failures(out) == []
    for name in ("KYMA_API_KEY", "gateway", "key accepted", "tier", "catalog", "image folder", "store", "clock"):
        assert f"✓ {name}:" in out
    assert out.count("'kyma': runs ") == 3
    assert "catalog: live" in out
    assert TEST_KEY not in out
    assert "ky-…cdef" in out
    assert out.rstrip().endswith("checks passed.")


def test_json_output_for_scripts(emulator: EmulatorHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    machine = installed(machine_for(tmp_path, emulator.base_url), "gemini")
    capsys.readouterr()

    assert main(["--json"], machine=machine) == 0

    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True
    assert all(check["ok"] for check in report["checks"])
    assert {"gateway", "key accepted", "catalog"} <= {check["name"] for check in report["checks"]}


def test_a_closed_port_fails_the_gateway_with_its_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    machine = installed(machine_for(tmp_path, url), "cursor")
    capsys.readouterr()

    assert main([], machine=machine) == 1

    out = capsys.readouterr().out
    assert f"✗ gateway: {url}/models could not be reached" in out
    assert f"fix: check KYMA_BASE_URL ({url})" in out
    assert "✗ catalog: the bundled snapshot" in out
    assert "✓ Cursor" in out  # the host entry itself is fine


def test_a_bad_key_fails_the_key_check_with_its_fix(
    emulator: EmulatorHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = "bad-key-that-kyma-refuses-9876"
    machine = installed(machine_for(tmp_path, emulator.base_url, key=bad), "codex")
    capsys.readouterr()

    assert main([], machine=machine) == 1

    out = capsys.readouterr().out
    assert "✗ key accepted: Kyma refused the key" in out
    assert "fix: copy the key again from https://kymaapi.com" in out
    assert "✓ gateway:" in out
    assert bad not in out


def test_no_key_and_no_host_config_each_say_what_to_do(
    emulator: EmulatorHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([], machine=machine_for(tmp_path, emulator.base_url, key=None)) == 1

    out = capsys.readouterr().out
    assert "✗ KYMA_API_KEY: not set" in out
    assert "✗ hosts: no MCP host config on this machine mentions kyma-mcp" in out
    assert "fix: kyma-mcp install --client NAME" in out


def test_a_host_entry_whose_command_is_gone_is_reported(
    emulator: EmulatorHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    machine = machine_for(tmp_path, emulator.base_url)
    gone = Launch(str(tmp_path / "old-venv" / "bin" / "kyma-mcp"))
    assert install_main(["--client", "windsurf"], machine=machine, launch=gone) == 0
    capsys.readouterr()

    assert main([], machine=machine) == 1

    out = capsys.readouterr().out
    assert f"✗ Windsurf ({machine.home}/.codeium/windsurf/mcp_config.json) 'kyma': command" in out
    assert "fix: kyma-mcp install --client windsurf --force" in out


def test_a_claude_desktop_entry_without_a_key_is_reported(
    emulator: EmulatorHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    machine = machine_for(tmp_path, emulator.base_url)
    assert install_main(["--client", "claude-desktop"], machine=machine) == 0
    capsys.readouterr()

    assert main([], machine=machine) == 1

    assert "fix: kyma-mcp install --client claude-desktop --force --api-key-env KYMA_API_KEY" in capsys.readouterr().out


def test_an_existing_store_is_opened_and_read(
    emulator: EmulatorHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import anyio

    from kyma_mcp.settings import Settings
    from kyma_mcp.store import open_store

    machine = installed(machine_for(tmp_path, emulator.base_url), "cursor")

    async def create() -> None:
        store = await open_store(Settings.from_env(machine.env))
        await store.aclose()

    anyio.run(create)
    capsys.readouterr()

    assert main([], machine=machine) == 0
    assert "✓ store: readable: " in capsys.readouterr().out


def test_an_unreadable_store_is_reported(
    emulator: EmulatorHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    machine = installed(machine_for(tmp_path, emulator.base_url), "cursor")
    (tmp_path / "store.sqlite3").write_bytes(b"this is not a database" * 100)
    capsys.readouterr()

    assert main([], machine=machine) == 1
    out = capsys.readouterr().out
    assert "✗ store: " in out
    assert "fix: fix KYMA_STORE_URL" in out
