"""The layering rules the layout relies on, as import-linter contracts in pyproject.toml's
[tool.importlinter] (only the server imports the MCP SDK, only kyma/ speaks HTTP, the emulator and the
product do not import each other, the logic never imports the MCP surface, kyma/ knows nothing above it).

They are checked on the real import graph, direct and indirect imports, including those inside
functions. A second test breaks every contract in a copy of the package, so a contract that matches
nothing (a module renamed away from under it) cannot pass silently.
"""

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(package_parent: Path) -> subprocess.CompletedProcess[str]:
    """`lint-imports` with the project's contracts, on the `kyma_mcp` found in `package_parent`."""
    assert LINT_IMPORTS.exists(), "import-linter is a dev dependency: .venv/bin/pip install -e '.[dev]'"
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", str(ROOT / "pyproject.toml")],
        cwd=package_parent,
        env={**os.environ, "PYTHONPATH": str(package_parent)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def contract_names() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    contracts: list[dict[str, str]] = config["tool"]["importlinter"]["contracts"]
    return [contract["name"] for contract in contracts]


def test_every_import_contract_is_kept() -> None:
    checked = lint_imports(ROOT)

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"Contracts: {len(contract_names())} kept, 0 broken." in checked.stdout


VIOLATIONS = {
    "catalog.py": "import mcp",  # the MCP SDK outside the server
    "chat.py": "import httpx2",  # HTTP outside kyma/
    "emulator/state.py": "import kyma_mcp.settings",  # the emulator importing the product
    "limits.py": "import kyma_mcp.emulator",  # the product importing the emulator
    "usage.py": "import kyma_mcp.server",  # the logic importing the MCP surface
    "kyma/wire.py": "import kyma_mcp.catalog",  # kyma/ importing what sits above it
}


def test_each_contract_breaks_when_its_rule_is_broken(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "kyma_mcp", tmp_path / "kyma_mcp", ignore=shutil.ignore_patterns("__pycache__"))
    for module, line in VIOLATIONS.items():
        with (tmp_path / "kyma_mcp" / module).open("a", encoding="utf-8") as source:
            source.write(f"\n\ndef _violation() -> None:\n    {line}  # noqa\n")

    checked = lint_imports(tmp_path)

    assert checked.returncode != 0
    names = contract_names()
    assert len(names) == len(VIOLATIONS)
    broken = [name for name in names if f"{name} BROKEN" in re.sub(r"\s*\n", " ", checked.stdout)]
    assert broken == names, checked.stdout
    assert f"Contracts: 0 kept, {len(names)} broken." in checked.stdout
