"""Start-up stays light: `import kyma_mcp.server` (what every launch of `kyma-mcp` does before it can
answer `tools/list`) loads no module that only some calls need. Pillow (previews), platformdirs (the
data folder), psycopg (a PostgreSQL store), tomlkit (the installer) and the recommender are imported
inside the functions that use them; uvicorn and starlette only by the MCP SDK itself (`mcp.server` loads its HTTP
transports), never by kyma-mcp's own modules, which import them for `--transport` only.

A fresh interpreter each time: this test process has long since imported everything.
"""

import json
import subprocess
import sys
from functools import cache

LAZY = (
    "PIL",
    "platformdirs",
    "psycopg",
    "psycopg_pool",
    "tomlkit",
    "kyma_mcp.recommend.ranking",
    "kyma_mcp.recommend.profile",
    "kyma_mcp.recommend.guide",
)
"""Never imported by `import kyma_mcp.server`; the recommender (9 ms of classes and tables) loads on the
first `recommend_model`, `compare` without models or guide read, or in the background once serving."""
SDK_ONLY = ("uvicorn", "starlette")
"""Imported by the MCP SDK at start-up, but never first by a kyma_mcp module."""
OWN_HTTP_MODULES = ("kyma_mcp.server.http", "kyma_mcp.http_config")

PROBE = "import json, sys, kyma_mcp.server; print(json.dumps(sorted(sys.modules)))"


@cache
def fresh_import() -> tuple[frozenset[str], tuple[tuple[int, str], ...]]:
    """The modules loaded by `import kyma_mcp.server` in a new interpreter, and its `-X importtime` tree
    as (depth, module) in the order Python reports it (a module's imports before the module)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", PROBE], capture_output=True, text=True, timeout=60, check=True
    )
    tree: list[tuple[int, str]] = []
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "self [us]" not in line:
            name = line.rsplit("|", 1)[1]
            tree.append((len(name) - len(name.lstrip()), name.strip()))
    return frozenset(json.loads(done.stdout)), tuple(tree)


def importer_of(tree: tuple[tuple[int, str], ...], module: str) -> str | None:
    """The module whose import first loaded `module` (None: imported by the probe itself, or never)."""
    for index, (depth, name) in enumerate(tree):
        if name == module:
            return next((parent for parent_depth, parent in tree[index + 1 :] if parent_depth < depth), None)
    return None


def test_importing_the_server_loads_none_of_the_lazy_dependencies() -> None:
    modules, _ = fresh_import()
    loaded = [name for name in LAZY if name in modules]

    assert loaded == [], f"{loaded} imported at start-up: import them inside the functions that use them"


def test_uvicorn_and_starlette_come_only_from_the_sdk() -> None:
    modules, tree = fresh_import()
    importers = {name: importer_of(tree, name) for name in SDK_ONLY}

    assert all(importer is not None for importer in importers.values()), importers
    assert [f"{name} <- {by}" for name, by in importers.items() if str(by).startswith("kyma_mcp")] == []
    assert [name for name in OWN_HTTP_MODULES if name in modules] == []


def test_the_probe_sees_what_it_looks_for() -> None:
    """The tree is read right: the server's own first module is found, with the probe as its importer."""
    modules, tree = fresh_import()
    assert "kyma_mcp.server.app" in modules
    assert importer_of(tree, "kyma_mcp.server.app") == "kyma_mcp.server"
    assert importer_of(tree, "kyma_mcp.server") is None
