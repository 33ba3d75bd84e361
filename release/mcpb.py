"""Build the Claude Desktop bundle: `python -m release.mcpb [--out dist]` writes `dist/kyma-mcp-VERSION.mcpb`.

An `.mcpb` is a zip with `manifest.json` at its root (github.com/modelcontextprotocol/mcpb,
MANIFEST.md). This one uses the `uv` server type (manifest 0.4): the bundle carries the source
and `pyproject.toml`, and the host installs the dependencies with uv for the user's own
platform, so one small bundle serves macOS, Windows and Linux. The key is a `user_config`
entry marked `sensitive`, which Claude Desktop keeps in the OS keychain and passes as
`KYMA_API_KEY`; it never sits in a config file.
"""

from __future__ import annotations

import argparse
import json
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kyma_mcp import __version__
from kyma_mcp.server.app import TOOL_MODULES

ROOT = Path(__file__).resolve().parent.parent
MANIFEST_VERSION = "0.4"
ENTRY_POINT = "kyma_mcp/__main__.py"
INCLUDED = ("pyproject.toml", "README.md")
"""Besides the package itself: what `uv run` needs to build and install the project."""
_SKIPPED_PARTS = {"__pycache__"}


def manifest() -> dict[str, Any]:
    return {
        "manifest_version": MANIFEST_VERSION,
        "name": "kyma-mcp",
        "display_name": "Kyma",
        "version": __version__,
        "description": "Chat with Kyma's open models, list models and limits, generate images, pick a model.",
        "author": {"name": "kyma-mcp contributors"},
        "license": "MIT",
        "keywords": ["kyma", "llm", "open models", "images"],
        "server": {
            "type": "uv",
            "entry_point": ENTRY_POINT,
            "mcp_config": {
                "command": "uv",
                "args": ["run", "--directory", "${__dirname}", "kyma-mcp"],
                "env": {"KYMA_API_KEY": "${user_config.api_key}", "KYMA_OUTPUT_DIR": "${user_config.output_dir}"},
            },
        },
        "tools": [
            {"name": spec.function.__name__, "description": spec.title}
            for module in TOOL_MODULES
            for spec in module.TOOLS
        ],
        "user_config": {
            "api_key": {
                "type": "string",
                "title": "Kyma API key",
                "description": "Your key from kymaapi.com (starts with ky-).",
                "sensitive": True,
                "required": True,
            },
            "output_dir": {
                "type": "directory",
                "title": "Image folder",
                "description": "Where generated images are saved (default: your user data folder).",
                "required": False,
            },
        },
        "compatibility": {"platforms": ["darwin", "win32", "linux"], "runtimes": {"python": ">=3.11"}},
    }


def build(out: Path, root: Path = ROOT) -> Path:
    """Write the bundle into `out` and return its path."""
    out.mkdir(parents=True, exist_ok=True)
    bundle = out / f"kyma-mcp-{__version__}.mcpb"
    files = sorted(
        p
        for p in (root / "kyma_mcp").rglob("*")
        if p.is_file() and not _SKIPPED_PARTS & set(p.parts) and p.suffix != ".pyc"
    )
    with zipfile.ZipFile(bundle, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.json", json.dumps(manifest(), indent=2) + "\n")
        for name in INCLUDED:
            archive.write(root / name, name)
        for path in files:
            archive.write(path, path.relative_to(root).as_posix())
    return bundle


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m release.mcpb", description="Build the Claude Desktop bundle.")
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="folder for the bundle (default dist/)")
    print(build(parser.parse_args(argv).out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
