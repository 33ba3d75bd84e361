"""Every tool's arguments, fuzzed: each call ends as a result or a tool error with an error word,
the server keeps serving, and nothing is written outside KYMA_OUTPUT_DIR. Also fuzzed: tool names
that do not exist, and an upstream whose every answer is corrupt gzip."""

import re
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from mcp import Client
from mcp.types import TextContent

from kyma_mcp.emulator import EmulatorHandle
from kyma_mcp.errors import WORDS
from kyma_mcp.server import build_server
from kyma_mcp.server.app import TOOL_MODULES
from kyma_mcp.settings import Settings
from tests.conftest import emulator_settings

ERROR_TEXT = re.compile(rf"^\[({'|'.join(WORDS)})\] \S")
TOOLS = [tool.function.__name__ for module in TOOL_MODULES for tool in module.TOOLS]

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
            "~nosuchuser/a.png",
            "~root/.ssh/id_rsa",
            "~/a.png",
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


@pytest.mark.parametrize("name", TOOLS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_arguments_end_cleanly_and_write_nothing_outside_the_output_folder(
    name: str, data: st.DataObject, emulator: EmulatorHandle, sandbox: Path, schemas: dict[str, dict[str, Any]]
) -> None:
    emulator.switches.image_delay_seconds = 0
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


def corrupt_gzip(request: httpx2.Request) -> httpx2.Response:
    """Every answer claims gzip and carries bytes no gzip decoder accepts."""
    del request
    return httpx2.Response(200, stream=httpx2.ByteStream(b"\x1f\x8b\x08garbage"), headers={"content-encoding": "gzip"})


@pytest.mark.parametrize("name", TOOLS)
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_calls_against_corrupt_compression_end_with_a_word(
    name: str, data: st.DataObject, sandbox: Path, schemas: dict[str, dict[str, Any]]
) -> None:
    arguments = data.draw(arguments_for(schemas[name]), label="arguments")
    config = Settings.model_validate(
        {"api_key": "ky-fuzz-0123456789", "output_dir": sandbox / "out", "tool_timeout_seconds": 5, "max_retries": 0}
    )

    async def call() -> tuple[bool, str]:
        with anyio.fail_after(30):
            async with Client(build_server(config, transport=httpx2.MockTransport(corrupt_gzip))) as client:
                result = await client.call_tool(name, arguments)
        text = "\n".join(block.text for block in result.content if isinstance(block, TextContent))
        return bool(result.is_error), text

    is_error, text = anyio.run(call)

    if is_error:
        assert ERROR_TEXT.match(text), text[:300]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.one_of(nasty_text, st.sampled_from(["nope", "Chat", "chat ", "list-models", "get_image_jobs"])))
def test_an_unknown_tool_name_answers_invalid_request(name: str, schemas: dict[str, dict[str, Any]]) -> None:
    assume(name not in schemas)  # a real tool: covered above

    async def call() -> tuple[bool, str]:
        async with Client(build_server(Settings())) as client:
            result = await client.call_tool(name, {})
        return bool(result.is_error), "\n".join(b.text for b in result.content if isinstance(b, TextContent))

    is_error, text = anyio.run(call)

    assert is_error
    assert text.startswith("[invalid_request] There is no tool"), text[:300]
