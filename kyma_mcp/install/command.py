"""`kyma-mcp install --client NAME` and `kyma-mcp uninstall --client NAME`.

This is not the MCP server: its stdout is for a person. It prints exactly what it changes (a
diff per file, or the `claude` command it runs) and never prints or stores a key unless
`--api-key-env` names the variable to copy it from.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from kyma_mcp.install.documents import Document, DocumentError, backup_file, mask
from kyma_mcp.install.hosts import (
    HOSTS,
    KEY_VARIABLE,
    VSCODE_INPUT_ID,
    Host,
    Launch,
    Machine,
    Scope,
    running_launch,
    vscode_input,
)

EXIT_REFUSED = 1
EXIT_USAGE = 2
_CLAUDE_TIMEOUT_SECONDS = 60
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class _Stop(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def install_main(argv: Sequence[str], machine: Machine | None = None, launch: Launch | None = None) -> int:
    args = _parser("install").parse_args(argv)
    return _run(args, machine or Machine.current(), launch or running_launch(), install=True)


def uninstall_main(argv: Sequence[str], machine: Machine | None = None) -> int:
    args = _parser("uninstall").parse_args(argv)
    return _run(args, machine or Machine.current(), running_launch(), install=False)


def _parser(action: str) -> argparse.ArgumentParser:
    install = action == "install"
    parser = argparse.ArgumentParser(
        prog=f"kyma-mcp {action}",
        description=(
            "Add kyma-mcp to an MCP host's config, with the absolute path of this kyma-mcp. Other servers in "
            "the file are left alone and the old file is kept as a timestamped backup beside it."
            if install
            else "Remove kyma-mcp's entry (and nothing else) from an MCP host's config, keeping a backup."
        ),
    )
    parser.add_argument("--client", required=True, choices=sorted(HOSTS), help="the MCP host")
    parser.add_argument("--scope", choices=["user", "project"], help="user-wide or this folder's project file")
    parser.add_argument("--name", default="kyma", help="the server's name in the host (default: kyma)")
    parser.add_argument("--dry-run", action="store_true", help="print the change without writing anything")
    if install:
        parser.add_argument("--force", action="store_true", help="replace an existing entry of the same name")
        parser.add_argument(
            "--api-key-env",
            metavar="VAR",
            help=(
                "copy the key from environment variable VAR into the config (the only way a key is written). "
                "By default the entry refers to KYMA_API_KEY through the host's own mechanism where it has one."
            ),
        )
    return parser


def _run(args: argparse.Namespace, machine: Machine, launch: Launch, *, install: bool) -> int:
    host = HOSTS[args.client]
    try:
        if not _NAME.match(args.name):
            raise _Stop(f"--name {args.name!r}: use letters, digits, - and _ only", EXIT_USAGE)
        scope: Scope = args.scope or host.scopes[0]
        if scope not in host.scopes:
            raise _Stop(f"{host.title} has no {scope} scope; it has: {', '.join(host.scopes)}", EXIT_USAGE)
        key = _key(args, machine) if install else None
        claude = shutil.which("claude", path=machine.env.get("PATH")) if host.name == "claude-code" else None
        if claude is not None:
            _claude_cli(claude, args, machine, launch, scope, key, install=install)
        elif host.name == "claude-code" and scope == "user":
            raise _Stop(
                "the `claude` command is not on PATH; user scope is written by `claude mcp add`. "
                "Install Claude Code, or use --scope project to write ./.mcp.json",
                EXIT_USAGE,
            )
        else:
            for path in host.paths(machine, scope):
                if install:
                    _install_file(host, path, args, launch, key)
                else:
                    _uninstall_file(host, path, args)
    except _Stop as stop:
        print(f"kyma-mcp {'install' if install else 'uninstall'}: {stop}")
        return stop.code
    except DocumentError as exc:
        print(f"kyma-mcp {'install' if install else 'uninstall'}: {exc}")
        return EXIT_REFUSED
    if args.dry_run:
        print("dry run: nothing was written.")
    if install:
        _next_steps(host, args.name, key, written=not args.dry_run)
    return 0


def _key(args: argparse.Namespace, machine: Machine) -> str | None:
    if args.api_key_env is None:
        return None
    value = machine.env.get(args.api_key_env, "").strip()
    if not value:
        raise _Stop(f"--api-key-env {args.api_key_env}: that variable is not set (or empty)", EXIT_USAGE)
    return value


def _install_file(host: Host, path: Path, args: argparse.Namespace, launch: Launch, key: str | None) -> None:
    document = Document.load(path, host.format)
    wanted = host.entry(launch, key)
    existing = document.entry(host.section, args.name)
    if existing is not None and not args.force:
        raise _Stop(
            f"{path} already has a server named {args.name!r}. Nothing was changed: rerun with --force to "
            "replace it (a backup is kept), or pick another --name",
            EXIT_REFUSED,
        )
    if _plain(existing) == wanted and (key is not None or host.name != "vscode" or _has_input(document)):
        print(f"{host.title}: {path} already has this entry; nothing to change.")
        return
    document.set_entry(host.section, args.name, wanted)
    if host.name == "vscode" and key is None and not _has_input(document):
        inputs = document.data.setdefault("inputs", [])
        if not isinstance(inputs, list):
            raise DocumentError(f"{path}: `inputs` is not a list; fix it by hand first")
        inputs.append(vscode_input())  # pyright: ignore[reportUnknownMemberType]
    _apply(host, document, args, secret=key)


def _uninstall_file(host: Host, path: Path, args: argparse.Namespace) -> None:
    document = Document.load(path, host.format)
    if document.before is None or not document.remove_entry(host.section, args.name):
        print(f"{host.title}: {path} has no server named {args.name!r}; nothing to remove.")
        return
    if host.name == "vscode" and not _input_still_used(document):
        inputs = document.data.get("inputs")
        if isinstance(inputs, list):
            document.data["inputs"] = [i for i in cast(list[Any], inputs) if _input_id(i) != VSCODE_INPUT_ID]
    _apply(host, document, args, secret=None)


def _apply(host: Host, document: Document, args: argparse.Namespace, *, secret: str | None) -> None:
    print(f"{host.title}: {document.path}")
    print(document.diff(hide=secret), end="")
    if args.dry_run:
        return
    backup = document.write(secret=secret is not None)
    print(f"backup of the previous file: {backup}" if backup else "created the file.")


def _claude_cli(
    claude: str,
    args: argparse.Namespace,
    machine: Machine,
    launch: Launch,
    scope: Scope,
    key: str | None,
    *,
    install: bool,
) -> None:
    """Claude Code owns its files: go through `claude mcp add/remove` when the CLI is here."""
    remove = [claude, "mcp", "remove", "--scope", scope, args.name]
    if not install:
        steps = [remove]
    else:
        exists = _claude(machine, [claude, "mcp", "get", args.name], quiet=True) == 0
        if exists and not args.force:
            raise _Stop(
                f"Claude Code already has a server named {args.name!r} (`claude mcp get {args.name}`). Nothing was "
                "changed: rerun with --force to replace it, or pick another --name",
                EXIT_REFUSED,
            )
        add = [claude, "mcp", "add", "--scope", scope, args.name]  # the name goes before -e, which takes many
        if key is not None:
            add += ["-e", f"{KEY_VARIABLE}={key}"]
        add += ["--", launch.command, *launch.args]
        steps = [remove, add] if exists else [add]
    owned = machine.home / ".claude.json" if scope == "user" else machine.cwd / ".mcp.json"
    for step in steps:
        print("Claude Code: " + mask(subprocess.list2cmdline(step), key))
    if args.dry_run:
        return
    backup = backup_file(owned)
    if backup is not None:
        print(f"backup of {owned}: {backup}")
    for step in steps:
        code = _claude(machine, step, quiet=False, secret=key)
        if code != 0 and step is not remove:
            raise _Stop(f"`claude mcp` failed (exit {code}); see its message above", EXIT_REFUSED)
        if code != 0 and not install:
            raise _Stop(f"Claude Code has no server named {args.name!r} in {scope} scope", EXIT_REFUSED)


def _claude(machine: Machine, command: list[str], *, quiet: bool, secret: str | None = None) -> int:
    try:
        done = subprocess.run(
            command,
            env=dict(machine.env),
            cwd=machine.cwd,
            capture_output=True,
            text=True,
            timeout=_CLAUDE_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise _Stop(f"could not run `claude`: {exc}", EXIT_REFUSED) from None
    if not quiet:
        for line in (done.stdout + done.stderr).splitlines():
            print("  " + mask(line, secret))
    return done.returncode


def _next_steps(host: Host, name: str, key: str | None, *, written: bool) -> None:
    if key is not None:
        print("the key was copied into the file: keep that file private and out of version control.")
    elif host.name == "claude-desktop":
        print(
            f"no key written: {host.title} cannot read {KEY_VARIABLE} from your shell. Rerun with "
            f"--force --api-key-env {KEY_VARIABLE} to copy it from your environment into the file."
        )
    elif host.name == "vscode":
        print("VS Code asks for the key the first time the server starts and keeps it in its secret storage.")
    else:
        print(f"the key comes from {KEY_VARIABLE} in the environment {host.title} starts in.")
    if written:
        print(f"next: {host.note.format(name=name)} Then run `kyma-mcp doctor` to check the setup.")


def _plain(entry: Any) -> Any:
    """A TOML table as plain dicts and lists, so it compares with a freshly built entry."""
    unwrap = getattr(entry, "unwrap", None)
    return unwrap() if callable(unwrap) else entry


def _has_input(document: Document) -> bool:
    inputs = document.data.get("inputs")
    if not isinstance(inputs, list):
        return False
    return any(_input_id(item) == VSCODE_INPUT_ID for item in cast(list[Any], inputs))


def _input_id(item: Any) -> Any:
    return cast(dict[str, Any], item).get("id") if isinstance(item, dict) else None


def _input_still_used(document: Document) -> bool:
    import json

    servers = document.data.get("servers")
    return f"${{input:{VSCODE_INPUT_ID}}}" in json.dumps(servers)
