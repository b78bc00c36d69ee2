"""What Stripe event handlers share: how they read a Stripe object (defensively: any field
may be missing, expanded or of another type) and what they answer."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncSession

from domain.errors import DomainError
from domain.payments.models import StripeEventRecord

Result = Literal[
    "credited",
    "already_credited",
    "recorded",
    "failed",
    "expired",
    "reversed",
    "reinstated",
    "deferred",
    "ignored",
    "already_processed",
]


class PaymentMismatch(DomainError):
    """The event contradicts the payment we created (org, amount or currency): never credit
    it automatically; an operator has to look."""

    code = "payment_mismatch"


class EventResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    result: Result
    payment_id: uuid.UUID | None = None
    detail: str | None = None


Obj = dict[str, Any]
Handler = Callable[[AsyncSession, StripeEventRecord, Obj], Awaitable[EventResult]]


def ref(obj: Obj, key: str) -> str | None:
    """An id field that may be a plain id or an expanded object."""
    value = obj.get(key)
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def int_field(obj: Obj, key: str) -> int | None:
    value = obj.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def our_id(obj: Obj) -> uuid.UUID | None:
    metadata = obj.get("metadata")
    raw = metadata.get("oxinf_payment_id") if isinstance(metadata, dict) else None
    try:
        return uuid.UUID(raw) if isinstance(raw, str) else None
    except ValueError:
        return None


def ignored(why: str) -> EventResult:
    return EventResult(result="ignored", detail=why)
