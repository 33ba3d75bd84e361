"""Every tool's arguments, fuzzed: each call ends as a result or a tool error with an error word,
the server keeps serving, and nothing is written outside KYMA_OUTPUT_DIR."""

import re
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client
from mcp.types import TextContent

from kyma_mcp.emulator import EmulatorHandle
from kyma_mcp.server import build_server
from tests.conftest import emulator_settings

WORDS = (
    "auth_missing|auth_invalid|insufficient_balance|model_not_found|invalid_request|rate_limited|"
    "upstream_unavailable|timeout|job_failed|path_denied"
)
ERROR_TEXT = re.compile(rf"^\[({WORDS})\] \S")

nasty_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "",
            " ",
            "../../etc/passwd",
            "/etc/shadow",
            "/dev/zero",
            "~/.ssh/id_rsa",
            "C:\\Windows\\win.ini",
            "file:///etc/passwd",
            "http://169.254.169.254/latest",
            "data:image/png;base64,!!!",
            "qwen-3.6-plus",
            "best",
            "flux-kontext-pro",
            "ZZ-no-such-model",
            "[[words=100000]]",
            "\u202e\u0000\ud7ff",
            "x" * 5000,
        ]
    ),
)
scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(allow_nan=False, allow_infinity=False),
    nasty_text,
)
value = st.recursive(
    scalar, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(nasty_text, inner, max_size=4), max_leaves=8
)


def arguments_for(schema: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Random values for the tool's own parameter names, plus now and then an unknown one."""
    names = list(schema.get("properties", {}))
    known = st.fixed_dictionaries({}, optional=dict.fromkeys(names, value))
    return st.one_of(known, st.dictionaries(nasty_text, value, max_size=3))


def files_under(root: Path) -> set[Path]:
    return {path for path in root.rglob("*") if path.is_file()}


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder and HOME that the server must leave untouched."""
    for name in ("cwd", "home", "out"):
        (tmp_path / name).mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path


@pytest.fixture
def schemas(emulator: EmulatorHandle) -> dict[str, dict[str, Any]]:
    async def listed() -> dict[str, dict[str, Any]]:
        async with Client(build_server(emulator_settings(emulator))) as client:
            return {tool.name: tool.input_schema for tool in (await client.list_tools()).tools}

    return anyio.run(listed)


TOOLS = ["chat", "list_models", "generate_image", "get_image_job", "recommend_model", "get_limits"]


@pytest.mark.parametrize("name", TOOLS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_arguments_end_cleanly_and_write_nothing_outside_the_output_folder(
    name: str, data: st.DataObject, emulator: EmulatorHandle, sandbox: Path, schemas: dict[str, dict[str, Any]]
) -> None:
    emulator.switches.image_delay_seconds = 0
    if name not in schemas:
        pytest.skip(f"{name} is not registered")
    arguments = data.draw(arguments_for(schemas[name]), label="arguments")
    config = emulator_settings(emulator, output_dir=sandbox / "out", tool_timeout_seconds=5)

    async def call() -> tuple[bool, str, int]:
        with anyio.fail_after(30):
            async with Client(build_server(config)) as client:
                result = await client.call_tool(name, arguments)
                still_serving = len((await client.list_tools()).tools)
        text = "\n".join(block.text for block in result.content if isinstance(block, TextContent))
        return bool(result.is_error), text, still_serving

    is_error, text, still_serving = anyio.run(call)

    assert still_serving == len(schemas)
    if is_error:
        assert ERROR_TEXT.match(text), text[:300]
    assert files_under(sandbox / "cwd") == set()
    assert files_under(sandbox / "home") == set()
