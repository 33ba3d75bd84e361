"""The uv launch paths a desktop host may be configured with, built from this checkout's wheel.

`uv tool install` puts a console script in a venv with compiled bytecode; `uvx --from <wheel>`
runs from uv's cached environment (measured `--offline`, since an online `uvx` also asks the
index on every launch). Needs `uv` (`pip install -e ".[bench]"`); without it, or without
network for the first build, these rows are left out with a note saying why.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import anyio

from bench.harness import Bench
from bench.wire import ServerCommand

REPO_ROOT = Path(__file__).resolve().parents[1]
_PREPARE_TIMEOUT_SECONDS = 600


class _Unavailable(Exception):
    """A uv step failed; the message says which and why."""


@asynccontextmanager
async def prepared(bench: Bench) -> AsyncGenerator[list[ServerCommand]]:
    """The uv launch commands, ready and warmed up; none (with a note) when uv cannot be used here."""
    if not bench.with_uv:
        yield []
        return
    uv = _tool("uv")
    if uv is None:
        bench.notes.append('uv launch paths: not measured, uv is not installed (pip install -e ".[bench]").')
        yield []
        return
    with tempfile.TemporaryDirectory(prefix="kyma-bench-uv-") as scratch:
        try:
            with anyio.fail_after(_PREPARE_TIMEOUT_SECONDS):
                commands = await _prepare(bench, uv, Path(scratch))
        except (_Unavailable, TimeoutError) as exc:
            bench.notes.append(f"uv launch paths: not measured, {exc or 'preparing them took over 10 minutes'}.")
            commands = []
        yield commands


async def _prepare(bench: Bench, uv: str, scratch: Path) -> list[ServerCommand]:
    dist = scratch / "dist"
    await _run([uv, "build", "--wheel", "--out-dir", str(dist), str(REPO_ROOT)], "building the wheel")
    wheel = next(dist.glob("kyma_mcp-*.whl"))
    tools = {"UV_TOOL_DIR": str(scratch / "tools"), "UV_TOOL_BIN_DIR": str(scratch / "bin")}
    install = [uv, "tool", "install", "--compile-bytecode", "--python", sys.executable, str(wheel)]
    await _run(install, "uv tool install", env=tools)
    commands = [ServerCommand("kyma-mcp (uv tool install)", (str(scratch / "bin" / "kyma-mcp"),), bench.env())]
    uvx = [_tool("uvx") or uv, *([] if _tool("uvx") else ["tool", "run"])]
    for label, compile_env in (("", {}), (", UV_COMPILE_BYTECODE=1", {"UV_COMPILE_BYTECODE": "1"})):
        # A wheel path of its own, so each variant gets its own cached environment.
        copy = scratch / f"wheel{len(commands)}" / wheel.name
        copy.parent.mkdir()
        shutil.copy(wheel, copy)
        source = ["--python", sys.executable, "--from", str(copy), "kyma-mcp"]
        await _run([*uvx, *source, "--version"], "uvx (first run, online)", env=compile_env)
        argv = (*uvx, "--offline", *source)
        label = f"kyma-mcp (uvx --offline{label})"
        commands.append(ServerCommand(label, argv, bench.env(**compile_env), behind_launcher=True))
    return commands


async def _run(argv: Sequence[str], step: str, *, env: Mapping[str, str] | None = None) -> None:
    result = await anyio.run_process(
        list(argv),
        env={**os.environ, **env} if env else None,
        check=False,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    if result.returncode != 0:
        tail = result.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise _Unavailable(f"{step} failed: {tail[0]}")


def _tool(name: str) -> str | None:
    """A uv binary next to this interpreter (pip-installed into the venv), else on PATH."""
    return shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
