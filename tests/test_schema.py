"""Compacted tool schemas are smaller and accept exactly what the originals accept."""

from typing import Any, Literal

import jsonschema
import pytest
from pydantic import BaseModel, Field

from kyma_mcp.server.schema import compact


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
    before = jsonschema.Draft202012Validator(ORIGINAL).is_valid(document)
    after = jsonschema.Draft202012Validator(compact(ORIGINAL)).is_valid(document)

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
