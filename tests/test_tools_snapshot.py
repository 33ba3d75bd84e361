"""The full `tools/list` as hosts read it (names, titles, descriptions, input and output schemas,
annotations) against a committed snapshot, so no schema or annotation changes without a reviewed diff.

After a deliberate change, regenerate the snapshot and review its diff in the commit:

    KYMA_UPDATE_SNAPSHOTS=1 .venv/bin/pytest tests/test_tools_snapshot.py
"""

import difflib
import json
import os
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from kyma_mcp.server import build_server
from kyma_mcp.settings import Settings

SNAPSHOT = Path(__file__).parent / "snapshots" / "tools_list.json"
REGENERATE = "KYMA_UPDATE_SNAPSHOTS=1 .venv/bin/pytest tests/test_tools_snapshot.py"


def listed_tools_json(mode: str) -> str:
    """`tools/list` from a fresh in-memory server, as indented JSON in the server's own key order (the
    order a model reads the arguments in)."""

    async def listed() -> list[dict[str, Any]]:
        settings = Settings.model_validate({"api_key": "ky-x", "base_url": "http://127.0.0.1:9/v1"})
        server = build_server(settings)
        client = Client(server) if mode == "auto" else Client(server, mode="legacy")
        async with client:
            tools = (await client.list_tools()).tools
        return [tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in tools]

    return json.dumps(anyio.run(listed), indent=2, ensure_ascii=False) + "\n"


def test_tools_list_matches_the_reviewed_snapshot() -> None:
    current = listed_tools_json("auto")
    if os.environ.get("KYMA_UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(current, encoding="utf-8")
    reviewed = SNAPSHOT.read_text(encoding="utf-8") if SNAPSHOT.exists() else ""

    diff = "".join(
        difflib.unified_diff(
            reviewed.splitlines(keepends=True),
            current.splitlines(keepends=True),
            fromfile="tests/snapshots/tools_list.json (reviewed)",
            tofile="tools/list (now)",
        )
    )
    if diff:
        pytest.fail(
            f"tools/list changed from the reviewed snapshot:\n{diff}\n"
            f"If the change is intended, regenerate the snapshot with `{REGENERATE}` and commit it with the change.",
            pytrace=False,
        )


def test_both_protocol_eras_list_the_same_tools() -> None:
    """The legacy era serialises the same tools with keys in another order: equal as data."""
    assert json.loads(listed_tools_json("legacy")) == json.loads(listed_tools_json("auto"))
