"""`kyma-mcp doctor`: is this machine set up to use kyma-mcp? One ✓ or ✗ per check, each ✗ with its fix.

Checks, in order: versions; settings parse; `KYMA_API_KEY` set (shown as `ky-…last4`, never more);
the gateway reachable, its latency and clock; the key accepted (`GET /auth/limits`, one cheap
authenticated call); the tier and limits as learned (the same resolver as `get_limits`); the
catalog's source and age; the image folder writable; the conversations store readable; every
host config on this machine that mentions kyma-mcp, whether its command exists and runs
(`--version`) and whether its env names a key. Exit 0 only when every check passes; `--json`
prints the same as one JSON object.

This is not the MCP server: its stdout is for a person (or a script, with --json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, cast

import anyio

from kyma_mcp import __version__
from kyma_mcp.errors import AuthInvalidError, AuthMissingError, KymaError, redact
from kyma_mcp.install.documents import Document, DocumentError, masked
from kyma_mcp.install.hosts import HOSTS, KEY_VARIABLE, Host, Machine, running_launch
from kyma_mcp.settings import ConfigError, Settings

KEY_URL = "https://kymaapi.com"
CLOCK_SKEW_LIMIT_SECONDS = 60
VERSION_RUN_TIMEOUT_SECONDS = 20
GATEWAY_TIMEOUT_SECONDS = 10


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str | None = None


def main(argv: Sequence[str] | None = None, machine: Machine | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="kyma-mcp doctor",
        description="Check the key, the gateway, the catalog, the image folder and every host config that "
        "mentions kyma-mcp; print ✓ or ✗ and a fix for each. Exit 0 only when all pass.",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of lines")
    args = parser.parse_args(argv)
    checks = run_checks(machine or Machine.current())
    if args.json:
        print(json.dumps({"ok": all(c.ok for c in checks), "checks": [asdict(c) for c in checks]}, indent=2))
    else:
        for check in checks:
            print(f"{'✓' if check.ok else '✗'} {check.name}: {check.detail}")
            if not check.ok and check.fix:
                print(f"    fix: {check.fix}")
        failed = sum(not c.ok for c in checks)
        print(f"all {len(checks)} checks passed." if not failed else f"{failed} of {len(checks)} checks failed.")
    return 0 if all(c.ok for c in checks) else 1


def run_checks(machine: Machine) -> list[Check]:
    checks = [_versions()]
    try:
        settings = Settings.from_env(machine.env)
    except ConfigError as exc:
        checks.append(Check("settings", False, str(exc), "correct or unset that variable"))
        return checks + list(_host_configs(machine))
    checks.append(_key_set(settings))
    checks += anyio.run(_gateway_checks, settings)
    checks.append(_output_folder(settings))
    checks.append(anyio.run(_store, settings))
    checks += list(_host_configs(machine))
    return checks


def _versions() -> Check:
    launch = running_launch()
    where = " ".join([launch.command, *launch.args])
    return Check("version", True, f"kyma-mcp {__version__} on Python {platform.python_version()} ({where})")


def _key_set(settings: Settings) -> Check:
    if not settings.has_api_key or settings.api_key is None:
        return Check(
            KEY_VARIABLE,
            False,
            "not set",
            f"get a key at {KEY_URL} (new accounts get free credit), then export {KEY_VARIABLE}=ky-…",
        )
    return Check(KEY_VARIABLE, True, f"set ({masked(settings.api_key.get_secret_value())})")


async def _gateway_checks(settings: Settings) -> list[Check]:
    from kyma_mcp.catalog import Catalog, bundled_note
    from kyma_mcp.kyma.client import KymaClient
    from kyma_mcp.kyma.probe import Unreachable, reach
    from kyma_mcp.limits import fetch_limit_parts, limits_from_parts
    from kyma_mcp.usage import SessionUsage

    quick = settings.model_copy(update={"max_retries": 0, "tool_timeout_seconds": GATEWAY_TIMEOUT_SECONDS})
    checks: list[Check] = []
    url = f"{settings.base_url}/models"
    try:
        reached = await reach(url, GATEWAY_TIMEOUT_SECONDS)  # headers only: the body is never read
    except Unreachable as exc:
        fix = f"check KYMA_BASE_URL ({settings.base_url}), your network or proxy, then run doctor again"
        checks.append(Check("gateway", False, f"{url} could not be reached ({exc})", fix))
        return [
            *checks,
            Check("key accepted", False, "not tried: the gateway is unreachable", fix),
            _bundled_catalog("the gateway is unreachable"),
        ]
    answered = reached.status < 500
    checks.append(
        Check(
            "gateway",
            answered,
            f"{settings.base_url} answered HTTP {reached.status} in {reached.elapsed_ms:.0f} ms",
            None if answered else "Kyma is failing right now; retry in a few minutes",
        )
    )
    checks.append(_clock(reached.date))

    client = KymaClient(quick)
    try:
        parts = await fetch_limit_parts(client, has_key=settings.has_api_key)
        catalog = await Catalog(client.list_models, pricing=client.get_pricing).view()
    finally:
        await client.aclose()
    checks.append(_accepted(parts.get("account"), settings, client.secrets))
    limits = limits_from_parts(parts, settings, SessionUsage())
    if limits.allows is not None:
        balance = f"; balance ${limits.balance_usd:,.2f}" if limits.balance_usd is not None else ""
        checks.append(Check("tier", True, f"Tier {limits.tier}: {limits.allows.summary()}{balance}"))
    else:
        checks.append(
            Check(
                "tier",
                False,
                "unknown (the account's limits could not be read)",
                "set KYMA_API_KEY to a valid key; or set KYMA_TIER to your tier (0-4) for pacing",
            )
        )
    if catalog.live:
        checks.append(Check("catalog", True, f"live from the gateway, {len(catalog.models)} models, fetched just now"))
    else:
        checks.append(_bundled_catalog(redact(bundled_note(catalog.failure), client.secrets)))
    return checks


def _accepted(account: object, settings: Settings, secrets: tuple[str, ...]) -> Check:
    name = "key accepted"
    if not settings.has_api_key:
        return Check(name, False, "not tried: no key", f"export {KEY_VARIABLE}=ky-… (get one at {KEY_URL})")
    if isinstance(account, AuthInvalidError | AuthMissingError):
        return Check(
            name,
            False,
            "Kyma refused the key (GET /auth/limits answered 401/403)",
            f"copy the key again from {KEY_URL} (it starts with ky-); a revoked key needs a new one",
        )
    if isinstance(account, KymaError):
        return Check(name, False, redact(str(account), secrets), "retry in a minute; if it persists, run doctor --json")
    return Check(name, True, "GET /auth/limits with the key succeeded")


def _clock(served: str | None) -> Check:
    if not served:
        return Check("clock", True, "not checked (the gateway sent no Date header)")
    try:
        skew = (datetime.now(UTC) - parsedate_to_datetime(served)).total_seconds()
    except (TypeError, ValueError):
        return Check("clock", True, "not checked (unreadable Date header)")
    ok = abs(skew) <= CLOCK_SKEW_LIMIT_SECONDS
    detail = f"{abs(skew):.0f} s {'ahead of' if skew > 0 else 'behind'} the gateway"
    return Check("clock", ok, detail, None if ok else "turn on automatic time sync (NTP) for this machine")


def _bundled_catalog(why: str) -> Check:
    taken = _snapshot_date()
    age = f" of {taken} ({(date.today() - taken).days} days old)" if taken else ""
    return Check(
        "catalog",
        False,
        f"the bundled snapshot{age}: {why}",
        "make the gateway reachable (see the gateway check); until then the server answers from this snapshot",
    )


def _snapshot_date() -> date | None:
    from kyma_mcp.catalog import bundled_document

    taken = cast(Mapping[str, Any], bundled_document().get("snapshot") or {}).get("taken")
    try:
        return date.fromisoformat(str(taken))
    except ValueError:
        return None


def _output_folder(settings: Settings) -> Check:
    from kyma_mcp.images.files import output_folder

    try:
        folder = output_folder(settings.output_dir)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".doctor-"):
            pass
    except (KymaError, OSError) as exc:
        return Check("image folder", False, str(exc), "set KYMA_OUTPUT_DIR to a writable absolute folder")
    return Check("image folder", True, f"writable: {folder}")


async def _store(settings: Settings) -> Check:
    """The conversations store opens and reads; a SQLite file not made yet is fine (made on first use)."""
    from kyma_mcp.store import default_path, open_store

    if settings.store == "off":
        return Check("store", True, "off (KYMA_STORE=off): conversations live in memory only")
    url = settings.store_url.get_secret_value() if settings.store_url is not None else None
    if url is None or url.startswith("sqlite://"):
        path = Path(url.removeprefix("sqlite://")) if url else default_path()
        if not path.exists():
            return Check("store", True, f"{path} not created yet (made on first use)")
    try:
        store = await open_store(settings)
        try:
            _, total = await store.conversations(limit=1)
            where = store.where
        finally:
            await store.aclose()
    except KymaError as exc:
        return Check("store", False, str(exc), "fix KYMA_STORE_URL or the file's permissions; KYMA_STORE=off skips it")
    return Check("store", True, f"readable: {where}, {total} conversations")


def _host_configs(machine: Machine) -> Iterator[Check]:
    found = False
    for host, path, name, entry in _kyma_entries(machine):
        found = True
        yield _host_entry(host, path, name, entry, machine)
    if not found:
        yield Check(
            "hosts",
            False,
            "no MCP host config on this machine mentions kyma-mcp",
            "kyma-mcp install --client NAME (claude-desktop, claude-code, cursor, vscode, codex, gemini, windsurf)",
        )


def _kyma_entries(machine: Machine) -> Iterator[tuple[Host, Path, str, Mapping[str, Any]]]:
    for host in HOSTS.values():
        paths = {p for scope in host.scopes for p in host.paths(machine, scope)}
        for path in sorted(paths):
            try:
                document = Document.load(path, host.format)
            except DocumentError:
                continue
            tables = [document.data.get(host.section)]
            if host.name == "claude-code":  # local scope: ~/.claude.json keeps one table per project
                projects = document.data.get("projects")
                if isinstance(projects, Mapping):
                    tables += [_section(p, host.section) for p in cast(Mapping[str, Any], projects).values()]
            for table in tables:
                if not isinstance(table, Mapping):
                    continue
                for name, entry in cast(Mapping[str, Any], table).items():
                    if isinstance(entry, Mapping) and _mentions_kyma(cast(Mapping[str, Any], entry)):
                        yield host, path, name, cast(Mapping[str, Any], entry)


def _section(project: object, section: str) -> object:
    return cast(Mapping[str, Any], project).get(section) if isinstance(project, Mapping) else None


def _mentions_kyma(entry: Mapping[str, Any]) -> bool:
    args = entry.get("args")
    words = [entry.get("command"), *(cast(list[Any], args) if isinstance(args, list) else [])]
    return any(isinstance(w, str) and ("kyma-mcp" in w or "kyma_mcp" in w) for w in words)


def _host_entry(host: Host, path: Path, name: str, entry: Mapping[str, Any], machine: Machine) -> Check:
    label = f"{host.title} ({path}) {name!r}"
    reinstall = f"kyma-mcp install --client {host.name} --force"
    command = str(entry.get("command") or "")
    args = [str(a) for a in cast(list[Any], entry.get("args") or [])]
    found = command if os.path.isabs(command) else shutil.which(command, path=machine.env.get("PATH"))
    if not found or not Path(found).is_file():
        return Check(label, False, f"command {command!r} does not exist", reinstall)
    try:
        done = subprocess.run(
            [found, *args, "--version"],
            capture_output=True,
            text=True,
            timeout=VERSION_RUN_TIMEOUT_SECONDS,
            check=False,
            env=dict(machine.env),
        )
        version = done.stdout.strip()
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Check(label, False, f"{command} --version failed ({type(exc).__name__})", reinstall)
    if done.returncode != 0 or not version.startswith("kyma-mcp"):
        return Check(label, False, f"{command} --version did not answer (exit {done.returncode})", reinstall)
    key = _key_source(host, entry)
    if key is None:
        fix = f"kyma-mcp install --client {host.name} --force --api-key-env {KEY_VARIABLE}"
        return Check(label, False, f"runs ({version}) but its env names no {KEY_VARIABLE}", fix)
    return Check(label, True, f"runs {command} ({version}); key: {key}")


def _key_source(host: Host, entry: Mapping[str, Any]) -> str | None:
    """How the entry gets its key, without showing it; None when it gets none."""
    env = entry.get("env")
    value = cast(Mapping[str, Any], env).get(KEY_VARIABLE) if isinstance(env, Mapping) else None
    if isinstance(value, str) and value:
        return f"reference {value}" if "$" in value else f"stored in the file ({masked(value)})"
    env_vars = entry.get("env_vars")
    if isinstance(env_vars, list) and KEY_VARIABLE in env_vars:
        return f"forwarded from {host.title}'s environment (env_vars)"
    if host.name == "claude-code":
        return f"inherited from the environment claude starts in ({KEY_VARIABLE})"
    return None
