"""The seven MCP hosts: where each keeps its server list, and what kyma-mcp's entry looks like there.

Facts per host (their own documentation, checked for this module):
- Claude Desktop: `claude_desktop_config.json`, `mcpServers`; macOS `~/Library/Application Support/Claude/`,
  Windows `%APPDATA%\\Claude\\` and, for the MSIX (Store / claude.ai) build, which reads only its own copy,
  `%LOCALAPPDATA%\\Packages\\Claude_*\\LocalCache\\Roaming\\Claude\\`; Linux builds use `~/.config/Claude/`.
  No way to reference an environment variable.
- Claude Code: `claude mcp add --scope user|project NAME -- COMMAND ARGS`; project scope is `.mcp.json`
  (`mcpServers`), which expands `${VAR}` and `${VAR:-default}`.
- Cursor: `~/.cursor/mcp.json` or `.cursor/mcp.json`, `mcpServers`, `${env:VAR}` expanded.
- VS Code: `.vscode/mcp.json` (or the user profile's `mcp.json`), `servers` plus `inputs`; an input of type
  `promptString` with `password: true` asks once and keeps the value in VS Code's secret storage.
- Codex: `~/.codex/config.toml` (`$CODEX_HOME`), or `.codex/config.toml` in a trusted project,
  `[mcp_servers.NAME]`; `env_vars` lists variables forwarded from Codex's own environment (it forwards only
  a small default set otherwise); `startup_timeout_sec` defaults to 10, which a first start can exceed.
- Gemini CLI: `~/.gemini/settings.json` or `.gemini/settings.json`, `mcpServers`, `$VAR` expanded.
- Windsurf: `~/.codeium/windsurf/mcp_config.json`, `mcpServers`, `${env:VAR}` expanded.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

KEY_VARIABLE = "KYMA_API_KEY"
VSCODE_INPUT_ID = "kyma-api-key"
CODEX_STARTUP_TIMEOUT_SECONDS = 30

Scope = Literal["user", "project"]
Format = Literal["json", "toml"]


@dataclass(frozen=True)
class Machine:
    """Where things are on this computer; tests build one around a temporary home."""

    home: Path
    cwd: Path
    env: Mapping[str, str]
    platform: str

    @classmethod
    def current(cls) -> Machine:
        return cls(home=Path.home(), cwd=Path.cwd(), env=dict(os.environ), platform=sys.platform)

    def folder(self, variable: str, fallback: Path) -> Path:
        value = self.env.get(variable, "").strip()
        return Path(value) if value else fallback


@dataclass(frozen=True)
class Launch:
    """How a host starts this server: the absolute command and its arguments."""

    command: str
    args: tuple[str, ...] = ()


def running_launch(argv0: str | None = None, executable: str | None = None) -> Launch:
    """The absolute path of the kyma-mcp being run, so a checkout or venv install works unpublished.

    The console script itself when that is how we were started (kept as given, not resolved, so a
    `uv tool` or pipx link survives upgrades); else the script next to this interpreter; else
    `python -m kyma_mcp` with this interpreter.
    """
    argv0 = sys.argv[0] if argv0 is None else argv0
    python = Path(sys.executable if executable is None else executable)
    started = Path(argv0)
    if started.stem == "kyma-mcp" and started.is_file():
        return Launch(str(started.absolute()))
    for name in ("kyma-mcp", "kyma-mcp.exe"):
        beside = python.parent / name
        if beside.is_file():
            return Launch(str(beside.absolute()))
    return Launch(str(python.absolute()), ("-m", "kyma_mcp"))


@dataclass(frozen=True)
class Host:
    """One MCP host's config format for kyma-mcp's entry."""

    name: str
    title: str
    format: Format
    section: str
    """The table of servers: `mcpServers`, `servers` (VS Code) or `mcp_servers` (Codex)."""
    scopes: tuple[Scope, ...]
    """The scopes it has; the first is the default."""
    locate: Callable[[Machine, Scope], list[Path]]
    reference: str | None
    """How the host spells "read KYMA_API_KEY from the environment", or None when it cannot."""
    note: str = ""
    """Printed after an install: what the user still has to do (`{name}` is the server's name)."""
    typed: bool = False
    """Whether entries carry `"type": "stdio"` (hosts that document it)."""
    extra: Callable[[Launch, str | None], dict[str, Any]] = field(default=lambda _launch, _key: {})

    def entry(self, launch: Launch, key: str | None) -> dict[str, Any]:
        """The server entry; `key` is a literal key to store (only when --api-key-env named one)."""
        entry: dict[str, Any] = {}
        if self.typed:
            entry["type"] = "stdio"
        entry["command"] = launch.command
        entry["args"] = list(launch.args)
        entry.update(self.extra(launch, key))
        value = key if key is not None else self.reference
        if value is not None:
            entry["env"] = {KEY_VARIABLE: value}
        return entry

    def paths(self, machine: Machine, scope: Scope) -> list[Path]:
        return self.locate(machine, scope)


def _app_support(machine: Machine, app: str) -> Path:
    """The per-user settings folder of a desktop (Electron) app on this platform."""
    if machine.platform == "darwin":
        return machine.home / "Library" / "Application Support" / app
    if machine.platform == "win32":
        return machine.folder("APPDATA", machine.home / "AppData" / "Roaming") / app
    return machine.folder("XDG_CONFIG_HOME", machine.home / ".config") / app


def _claude_desktop(machine: Machine, scope: Scope) -> list[Path]:
    del scope
    name = "claude_desktop_config.json"
    paths = [_app_support(machine, "Claude") / name]
    if machine.platform == "win32":
        packages = machine.folder("LOCALAPPDATA", machine.home / "AppData" / "Local") / "Packages"
        if packages.is_dir():
            paths += sorted(p / "LocalCache" / "Roaming" / "Claude" / name for p in packages.glob("Claude_*"))
    return paths


def _in(user: Callable[[Machine], Path], project: str | None) -> Callable[[Machine, Scope], list[Path]]:
    def locate(machine: Machine, scope: Scope) -> list[Path]:
        if scope == "project" and project is not None:
            return [machine.cwd / project]
        return [user(machine)]

    return locate


def _codex_home(machine: Machine) -> Path:
    return machine.folder("CODEX_HOME", machine.home / ".codex") / "config.toml"


def _codex_extra(_launch: Launch, key: str | None) -> dict[str, Any]:
    extra: dict[str, Any] = {"startup_timeout_sec": CODEX_STARTUP_TIMEOUT_SECONDS}
    if key is None:
        extra["env_vars"] = [KEY_VARIABLE]
    return extra


HOSTS: dict[str, Host] = {
    host.name: host
    for host in (
        Host(
            name="claude-desktop",
            title="Claude Desktop",
            format="json",
            section="mcpServers",
            scopes=("user",),
            locate=_claude_desktop,
            reference=None,
            note="Quit Claude Desktop fully (tray/menu bar) and start it again.",
        ),
        Host(
            name="claude-code",
            typed=True,
            title="Claude Code",
            format="json",
            section="mcpServers",
            scopes=("user", "project"),
            locate=_in(lambda m: m.home / ".claude.json", ".mcp.json"),
            reference="${KYMA_API_KEY:-}",
            note="Check with `claude mcp list`, or /mcp inside Claude Code.",
        ),
        Host(
            name="cursor",
            typed=True,
            title="Cursor",
            format="json",
            section="mcpServers",
            scopes=("user", "project"),
            locate=_in(lambda m: m.home / ".cursor" / "mcp.json", ".cursor/mcp.json"),
            reference="${env:KYMA_API_KEY}",
            note="Restart Cursor, then check Settings → MCP.",
        ),
        Host(
            name="vscode",
            typed=True,
            title="VS Code",
            format="json",
            section="servers",
            scopes=("project", "user"),
            locate=_in(lambda m: _app_support(m, "Code") / "User" / "mcp.json", ".vscode/mcp.json"),
            reference=f"${{input:{VSCODE_INPUT_ID}}}",
            note="Start the server from the MCP view (or `MCP: List Servers`).",
        ),
        Host(
            name="codex",
            title="Codex",
            format="toml",
            section="mcp_servers",
            scopes=("user", "project"),
            locate=_in(_codex_home, ".codex/config.toml"),
            reference=None,
            extra=_codex_extra,
            note=(
                'Codex asks before billed tools run: add default_tools_approval_mode = "approve" under '
                "[mcp_servers.{name}] to allow them all, then check with /mcp."
            ),
        ),
        Host(
            name="gemini",
            title="Gemini CLI",
            format="json",
            section="mcpServers",
            scopes=("user", "project"),
            locate=_in(lambda m: m.home / ".gemini" / "settings.json", ".gemini/settings.json"),
            reference="$KYMA_API_KEY",
            note="Check with /mcp inside Gemini CLI.",
        ),
        Host(
            name="windsurf",
            title="Windsurf",
            format="json",
            section="mcpServers",
            scopes=("user",),
            locate=_in(lambda m: m.home / ".codeium" / "windsurf" / "mcp_config.json", None),
            reference="${env:KYMA_API_KEY}",
            note="Refresh the server list in Cascade's MCP panel.",
        ),
    )
}


def vscode_input() -> dict[str, Any]:
    return {"type": "promptString", "id": VSCODE_INPUT_ID, "description": "Kyma API key (ky-…)", "password": True}
