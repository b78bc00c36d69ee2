"""The shared input types: column bounds that compose with a field's own bounds."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, Field, ValidationError

from domain.inputs import (
    INT32_MAX,
    INT64_MAX,
    Int32,
    Int64,
    ModelName,
    PatchBody,
    Text,
    json_problem,
    storable_json,
    text_problem,
)


class Body(BaseModel):
    count: Int32 = 0
    narrow: Int64 = Field(default=1, ge=1, le=10)
    amount: Int64 | None = Field(default=None, ge=0)
    above: Int64 = Field(default=1, gt=0)
    name: Text = Field(default="x", max_length=3)
    model: ModelName = "m"


@pytest.mark.parametrize(
    ("field", "value", "ok"),
    [
        ("count", INT32_MAX, True),
        ("count", INT32_MAX + 1, False),
        ("narrow", 0, False),  # the field's own bound is kept beside the column's
        ("narrow", 11, False),
        ("amount", INT64_MAX, True),
        ("amount", INT64_MAX + 1, False),
        ("amount", -1, False),
        ("above", 0, False),
        ("name", "a\x00", False),
        ("name", "\udc80", False),
        ("name", "abcd", False),
        ("name", "é\n", True),
        ("model", "m" * 80, True),
        ("model", "m" * 81, False),
        ("model", "", False),
    ],
)
def test_column_bounds_compose_with_field_bounds(field: str, value: Any, ok: bool) -> None:
    if ok:
        assert getattr(Body.model_validate({field: value}), field) == value
    else:
        with pytest.raises(ValidationError) as info:
            Body.model_validate({field: value})
        assert info.value.errors()[0]["loc"] == (field,)


def test_the_schema_states_the_bounds() -> None:
    props = Body.model_json_schema()["properties"]
    assert (props["narrow"]["minimum"], props["narrow"]["maximum"]) == (1, 10)
    assert props["amount"]["anyOf"][0]["maximum"] == INT64_MAX
    assert props["above"]["exclusiveMinimum"] == 0 and "minimum" not in props["above"]
    assert props["name"]["pattern"] == r"^[^\x00]*$"


class Patch(PatchBody):
    nullable = frozenset({"note"})

    title: Text | None = None
    note: Text | None = None


def test_patch_bodies_refuse_null_except_where_a_column_may_be_empty() -> None:
    assert Patch.model_validate({"note": None}).model_fields_set == {"note"}
    assert Patch.model_validate({}).model_fields_set == set()
    with pytest.raises(ValidationError) as info:
        Patch.model_validate({"title": None})
    assert info.value.errors()[0]["loc"] == ("title",)
    with pytest.raises(ValidationError):
        Patch.model_validate({"other": 1})  # unknown fields are refused too
    props = Patch.model_json_schema()["properties"]
    assert props["title"]["type"] == "string" and "anyOf" not in props["title"]
    assert {"type": "null"} in props["note"]["anyOf"]


def test_json_problem_names_the_path_of_the_first_unstorable_value() -> None:
    assert json_problem({"a": [1, "ok", {"b": "x"}]}) is None
    assert json_problem({"a": [1, {"b": "x\x00"}]}) == ("a[1].b", text_problem("\x00"))
    path, why = json_problem({"a": {"k\x00": 1}}) or ("", "")
    assert (path, why.startswith("has a key")) == ("a", True)
    deep: Any = "x"
    for _ in range(70):
        deep = [deep]
    assert json_problem({"d": deep}) is not None


def test_storable_json_keeps_a_record_jsonb_can_hold() -> None:
    assert storable_json({"k\x00": ["a\x00", "\udc80", 1]}) == {"k\ufffd": ["a\ufffd", "?", 1]}
