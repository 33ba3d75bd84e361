"""The hosts' own installers: server.json (MCP Registry), the .mcpb bundle (unpacked and checked), the Dockerfile.

The schemas below are written from the documented fields: the MCP Registry's server.json
reference (server.schema.json, 2025-12-11) and the MCPB MANIFEST.md (manifest 0.3/0.4). They
check what those documents require and forbid, validated with jsonschema.
"""

import json
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from kyma_mcp import __version__
from kyma_mcp.emulator import EmulatorHandle
from kyma_mcp.server.app import TOOL_MODULES
from kyma_mcp.settings import environment_defaults
from release.mcpb import build

ROOT = Path(__file__).resolve().parent.parent

_INPUT = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "pattern": "^[A-Z][A-Z0-9_]*$"},
        "description": {"type": "string"},
        "isRequired": {"type": "boolean"},
        "isSecret": {"type": "boolean"},
        "format": {"enum": ["string", "number", "boolean", "filepath"]},
        "default": {"type": "string"},
        "placeholder": {"type": "string"},
        "value": {"type": "string"},
        "choices": {"type": "array", "items": {"type": "string"}},
    },
    "additionalProperties": False,
}
SERVER_JSON_SCHEMA = {
    "type": "object",
    "required": ["$schema", "name", "description", "version"],
    "properties": {
        "$schema": {"const": "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json"},
        "name": {"type": "string", "pattern": "^[a-zA-Z0-9.-]+/[a-zA-Z0-9._-]+$", "minLength": 3, "maxLength": 200},
        "title": {"type": "string", "minLength": 1, "maxLength": 100},
        "description": {"type": "string", "minLength": 1, "maxLength": 100},
        "version": {"type": "string", "not": {"pattern": r"^(latest|[\^~<>=].*|.*[x*].*)$"}},
        "packages": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["registryType", "identifier", "version", "transport"],
                "additionalProperties": False,
                "properties": {
                    "registryType": {"enum": ["npm", "pypi", "oci", "nuget", "mcpb"]},
                    "registryBaseUrl": {"type": "string", "format": "uri"},
                    "identifier": {"type": "string"},
                    "version": {"type": "string", "not": {"const": "latest"}, "minLength": 1},
                    "runtimeHint": {"type": "string"},
                    "transport": {
                        "type": "object",
                        "required": ["type"],
                        "properties": {"type": {"enum": ["stdio", "streamable-http", "sse"]}},
                    },
                    "environmentVariables": {"type": "array", "items": _INPUT},
                    "packageArguments": {"type": "array"},
                    "runtimeArguments": {"type": "array"},
                },
            },
        },
    },
}
_USER_CONFIG = {
    "type": "object",
    "required": ["type", "title", "description"],
    "properties": {
        "type": {"enum": ["string", "number", "boolean", "directory", "file"]},
        "title": {"type": "string"},
        "description": {"type": "string"},
        "required": {"type": "boolean"},
        "sensitive": {"type": "boolean"},
        "multiple": {"type": "boolean"},
        "default": {},
        "min": {"type": "number"},
        "max": {"type": "number"},
    },
    "additionalProperties": False,
}
MANIFEST_SCHEMA = {
    "type": "object",
    "required": ["manifest_version", "name", "version", "description", "author", "server"],
    "properties": {
        "manifest_version": {"enum": ["0.3", "0.4"]},
        "name": {"type": "string", "minLength": 1},
        "display_name": {"type": "string"},
        "version": {"type": "string", "pattern": r"^\d+\.\d+\.\d+"},
        "description": {"type": "string", "minLength": 1},
        "author": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}},
        "license": {"type": "string"},
        "keywords": {"type": "array", "items": {"type": "string"}},
        "server": {
            "type": "object",
            "required": ["type", "entry_point"],
            "properties": {
                "type": {"enum": ["node", "python", "binary", "uv"]},
                "entry_point": {"type": "string"},
                "mcp_config": {
                    "type": "object",
                    "required": ["command"],
                    "properties": {
                        "command": {"type": "string"},
                        "args": {"type": "array", "items": {"type": "string"}},
                        "env": {"type": "object", "additionalProperties": {"type": "string"}},
                    },
                },
            },
        },
        "tools": {
            "type": "array",
            "items": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}},
        },
        "user_config": {"type": "object", "additionalProperties": _USER_CONFIG},
        "compatibility": {
            "type": "object",
            "properties": {
                "platforms": {"type": "array", "items": {"enum": ["darwin", "win32", "linux"]}},
                "runtimes": {"type": "object"},
            },
        },
    },
    "additionalProperties": False,
}


def load_server_json() -> dict[str, Any]:
    return json.loads((ROOT / "server.json").read_text("utf-8"))


def test_server_json_follows_the_registry_schema() -> None:
    jsonschema.validate(load_server_json(), SERVER_JSON_SCHEMA)


def test_server_json_names_this_package_and_its_readme_owner() -> None:
    document = load_server_json()
    readme_name = re.search(r"<!-- mcp-name: (\S+) -->", (ROOT / "README.md").read_text("utf-8"))
    project = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]

    assert readme_name is not None
    assert document["name"] == readme_name.group(1)
    assert document["name"].startswith("io.github.")
    [package] = document["packages"]
    assert package["registryType"] == "pypi"
    assert package["identifier"] == project["name"]
    assert document["version"] == package["version"] == __version__


def test_server_json_declares_the_key_secret_and_only_real_variables() -> None:
    [package] = load_server_json()["packages"]
    variables = {v["name"]: v for v in package["environmentVariables"]}
    known = dict(environment_defaults())

    assert variables["KYMA_API_KEY"]["isSecret"] is True
    assert variables["KYMA_API_KEY"]["isRequired"] is True
    assert set(variables) <= set(known)
    for name, variable in variables.items():
        if "default" in variable:
            assert variable["default"] == known[name]
        assert variable.get("isSecret", False) == (name == "KYMA_API_KEY")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    return zipfile.ZipFile(build(tmp_path_factory.mktemp("dist")))


def test_the_bundle_manifest_follows_the_documented_fields(bundle: zipfile.ZipFile) -> None:
    manifest = json.loads(bundle.read("manifest.json"))

    jsonschema.validate(manifest, MANIFEST_SCHEMA)
    assert manifest["version"] == __version__
    assert manifest["server"]["type"] == "uv"
    assert manifest["manifest_version"] == "0.4"  # the uv server type needs 0.4


def test_the_bundle_keeps_the_key_in_a_sensitive_user_config(bundle: zipfile.ZipFile) -> None:
    manifest = json.loads(bundle.read("manifest.json"))
    config, env = manifest["user_config"], manifest["server"]["mcp_config"]["env"]

    assert config["api_key"]["sensitive"] is True
    assert config["api_key"]["required"] is True
    assert env["KYMA_API_KEY"] == "${user_config.api_key}"
    referenced = {m for value in env.values() for m in re.findall(r"\$\{user_config\.(\w+)\}", value)}
    assert referenced == set(config)
    assert set(env) <= set(dict(environment_defaults()))


def test_the_bundle_carries_what_uv_run_needs(bundle: zipfile.ZipFile) -> None:
    manifest = json.loads(bundle.read("manifest.json"))
    names = set(bundle.namelist())
    pyproject = tomllib.loads(bundle.read("pyproject.toml").decode())

    assert manifest["server"]["entry_point"] in names
    assert {"pyproject.toml", "README.md", "kyma_mcp/data/catalog.json"} <= names
    assert manifest["server"]["mcp_config"]["args"][-1] in pyproject["project"]["scripts"]
    assert not [n for n in names if "__pycache__" in n or n.startswith(("tests/", ".venv/"))]


def test_the_bundle_lists_every_tool_the_server_has(bundle: zipfile.ZipFile) -> None:
    manifest = json.loads(bundle.read("manifest.json"))
    tools = [spec.function.__name__ for module in TOOL_MODULES for spec in module.TOOLS]

    assert [tool["name"] for tool in manifest["tools"]] == tools


def dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text("utf-8")


def instruction(name: str) -> Any:
    """The JSON (exec form) argument of the Dockerfile's last `name` instruction."""
    found = re.findall(rf"^{name} (\[.+\])$", dockerfile(), re.MULTILINE)
    assert found, name
    return json.loads(found[-1])


def test_the_image_runs_as_a_numeric_non_root_user_with_a_healthcheck() -> None:
    text = dockerfile()
    users = re.findall(r"^USER (\S+)$", text, re.MULTILINE)
    entrypoint, command = instruction("ENTRYPOINT"), instruction("CMD")

    assert users
    assert users[-1].isdigit()
    assert users[-1] != "0"
    assert entrypoint == ["kyma-mcp"]
    assert command == ["--transport", "streamable-http", "--host", "0.0.0.0", "--port", "8000"]
    assert "HEALTHCHECK" in text


def healthcheck(port: int) -> int:
    """Run the image's HEALTHCHECK command against `port` on this machine; its exit code."""
    line = next(line for line in dockerfile().splitlines() if line.startswith("HEALTHCHECK"))
    command = json.loads(line[line.index("CMD ") + 4 :])
    assert command[:2] == ["python", "-c"]
    script = command[2].replace("127.0.0.1:8000", f"127.0.0.1:{port}")
    return subprocess.run([sys.executable, "-c", script], timeout=30, check=False).returncode


def test_the_healthcheck_passes_on_any_http_answer_and_fails_on_none(emulator: EmulatorHandle) -> None:
    port = int(emulator.root_url.rsplit(":", 1)[1])
    assert healthcheck(port) == 0  # the emulator answers /mcp with a 404: something is serving

    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    assert healthcheck(closed) == 1


def test_the_images_command_refuses_to_start_without_a_token() -> None:
    """What the container does when KYMA_MCP_AUTH_TOKEN is missing: exit 2 with one line naming it."""
    command = instruction("CMD")
    done = subprocess.run(
        [sys.executable, "-m", "kyma_mcp", *command],
        env={"PATH": "/usr/bin:/bin", "KYMA_MCP_ALLOWED_HOSTS": "localhost:8000"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert done.returncode == 2
    assert "KYMA_MCP_AUTH_TOKEN" in done.stderr
    assert done.stdout == ""
