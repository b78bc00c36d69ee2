"""Form fields typed by operators, turned into the domain's own input models.

Forms arrive as strings; the same pydantic models the admin API validates JSON with check
them here, and a refusal becomes an `InvalidField` naming the form field, so the page can
show the message beside it. Credit amounts are parsed as exact decimals, never floats.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from domain.errors import InvalidField, InvalidRequest
from domain.pricing.cost import parse_credits

M = TypeVar("M", bound=BaseModel)


def validated(model: type[M], values: Mapping[str, Any], fields: Mapping[str, str]) -> M:
    """`model(**values)`, with a refusal named after the form field (`fields` maps the
    model's field names to the form's, where they differ)."""
    try:
        return model.model_validate(dict(values))
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else ""
        raise InvalidField(first["msg"], param=fields.get(name, name)) from None


def whole_number(text: str, param: str, default: int | None = 0) -> int | None:
    text = text.strip().replace(",", "").replace("_", "")
    if not text:
        return default
    if not text.lstrip("-").isdigit():
        raise InvalidField("enter a whole number", param=param)
    return int(text)


def credits_micros(text: str, param: str) -> int:
    """Decimal credits ("0.04") as micros (40,000); blank is zero."""
    if not text.strip():
        return 0
    try:
        return parse_credits(text)
    except InvalidRequest as exc:
        raise InvalidField(exc.message, param=param) from None


def utc_instant(text: str, param: str) -> datetime | None:
    """A `datetime-local` field, read as UTC (the form says so); blank is "now"."""
    if not text.strip():
        return None
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidField("enter a date and time", param=param) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def names(text: str) -> list[str]:
    """A list typed as comma- or line-separated names."""
    return [n.strip() for n in text.replace("\n", ",").split(",") if n.strip()]
