"""Compacted tool schemas are smaller and accept exactly what the originals accept."""

from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field

from kyma_mcp.server.schema import compact, model_visible
from tests.results import schema_validator


class Part(BaseModel):
    title: str = Field(description="a property that happens to be called title")


class Sample(BaseModel):
    name: str
    mode: Literal["a", "b"] | None = None
    count: int | None = Field(default=None, ge=0, description="how many")
    parts: list[Part] | None = None
    part: Part | None = None


ORIGINAL = Sample.model_json_schema()
DOCUMENTS: list[dict[str, Any]] = [
    {"name": "a"},
    {"name": "a", "count": None},
    {"name": "a", "count": 3, "parts": [{"title": "t"}], "part": None},
    {"name": "a", "count": -1},
    {"name": 5},
    {"count": 1},
    {"name": "a", "parts": [{}]},
    {"name": "a", "part": {"title": 7}},
    {"name": "a", "mode": None},
    {"name": "a", "mode": "b"},
    {"name": "a", "mode": "c"},
]


@pytest.mark.parametrize("document", DOCUMENTS)
def test_compact_schema_accepts_the_same_documents(document: dict[str, Any]) -> None:
    before = schema_validator(ORIGINAL).is_valid(document)
    after = schema_validator(compact(ORIGINAL)).is_valid(document)

    assert before == after


def test_titles_go_but_a_property_named_title_stays() -> None:
    compacted = compact(ORIGINAL)

    assert "title" not in compacted
    assert "title" in compacted["$defs"]["Part"]["properties"]
    assert compacted["properties"]["count"]["type"] == ["integer", "null"]
    assert len(str(compacted)) < len(str(ORIGINAL))


def test_output_schemas_can_drop_descriptions() -> None:
    assert "how many" in str(compact(ORIGINAL))
    assert "how many" not in str(compact(ORIGINAL, keep_descriptions=False))


class Choice(BaseModel):
    pick: Literal["x", "y"]


class Arguments(BaseModel):
    text: str = Field(max_length=10, pattern="^a", description="kept")
    temperature: float = Field(default=1, ge=0, le=2)
    limit: int = Field(default=50, ge=1, le=100)
    kind: Literal["a", "b"] | Literal["all"] = "all"
    choice: Choice | None = None


def test_the_model_visible_schema_is_flat_and_drops_what_the_server_checks() -> None:
    visible = model_visible(Arguments.model_json_schema(), required=["limit"])

    assert visible["properties"]["text"] == {"type": "string", "description": "kept"}
    assert visible["properties"]["temperature"] == {"type": "number", "minimum": 0, "maximum": 2}
    assert visible["properties"]["limit"] == {"type": "integer"}
    assert visible["properties"]["kind"] == {"type": "string", "enum": ["a", "b", "all"]}
    assert visible["properties"]["choice"]["type"] == ["object", "null"]
    assert visible["properties"]["choice"]["properties"]["pick"] == {"type": "string", "enum": ["x", "y"]}
    assert "$defs" not in visible
    assert visible["required"] == ["text", "limit"]
    assert visible["additionalProperties"] is False


def test_a_required_name_must_be_an_argument() -> None:
    with pytest.raises(ValueError, match="nope"):
        model_visible(Arguments.model_json_schema(), required=["nope"])
