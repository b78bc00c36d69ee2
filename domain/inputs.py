"""Input types bounded by what the database can store, shared by every request model.

PostgreSQL refuses a NUL character in text and JSONB, and text that is not valid Unicode;
an INTEGER column holds 32 bits and a BIGINT 64. A value past any of these used to reach the
database and come back as a 500, so request models type their fields with these instead of
bare `str` and `int`: the mistake is a 400 naming the field, before any work is done.

Bodies parsed by hand (the relay's chat body, media task input) use `text_problem` and
`json_problem`, which apply the same rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, cast

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    GetCoreSchemaHandler,
    StringConstraints,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError, core_schema

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

# Every string must match this: text columns and JSONB cannot hold U+0000. Written as a
# pattern so the OpenAPI document says it too (and fuzzers try the other side of it).
NO_NUL = r"^[^\x00]*$"

# A model's name is also the `target_id` of its audit events, VARCHAR(80); no longer name
# could ever be created, so the relay and task routes refuse longer ones up front as well.
MODEL_NAME_MAX = 80

Text = Annotated[str, StringConstraints(pattern=NO_NUL)]
"""A string PostgreSQL can store; add `Field(max_length=...)` for the column's width."""

ModelName = Annotated[
    str, StringConstraints(pattern=NO_NUL, min_length=1, max_length=MODEL_NAME_MAX)
]


@dataclass(frozen=True)
class Fits:
    """Integer metadata: the column's range, intersected with the field's own bounds.

    Not `Field(ge=..., le=...)` or `annotated_types.Interval`: pydantic lets those in
    `Annotated` override a field's narrower `Field(ge=0)`, and FastAPI reads a `Field` in
    `Annotated` as its own parameter declaration. (FastAPI still drops this metadata from
    a parameter declared `x: Int64 = Query(...)`: write `x: Annotated[Int64, Query()] = 0`.)
    """

    low: int
    high: int

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        schema = handler(source)
        if schema["type"] != "int":
            raise TypeError(f"Fits bounds integers, not {schema['type']}")
        bounded = cast(core_schema.IntSchema, schema)
        if "gt" not in bounded:
            bounded["ge"] = max(bounded.get("ge", self.low), self.low)
        if "lt" not in bounded:
            bounded["le"] = min(bounded.get("le", self.high), self.high)
        return bounded


Int32 = Annotated[int, Fits(INT32_MIN, INT32_MAX)]
"""An INTEGER column; narrow it further with `Field(ge=..., le=...)`."""
Int64 = Annotated[int, Fits(INT64_MIN, INT64_MAX)]
"""A BIGINT column (micro-credits, offsets); narrow it further with `Field(ge=...)`."""


def _convertible(value: datetime) -> datetime:
    if value.tzinfo is not None:
        try:
            value.astimezone(UTC)
        except OverflowError:
            raise PydanticCustomError(
                "timestamp_out_of_range", "must fall between years 1 and 9999 in UTC"
            ) from None
    return value


Timestamp = Annotated[datetime, AfterValidator(_convertible)]
"""A datetime the database driver can convert to UTC (`0001-01-01T00:00+14:00` cannot)."""


def text_problem(value: str) -> str | None:
    """Why `value` cannot be stored as text, or None. For bodies parsed by hand."""
    if "\x00" in value:
        return "must not contain NUL (\\u0000) characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode text (it holds an unpaired surrogate)"
    return None


MAX_JSON_DEPTH = 64


def json_problem(value: Any) -> tuple[str, str] | None:
    """(path, reason) of the first string (key or value) JSONB cannot store, or of nesting
    deeper than `MAX_JSON_DEPTH`; None when all of `value` can be stored. The path is
    dotted from the top (`a.b[2]`), empty for `value` itself."""
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        node, path, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            return path, f"nests deeper than {MAX_JSON_DEPTH} levels"
        if isinstance(node, str):
            problem = text_problem(node)
            if problem:
                return path, problem
        elif isinstance(node, Mapping):
            for key, item in node.items():
                if isinstance(key, str) and (problem := text_problem(key)):
                    return path, f"has a key that {problem}"
                stack.append((item, f"{path}.{key}" if path else str(key), depth + 1))
        elif isinstance(node, list):
            stack.extend((item, f"{path}[{i}]", depth + 1) for i, item in enumerate(node))
    return None


def storable_text(value: str) -> str:
    """`value` with what text and JSONB refuse replaced by U+FFFD (and `?`)."""
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value


def storable_json(value: Any) -> Any:
    """A copy of `value` JSONB can hold, for records of what others sent (logged prompts and
    answers): refusing them would lose the record of a call that was fine."""
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, Mapping):
        return {storable_text(str(k)): storable_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [storable_json(v) for v in value]
    return value


def _strip_null(schema: dict[str, Any], cls: Any) -> None:
    """The document matches the rule: a non-nullable field's `null` branch is dropped."""
    nullable: frozenset[str] = getattr(cls, "nullable", frozenset())
    for name, prop in schema.get("properties", {}).items():
        if name in nullable:
            continue
        prop.pop("default", None)
        branches = prop.get("anyOf")
        if branches is None:
            continue
        kept = [b for b in branches if b != {"type": "null"}]
        if len(kept) == 1:
            prop.pop("anyOf")
            prop.update(kept[0])
        else:
            prop["anyOf"] = kept


class PatchBody(BaseModel):
    """A PATCH body: a field left out keeps its value; `null` clears it, which only the
    fields named in `nullable` allow (their columns are nullable). Any other field sent as
    `null` is refused, rather than reaching a NOT NULL column or a rule that needs a value.
    """

    model_config = ConfigDict(extra="forbid", json_schema_extra=_strip_null)

    nullable: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*", mode="before")
    @classmethod
    def _not_null(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None and info.field_name not in cls.nullable:
            raise PydanticCustomError(
                "null_not_allowed", "may be left out but not null: it always has a value"
            )
        return value
