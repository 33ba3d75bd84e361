"""`kyma-mcp install` / `uninstall` for every host, in a temporary home, read back with each format's parser."""

import json
import os
import stat
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from kyma_mcp.install.command import install_main, uninstall_main
from kyma_mcp.install.hosts import HOSTS, Launch, Machine, running_launch

LAUNCH = Launch("/opt/kyma/bin/kyma-mcp")
SECRET = "ky-live-secret-0123456789wxyz"
FOREIGN = {"command": "npx", "args": ["-y", "@example/other-mcp"], "env": {"OTHER_TOKEN": "keep-me"}}

# Every host, in the scope whose file the test can read; claude-code without its CLI writes .mcp.json.
CASES = {
    "claude-desktop": ("user", "home/.config/Claude/claude_desktop_config.json"),
    "claude-code": ("project", "project/.mcp.json"),
    "cursor": ("user", "home/.cursor/mcp.json"),
    "vscode": ("project", "project/.vscode/mcp.json"),
    "codex": ("user", "home/.codex/config.toml"),
    "gemini": ("user", "home/.gemini/settings.json"),
    "windsurf": ("user", "home/.codeium/windsurf/mcp_config.json"),
}


def test_every_host_has_a_case() -> None:
    assert set(CASES) == set(HOSTS)


def make_machine(tmp_path: Path, platform: str = "linux", **env: str) -> Machine:
    (tmp_path / "home").mkdir(exist_ok=True)
    (tmp_path / "project").mkdir(exist_ok=True)
    environment = {"PATH": str(tmp_path / "no-bin"), "KYMA_API_KEY": SECRET} | env
    return Machine(home=tmp_path / "home", cwd=tmp_path / "project", env=environment, platform=platform)


def parse(path: Path) -> dict[str, Any]:
    text = path.read_text("utf-8")
    return tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)


def servers(client: str, path: Path) -> dict[str, Any]:
    return parse(path)[HOSTS[client].section]


def run(client: str, machine: Machine, *extra: str, uninstall: bool = False) -> int:
    scope = CASES[client][0]
    if uninstall:
        return uninstall_main(["--client", client, "--scope", scope, *extra], machine=machine)
    return install_main(["--client", client, "--scope", scope, *extra], machine=machine, launch=LAUNCH)


def seed(client: str, path: Path) -> str:
    """A config that already holds another server (and, in TOML, comments and other settings)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".toml":
        text = (
            '# my codex settings\nmodel = "o4-mini"  # keep this comment\n\n'
            '[mcp_servers.other]\ncommand = "npx"\nargs = ["-y", "@example/other-mcp"]\n'
        )
    else:
        text = json.dumps({"theme": "dark", HOSTS[client].section: {"other": FOREIGN}}, indent=4) + "\n"
    path.write_text(text, "utf-8")
    return text


@pytest.mark.parametrize("client", sorted(CASES))
def test_install_writes_the_absolute_command_and_no_key(
    client: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    machine = make_machine(tmp_path)
    path = tmp_path / CASES[client][1]

    assert run(client, machine) == 0

    entry = servers(client, path)["kyma"]
    assert entry["command"] == LAUNCH.command
    assert entry["args"] == []
    assert SECRET not in path.read_text("utf-8")
    out = capsys.readouterr().out
    assert str(path) in out
    assert f'"{LAUNCH.command}"' in out or f"command = {json.dumps(LAUNCH.command)}" in out  # the diff shows it
    assert SECRET not in out


@pytest.mark.parametrize(
    ("client", "reference"),
    [
        ("claude-code", "${KYMA_API_KEY:-}"),
        ("cursor", "${env:KYMA_API_KEY}"),
        ("vscode", "${input:kyma-api-key}"),
        ("gemini", "$KYMA_API_KEY"),
        ("windsurf", "${env:KYMA_API_KEY}"),
    ],
)
def test_the_key_is_referenced_through_the_hosts_own_mechanism(client: str, reference: str, tmp_path: Path) -> None:
    machine = make_machine(tmp_path)

    assert run(client, machine) == 0

    assert servers(client, tmp_path / CASES[client][1])["kyma"]["env"] == {"KYMA_API_KEY": reference}


def test_vscode_adds_a_password_prompt_input_once(tmp_path: Path) -> None:
    machine = make_machine(tmp_path)
    path = tmp_path / CASES["vscode"][1]

    assert run("vscode", machine) == 0
    assert run("vscode", machine, "--force") == 0

    document = parse(path)
    assert document["servers"]["kyma"]["type"] == "stdio"
    assert document["inputs"] == [
        {"type": "promptString", "id": "kyma-api-key", "description": "Kyma API key (ky-…)", "password": True}
    ]


def test_codex_forwards_the_key_by_name_and_waits_long_enough(tmp_path: Path) -> None:
    machine = make_machine(tmp_path)

    assert run("codex", machine) == 0

    entry = servers("codex", tmp_path / CASES["codex"][1])["kyma"]
    assert entry["env_vars"] == ["KYMA_API_KEY"]
    assert entry["startup_timeout_sec"] >= 30
    assert "env" not in entry


def test_codex_honours_codex_home(tmp_path: Path) -> None:
    machine = make_machine(tmp_path, CODEX_HOME=str(tmp_path / "codex-home"))

    assert run("codex", machine) == 0

    assert "kyma" in servers("codex", tmp_path / "codex-home" / "config.toml")


def test_claude_desktop_writes_no_env_and_says_how_to_add_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("claude-desktop", make_machine(tmp_path)) == 0

    assert "env" not in servers("claude-desktop", tmp_path / CASES["claude-desktop"][1])["kyma"]
    assert "--api-key-env KYMA_API_KEY" in capsys.readouterr().out


@pytest.mark.parametrize("client", sorted(CASES))
def test_install_merges_beside_a_foreign_entry_and_keeps_a_backup(client: str, tmp_path: Path) -> None:
    path = tmp_path / CASES[client][1]
    original = seed(client, path)

    assert run(client, make_machine(tmp_path)) == 0

    table = servers(client, path)
    assert set(table) == {"other", "kyma"}
    assert table["other"]["command"] == "npx"
    assert table["other"]["args"] == ["-y", "@example/other-mcp"]
    backups = list(path.parent.glob(f"{path.name}.kyma-mcp-*.bak"))
    assert len(backups) == 1
    assert backups[0].read_text("utf-8") == original
    text = path.read_text("utf-8")
    if path.suffix == ".toml":
        assert text.startswith(original)  # comments, settings and layout untouched; the table appended
        assert parse(path)["model"] == "o4-mini"
    else:
        assert parse(path)["theme"] == "dark"
        assert table["other"]["env"] == {"OTHER_TOKEN": "keep-me"}
        assert '\n    "theme"' in text  # the file's own indentation is kept


@pytest.mark.parametrize("client", sorted(CASES))
def test_dry_run_prints_the_change_and_writes_nothing(
    client: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / CASES[client][1]
    original = seed(client, path)

    assert run(client, make_machine(tmp_path), "--dry-run") == 0

    assert path.read_text("utf-8") == original
    assert list(path.parent.glob("*.bak")) == []
    out = capsys.readouterr().out
    assert "+" in out
    assert LAUNCH.command in out
    assert "nothing was written" in out


@pytest.mark.parametrize("client", sorted(CASES))
def test_an_entry_of_the_same_name_is_refused_without_force(
    client: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / CASES[client][1]
    seed(client, path)
    machine = make_machine(tmp_path)

    assert run(client, machine, "--name", "other") == 1
    assert servers(client, path)["other"]["command"] == "npx"
    assert "--force" in capsys.readouterr().out

    assert run(client, machine, "--name", "other", "--force") == 0
    assert servers(client, path)["other"]["command"] == LAUNCH.command


@pytest.mark.parametrize("client", sorted(CASES))
def test_uninstall_removes_only_its_entry(client: str, tmp_path: Path) -> None:
    path = tmp_path / CASES[client][1]
    seed(client, path)
    machine = make_machine(tmp_path)
    assert run(client, machine) == 0

    assert run(client, machine, uninstall=True) == 0

    assert set(servers(client, path)) == {"other"}
    assert "kyma-api-key" not in path.read_text("utf-8")  # VS Code's input goes with it
    assert len(list(path.parent.glob(f"{path.name}.kyma-mcp-*.bak"))) >= 2


def test_uninstall_without_an_entry_changes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / CASES["cursor"][1]
    original = seed("cursor", path)

    assert run("cursor", make_machine(tmp_path), uninstall=True) == 0

    assert path.read_text("utf-8") == original
    assert "nothing to remove" in capsys.readouterr().out


@pytest.mark.parametrize("client", sorted(CASES))
def test_api_key_env_copies_the_key_but_never_prints_it(
    client: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    machine = make_machine(tmp_path, MY_KYMA_KEY=SECRET)
    path = tmp_path / CASES[client][1]

    assert run(client, machine, "--api-key-env", "MY_KYMA_KEY") == 0

    entry = servers(client, path)["kyma"]
    assert entry["env"] == {"KYMA_API_KEY": SECRET}
    assert "env_vars" not in entry
    out = capsys.readouterr().out
    assert SECRET not in out
    assert "ky-…wxyz" in out
    if os.name == "posix":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_api_key_env_naming_an_unset_variable_stops(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("cursor", make_machine(tmp_path), "--api-key-env", "NOT_SET_ANYWHERE") == 2
    assert "NOT_SET_ANYWHERE" in capsys.readouterr().out
    assert not (tmp_path / CASES["cursor"][1]).exists()


def test_a_json_file_with_comments_is_left_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / CASES["vscode"][1]
    path.parent.mkdir(parents=True)
    path.write_text('{\n  // mine\n  "servers": {}\n}\n', "utf-8")

    assert run("vscode", make_machine(tmp_path)) == 1

    assert path.read_text("utf-8") == '{\n  // mine\n  "servers": {}\n}\n'
    assert "comments" in capsys.readouterr().out


def test_claude_desktop_on_windows_also_writes_the_msix_folder(tmp_path: Path) -> None:
    roaming, local = tmp_path / "Roaming", tmp_path / "Local"
    msix = local / "Packages" / "Claude_pzs8sxrjxfjjc" / "LocalCache" / "Roaming" / "Claude"
    msix.mkdir(parents=True)
    machine = make_machine(tmp_path, platform="win32", APPDATA=str(roaming), LOCALAPPDATA=str(local))

    assert install_main(["--client", "claude-desktop"], machine=machine, launch=LAUNCH) == 0

    for folder in (roaming / "Claude", msix):
        assert servers("claude-desktop", folder / "claude_desktop_config.json")["kyma"]["command"] == LAUNCH.command


def test_claude_desktop_on_macos_uses_application_support(tmp_path: Path) -> None:
    machine = make_machine(tmp_path, platform="darwin")

    assert install_main(["--client", "claude-desktop"], machine=machine, launch=LAUNCH) == 0

    assert (machine.home / "Library/Application Support/Claude/claude_desktop_config.json").is_file()


def test_claude_code_user_scope_needs_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert install_main(["--client", "claude-code"], machine=make_machine(tmp_path), launch=LAUNCH) == 2
    assert "--scope project" in capsys.readouterr().out


def fake_claude(tmp_path: Path, *, has_entry: bool) -> Path:
    """A `claude` on PATH that logs its arguments; `mcp get` answers as if the entry exists or not."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "claude.log"
    script = bin_dir / "claude"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, sys\n"
        f"open({str(log)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
        f"sys.exit(1 if sys.argv[1:3] == ['mcp', 'get'] and not {has_entry} else 0)\n"
    )
    script.chmod(0o755)
    return log


def logged(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


@pytest.mark.skipif(os.name != "posix", reason="the fake claude is a script with a shebang")
def test_claude_code_goes_through_claude_mcp_add(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = fake_claude(tmp_path, has_entry=False)
    machine = make_machine(tmp_path, PATH=str(tmp_path / "bin"), MY_KEY=SECRET)

    code = install_main(
        ["--client", "claude-code", "--api-key-env", "MY_KEY"], machine=machine, launch=Launch("/x/kyma-mcp")
    )

    assert code == 0
    assert logged(log)[-1] == [
        "mcp", "add", "--scope", "user", "kyma", "-e", f"KYMA_API_KEY={SECRET}", "--", "/x/kyma-mcp",
    ]  # fmt: skip
    out = capsys.readouterr().out
    assert "claude mcp add --scope user kyma -e KYMA_API_KEY=ky-…wxyz -- /x/kyma-mcp" in out.replace(
        str(tmp_path / "bin" / "claude"), "claude"
    )
    assert SECRET not in out


@pytest.mark.skipif(os.name != "posix", reason="the fake claude is a script with a shebang")
def test_claude_code_refuses_an_existing_entry_then_replaces_it_with_force(tmp_path: Path) -> None:
    log = fake_claude(tmp_path, has_entry=True)
    machine = make_machine(tmp_path, PATH=str(tmp_path / "bin"))

    assert install_main(["--client", "claude-code"], machine=machine, launch=LAUNCH) == 1
    assert [call[:2] for call in logged(log)] == [["mcp", "get"]]

    assert install_main(["--client", "claude-code", "--force"], machine=machine, launch=LAUNCH) == 0
    assert logged(log)[-2:] == [
        ["mcp", "remove", "--scope", "user", "kyma"],
        ["mcp", "add", "--scope", "user", "kyma", "--", LAUNCH.command],
    ]

    assert uninstall_main(["--client", "claude-code"], machine=machine) == 0
    assert logged(log)[-1] == ["mcp", "remove", "--scope", "user", "kyma"]


@pytest.mark.skipif(os.name != "posix", reason="the fake claude is a script with a shebang")
def test_claude_code_dry_run_runs_nothing_but_the_lookup(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = fake_claude(tmp_path, has_entry=False)
    machine = make_machine(tmp_path, PATH=str(tmp_path / "bin"))

    assert install_main(["--client", "claude-code", "--dry-run"], machine=machine, launch=LAUNCH) == 0

    assert [call[:2] for call in logged(log)] == [["mcp", "get"]]
    assert "mcp add --scope user kyma -- /opt/kyma/bin/kyma-mcp" in capsys.readouterr().out


def test_a_scope_the_host_lacks_is_a_usage_error(tmp_path: Path) -> None:
    assert install_main(["--client", "windsurf", "--scope", "project"], machine=make_machine(tmp_path)) == 2


def test_the_launch_is_the_running_console_script(tmp_path: Path) -> None:
    script = tmp_path / "venv" / "bin" / "kyma-mcp"
    script.parent.mkdir(parents=True)
    script.write_text("#!/bin/sh\n")

    assert running_launch(str(script), sys.executable) == Launch(str(script))
    assert running_launch("-c", str(script.parent / "python")) == Launch(str(script))
    bare = tmp_path / "bare" / "python"
    assert running_launch("-c", str(bare)) == Launch(str(bare), ("-m", "kyma_mcp"))


def test_serving_imports_neither_the_installer_nor_tomlkit() -> None:
    code = (
        "import sys, kyma_mcp.cli, kyma_mcp.server\n"
        "loaded = [m for m in sys.modules if m.startswith(('kyma_mcp.install', 'kyma_mcp.doctor', 'tomlkit'))]\n"
        "print(loaded)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]"
