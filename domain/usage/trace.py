"""The customer-safe view of a logged request, shared by `/portal/v1/requests` and the
console's request pages.

The model lists the fields a developer may see (DESIGN.md §8 boundary map), so a column
added to `request_logs` later (a channel, a raw upstream error) cannot leak by accident.
Error messages are ours, never the upstream's: a raw provider error can name accounts,
channels or internal hosts, so a developer gets a category and a sentence that says what to
do. Internals live under `/ops/v1`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel

from domain.errors import InvalidRequest
from domain.pricing.cost import format_credits
from schema.requests import RequestLog

ErrorCategory = Literal["billing", "rate_limit", "access", "request", "provider", "internal"]
RequestStatus = Literal["succeeded", "partial", "failed"]
REQUEST_STATUSES: tuple[RequestStatus, ...] = ("succeeded", "partial", "failed")

_FRIENDLY: dict[str, tuple[ErrorCategory, str]] = {
    "insufficient_credits": ("billing", "Your org ran out of credits; add credits and retry."),
    "api_key_budget_exhausted": (
        "billing",
        "This API key reached its credit budget; raise the budget or use another key.",
    ),
    "rate_limit_exceeded": ("rate_limit", "Too many requests for this key; slow down and retry."),
    "model_not_allowed": ("access", "This API key may not use this model."),
    "permission_denied": ("access", "This API key is not allowed to make this call."),
    "invalid_request": ("request", "The request was not valid; check the model and parameters."),
    "upstream_error": (
        "provider",
        "The model provider returned an error; retry, or try another model.",
    ),
    "service_unavailable": (
        "provider",
        "The model is temporarily unavailable; retry in a few seconds.",
    ),
}
_UNKNOWN: tuple[ErrorCategory, str] = ("internal", "The request failed; quote its id to support.")


class FriendlyError(BaseModel):
    category: ErrorCategory
    code: str
    message: str

    @classmethod
    def of(cls, code: str | None) -> FriendlyError | None:
        if code is None:
            return None
        category, message = _FRIENDLY.get(code, _UNKNOWN)
        return cls(category=category, code=code, message=message)


class RequestTraceOut(BaseModel):
    id: str
    client_request_id: str | None
    upstream_request_id: str | None
    api_key_id: uuid.UUID | None
    kind: str
    model: str
    status: str
    http_status: int
    stream: bool
    billing: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    total_tokens: int
    tokens_estimated: bool
    cost_micros: int
    cost: str
    latency_ms: int
    created_at: datetime | None
    error: FriendlyError | None

    @classmethod
    def of(cls, log: RequestLog) -> RequestTraceOut:
        return cls(
            id=log.id,
            client_request_id=log.client_request_id,
            upstream_request_id=log.upstream_request_id,
            api_key_id=log.api_key_id,
            kind=log.kind,
            model=log.model,
            status=log.status,
            http_status=log.http_status,
            stream=log.stream,
            billing=log.billing,
            prompt_tokens=log.prompt_tokens,
            completion_tokens=log.completion_tokens,
            cached_tokens=log.cached_tokens,
            total_tokens=log.prompt_tokens + log.completion_tokens,
            tokens_estimated=log.estimated,
            cost_micros=log.cost_micros,
            cost=format_credits(log.cost_micros),
            latency_ms=log.latency_ms,
            created_at=log.created_at,
            error=FriendlyError.of(log.error_code),
        )


def request_cursor(log: RequestLog) -> str:
    """Opaque to callers: the row's (created_at, id), which keyset paging resumes after."""
    assert log.created_at is not None
    return f"{int(log.created_at.timestamp() * 1_000_000)}_{log.id}"


def parse_request_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        stamp, request_id = cursor.split("_", 1)
        return datetime.fromtimestamp(int(stamp) / 1_000_000, UTC), request_id
    except (ValueError, OverflowError, OSError):  # not ours, or a time no clock can hold
        raise InvalidRequest("invalid cursor", param="cursor") from None
