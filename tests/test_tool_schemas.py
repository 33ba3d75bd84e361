"""The tool list as hosts read it: a context budget for every tool, schemas that OpenAI strict mode and
Ajv strict mode take, string arguments that stay strings, and results that match their output schemas.

Everything here walks the live `tools/list`, so a tool added to TOOL_MODULES is covered without edits.
"""

import json
from pathlib import Path
from typing import Any, cast

import anyio
import pytest
from mcp import Client
from mcp.server.mcpserver.tools import Tool as SDKTool
from mcp.types import Tool
from pydantic import ValidationError

from kyma_mcp.emulator import EmulatorHandle
from kyma_mcp.server import build_server
from kyma_mcp.server.app import build_tools
from kyma_mcp.settings import Settings
from tests.conftest import ConnectFactory, emulator_settings
from tests.results import schema_validator, structured

CONTEXT_BUDGET_BYTES = 4_800
"""≈1,200 tokens: what every turn of every host pays for kyma-mcp's tools, whatever tools are added."""

JSON_LOOKING_TEXT = ('{"city":"Paris"}', "[1,2,3]", '{"a": [1, {"b": null}]}', "null", "true")


def listed_tools() -> list[Tool]:
    async def listed() -> list[Tool]:
        settings = Settings.model_validate({"api_key": "ky-x", "base_url": "http://127.0.0.1:9/v1"})
        async with Client(build_server(settings)) as client:
            return (await client.list_tools()).tools

    return anyio.run(listed)


TOOLS = listed_tools()
TOOL_NAMES = [tool.name for tool in TOOLS]


def model_visible_bytes(tool: Tool) -> int:
    """What the model reads of a tool: its name, description and input schema, as compact JSON."""
    visible = {"name": tool.name, "description": tool.description, "inputSchema": tool.input_schema}
    return len(json.dumps(visible, ensure_ascii=False, separators=(",", ":")).encode())


def test_the_model_visible_tool_list_fits_the_context_budget() -> None:
    sizes = {tool.name: model_visible_bytes(tool) for tool in TOOLS}
    total = sum(sizes.values())
    per_property = {
        tool.name: {
            name: len(json.dumps({name: schema}, separators=(",", ":")))
            for name, schema in tool.input_schema.get("properties", {}).items()
        }
        for tool in TOOLS
    }
    breakdown = "\n".join(
        f"  {name:16} {size:5,} B  (description {len(next(t for t in TOOLS if t.name == name).description or ''):,} B;"
        f" properties {per_property[name]})"
        for name, size in sorted(sizes.items(), key=lambda item: -item[1])
    )

    assert total <= CONTEXT_BUDGET_BYTES, (
        f"the model-visible tools/list is {total:,} B, over the {CONTEXT_BUDGET_BYTES:,} B budget. Per tool:\n"
        f"{breakdown}\nTrim descriptions to one sentence, drop defaults and bounds the server checks anyway "
        "(kyma_mcp/server/schema.py drops most), and describe nested objects in prose."
    )


@pytest.mark.parametrize("tool", TOOLS, ids=TOOL_NAMES)
def test_each_description_is_one_sentence_saying_when_to_use_it(tool: Tool) -> None:
    description = tool.description or ""

    assert "\n" not in description
    assert description.endswith(".")
    assert ". " not in description.removesuffix(".")


# -- OpenAI strict mode: the rules of openai-agents' `ensure_strict_json_schema` for MCP tools --------------


def openai_strict_problems(schema: dict[str, Any]) -> list[str]:
    """Why an OpenAI strict-mode converter (openai-agents, rejecting open objects as it does for MCP tools)
    would serve this input schema non-strict; empty when it converts."""
    problems: list[str] = []
    if schema.get("type") != "object" or "anyOf" in schema:
        problems.append("root: must be a plain, non-nullable object")
    _strict_node(schema, "#", problems)
    return problems


def _strict_node(node: dict[str, Any], path: str, problems: list[str]) -> None:
    if "$ref" in node or "$defs" in node or "definitions" in node:
        problems.append(f"{path}: a reference (or definitions) strict mode would have to resolve")
    kind = node.get("type")
    is_object = kind == "object" or (isinstance(kind, list) and "object" in kind)
    extra = node.get("additionalProperties")
    if kind is None and "properties" not in node and "additionalProperties" in node and extra is not False:
        problems.append(f"{path}: additionalProperties without a type")
    if is_object and not node.get("properties") and extra is not False:
        problems.append(f"{path}: an object that permits undeclared properties")
    if is_object and "additionalProperties" in node and extra is not False:
        problems.append(f"{path}: additionalProperties must be false")
    if kind is None and not {"anyOf", "enum", "const"} & set(node):
        problems.append(f"{path}: no type")
    for name, sub in cast(dict[str, Any], node.get("properties", {})).items():
        _strict_node(sub, f"{path}/properties/{name}", problems)
    if isinstance(node.get("items"), dict):
        _strict_node(node["items"], f"{path}/items", problems)
    for key in ("anyOf", "oneOf", "allOf"):
        for index, sub in enumerate(node.get(key, [])):
            _strict_node(sub, f"{path}/{key}/{index}", problems)


@pytest.mark.parametrize("tool", TOOLS, ids=TOOL_NAMES)
def test_every_input_schema_converts_to_openai_strict_mode(tool: Tool) -> None:
    assert openai_strict_problems(tool.input_schema) == []


def test_the_strict_rules_catch_what_hosts_reported() -> None:
    assert openai_strict_problems({"type": "object", "properties": {}}) == [
        "#: an object that permits undeclared properties"
    ]
    defs = {"type": "object", "properties": {"m": {"$ref": "#/$defs/M"}}, "$defs": {"M": {"type": "object"}}}
    assert any("reference" in problem for problem in openai_strict_problems(defs))


# -- Ajv strict mode (strictSchema, strictTypes, strictRequired; no allowUnionTypes) ------------------------

KEYWORDS_BY_TYPE = {
    "string": {"minLength", "maxLength", "pattern"},
    "number": {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"},
    "array": {"items", "prefixItems", "minItems", "maxItems", "uniqueItems", "contains"},
    "object": {"properties", "required", "additionalProperties", "minProperties", "maxProperties"},
}
GENERIC_KEYWORDS = {"type", "enum", "const", "anyOf", "oneOf", "allOf", "not", "description", "title", "default"} | {
    "$ref",
    "$defs",
}
KNOWN_KEYWORDS = GENERIC_KEYWORDS | set[str]().union(*KEYWORDS_BY_TYPE.values())


def ajv_strict_problems(node: dict[str, Any], path: str = "#") -> list[str]:
    """What Ajv in strict mode would warn about or refuse in this schema."""
    problems = [f"{path}: unknown keyword {key!r}" for key in node if key not in KNOWN_KEYWORDS | {"format"}]
    if "format" in node:  # without the ajv-formats plugin every format is unknown, and strict mode refuses it
        problems.append(f"{path}: unknown format {node['format']!r}")
    kind = node.get("type")
    types = set(cast(list[str], kind) if isinstance(kind, list) else [kind] if isinstance(kind, str) else [])
    if len(types) > 1 and not (len(types) == 2 and "null" in types):
        problems.append(f"{path}: union type {sorted(types)} needs allowUnionTypes")
    if "integer" in types:
        types.add("number")
    for type_name, keywords in KEYWORDS_BY_TYPE.items():
        for keyword in keywords & set(node):
            if type_name not in types:
                problems.append(f'{path}: missing type "{type_name}" for keyword "{keyword}"')
    for name in node.get("required", []):
        if name not in node.get("properties", {}):
            problems.append(f"{path}: required {name!r} is not a property")
    for key in ("properties", "$defs"):
        for name, sub in cast(dict[str, Any], node.get(key, {})).items():
            problems += ajv_strict_problems(sub, f"{path}/{key}/{name}")
    if isinstance(node.get("items"), dict):
        problems += ajv_strict_problems(node["items"], f"{path}/items")
    for key in ("anyOf", "oneOf", "allOf"):
        for index, sub in enumerate(node.get(key, [])):
            problems += ajv_strict_problems(sub, f"{path}/{key}/{index}")
    return problems


@pytest.mark.parametrize("tool", TOOLS, ids=TOOL_NAMES)
def test_every_schema_is_clean_under_ajv_strict_mode(tool: Tool) -> None:
    assert ajv_strict_problems(tool.input_schema) == []
    if tool.output_schema is not None:
        assert ajv_strict_problems(tool.output_schema) == []


def test_the_ajv_rules_catch_the_gemini_warning() -> None:
    content = {"anyOf": [{"type": "string"}, {"type": "array"}], "maxLength": 10}

    assert ajv_strict_problems(content) == ['#: missing type "string" for keyword "maxLength"']


def test_the_ajv_rules_catch_a_format_and_no_schema_names_one() -> None:
    resets_at = {"type": ["string", "null"], "format": "date-time"}  # what pydantic writes for a datetime

    assert ajv_strict_problems(resets_at) == ["#: unknown format 'date-time'"]
    assert '"format"' not in json.dumps([(tool.input_schema, tool.output_schema) for tool in TOOLS])


# -- What the schemas ask for ------------------------------------------------------------------------------


def test_chat_asks_for_a_prompt_and_still_takes_messages_instead() -> None:
    chat = next(tool for tool in TOOLS if tool.name == "chat")

    assert chat.input_schema["required"] == ["prompt"]
    assert chat.input_schema["properties"]["prompt"]["type"] == ["string", "null"]
    assert chat.input_schema["properties"]["messages"]["items"]["properties"]["role"]["enum"]


@pytest.mark.anyio
@pytest.mark.parametrize("arguments", [{"prompt": None}, {}], ids=["prompt null", "prompt absent"])
async def test_a_chat_with_messages_needs_no_prompt(connect: ConnectFactory, arguments: dict[str, Any]) -> None:
    async with connect() as client:
        result = await client.call_tool("chat", {**arguments, "messages": [{"role": "user", "content": "hello"}]})

    assert structured(result)["reply"].startswith("Echo from")


@pytest.mark.parametrize("tool", TOOLS, ids=TOOL_NAMES)
def test_input_schemas_carry_no_defaults_titles_or_references(tool: Tool) -> None:
    text = json.dumps(tool.input_schema)

    assert '"default"' not in text
    assert '"title"' not in text
    assert "$ref" not in text
    assert "$defs" not in text
    assert tool.input_schema["additionalProperties"] is False


# -- String arguments stay strings, JSON-looking or not ----------------------------------------------------

FILLER: dict[str, object] = {"string": "x", "integer": 1, "number": 1, "boolean": False, "array": []}


def _types(schema: dict[str, Any]) -> set[str]:
    kind = schema.get("type")
    return set(cast(list[str], kind) if isinstance(kind, list) else [kind] if isinstance(kind, str) else [])


STRING_ARGUMENTS = [
    (tool.name, name)
    for tool in TOOLS
    for name, schema in tool.input_schema.get("properties", {}).items()
    if "string" in _types(schema) and "enum" not in schema
]


@pytest.mark.parametrize(("tool_name", "argument"), STRING_ARGUMENTS, ids=[f"{t}.{a}" for t, a in STRING_ARGUMENTS])
@pytest.mark.parametrize("text", JSON_LOOKING_TEXT)
def test_every_string_argument_takes_json_looking_text_as_text(tool_name: str, argument: str, text: str) -> None:
    tool = next(tool for tool in build_tools() if tool.name == tool_name)
    properties = tool.parameters["properties"]
    arguments = {
        name: FILLER[sorted(_types(properties[name]) - {"null"})[0]] for name in tool.parameters.get("required", [])
    }
    arguments[argument] = text

    validated, problems = validate(tool, arguments)

    # A constrained id (a model id, a job id) may refuse the text, but as a string, never as "not a string".
    assert set(problems) <= {"string_pattern_mismatch"}
    assert validated is None or validated[argument] == text


def validate(tool: SDKTool, arguments: dict[str, Any]) -> tuple[dict[str, Any] | None, list[str]]:
    """The arguments as the tool function would get them, or the types of the validation errors."""
    try:
        return tool.fn_metadata.validate_arguments(arguments), []
    except ValidationError as exc:
        return None, [error["type"] for error in exc.errors()]


@pytest.mark.anyio
async def test_a_json_prompt_and_system_reach_the_model_verbatim(connect: ConnectFactory) -> None:
    async with connect() as client:
        result = await client.call_tool("chat", {"prompt": '{"city":"Paris"}', "system": "[1,2,3]"})

    assert structured(result)["reply"].startswith('Echo from qwen-3.6-plus: {"city":"Paris"}')


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("name", "arguments"),
    [
        ("recommend_model", {"task": '{"task": "summarise", "lang": "fr"}'}),
        ("list_models", {"search": "[1,2,3]"}),
        ("generate_image", {"prompt": '{"subject":"a red fox"}'}),
    ],
)
async def test_json_text_is_taken_by_every_tool_that_takes_text(
    connect: ConnectFactory, emulator: EmulatorHandle, tmp_path: Path, name: str, arguments: dict[str, Any]
) -> None:
    emulator.switches.image_delay_seconds = 0
    async with connect(output_dir=tmp_path) as client:
        result = await client.call_tool(name, arguments)

    assert not result.is_error, result.content


# -- Results match the output schemas the tools advertise (the SDK no longer re-checks them) ----------------

CALLS: list[tuple[str, dict[str, Any]]] = [
    ("chat", {"prompt": "hi"}),
    ("list_models", {"limit": 3}),
    ("recommend_model", {"task": "summarise a long report"}),
    ("get_limits", {}),
    ("generate_image", {"prompt": "a red fox"}),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("name", "arguments"), CALLS, ids=[name for name, _ in CALLS])
async def test_structured_results_match_the_advertised_output_schema(
    emulator: EmulatorHandle, tmp_path: Path, name: str, arguments: dict[str, Any]
) -> None:
    emulator.switches.image_delay_seconds = 0
    async with Client(build_server(emulator_settings(emulator, output_dir=tmp_path))) as client:
        schemas = {tool.name: tool.output_schema for tool in (await client.list_tools()).tools}
        result = await client.call_tool(name, arguments)

    schema = schemas[name]
    if schema is not None:
        schema_validator(schema).validate(structured(result))
