"""The developer portal's usage, request history and tasks, in the caller's org.

Everything here is customer-safe by construction: the DTOs list the fields a developer may
see (DESIGN.md §8 boundary map), so a column added to `request_logs` or `tasks` later (a
channel, a raw upstream error) cannot leak by accident. Internals live under `/ops/v1`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from api.auth import OrgCtx
from domain.errors import InvalidRequest, NotFound
from domain.inputs import Text, Timestamp
from domain.pricing.cost import format_credits
from domain.tasks import service as tasks
from domain.tasks.views import task_view
from domain.usage import repository as usage_repo
from domain.usage import service as usage
from domain.usage.models import GroupBy, UsageRow
from edge.deps import ResourcesDep, SessionDep, public_base_url
from schema.requests import RequestLog

router = APIRouter(prefix="/portal/v1", tags=["portal: usage"])

ErrorCategory = Literal["billing", "rate_limit", "access", "request", "provider", "internal"]

# Messages are ours, never the upstream's: a raw provider error can name accounts, channels
# or internal hosts, so a developer gets the category and a sentence that says what to do.
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


class RequestPageOut(BaseModel):
    data: list[RequestTraceOut]
    next_cursor: str | None


class UsageOut(BaseModel):
    key: str | None = Field(description="the group: day, month, model or API key id")
    requests: int
    failed_requests: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost_micros: int
    cost: str
    byok_requests: int

    @classmethod
    def of(cls, row: UsageRow) -> UsageOut:
        return cls(
            key=row.key,
            requests=row.requests,
            failed_requests=row.failed_requests,
            prompt_tokens=row.prompt_tokens,
            completion_tokens=row.completion_tokens,
            total_tokens=row.prompt_tokens + row.completion_tokens,
            cost_micros=row.cost_micros,
            cost=format_credits(row.cost_micros),
            byok_requests=row.byok_requests,
        )


class UsageSummaryOut(BaseModel):
    start: datetime = Field(serialization_alias="from")
    end: datetime = Field(serialization_alias="to")
    group_by: str
    rollup_months: list[str] = Field(description="closed months read from monthly rollups")
    total: UsageOut
    groups: list[UsageOut]


def _utc(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _cursor(log: RequestLog) -> str:
    assert log.created_at is not None
    return f"{int(log.created_at.timestamp() * 1_000_000)}_{log.id}"


def _parse_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        stamp, request_id = cursor.split("_", 1)
        return datetime.fromtimestamp(int(stamp) / 1_000_000, UTC), request_id
    except (ValueError, OverflowError, OSError):  # not ours, or a time no clock can hold
        raise InvalidRequest("invalid cursor", param="cursor") from None


@router.get("/usage/summary", response_model_by_alias=True)
async def usage_summary(
    ctx: OrgCtx,
    session: SessionDep,
    start: Timestamp | None = Query(default=None, alias="from", description="default: month start"),
    end: Timestamp | None = Query(default=None, alias="to", description="exclusive; default: now"),
    group_by: GroupBy = Query(
        default="none", description="`day` reads raw logs only; the others also use rollups"
    ),
) -> UsageSummaryOut:
    now = datetime.now(UTC)
    end_at = _utc(end) if end else now
    start_at = _utc(start) if start else datetime(now.year, now.month, 1, tzinfo=UTC)
    summary = await usage.usage_summary(
        session, ctx.org.id, start=start_at, end=end_at, group_by=group_by, now=now
    )
    return UsageSummaryOut(
        start=summary.start,
        end=summary.end,
        group_by=summary.group_by,
        rollup_months=[m.strftime("%Y-%m") for m in summary.rollup_months],
        total=UsageOut.of(summary.total),
        groups=[UsageOut.of(g) for g in summary.groups],
    )


@router.get("/requests")
async def list_requests(
    ctx: OrgCtx,
    session: SessionDep,
    cursor: Text | None = Query(default=None, max_length=100),
    limit: int = Query(default=50, ge=1, le=200),
    status: Literal["succeeded", "partial", "failed"] | None = None,
    model: Text | None = Query(default=None, max_length=200),
) -> RequestPageOut:
    before = _parse_cursor(cursor) if cursor else None
    rows = await usage_repo.list_logs(
        session, ctx.org.id, before=before, limit=limit + 1, status=status, model=model
    )
    page = rows[:limit]
    next_cursor = _cursor(page[-1]) if len(rows) > limit and page else None
    return RequestPageOut(data=[RequestTraceOut.of(r) for r in page], next_cursor=next_cursor)


@router.get("/requests/{request_id}")
async def get_request(request_id: Text, ctx: OrgCtx, session: SessionDep) -> RequestTraceOut:
    log = await usage_repo.get_log(session, ctx.org.id, request_id[:40])
    if log is None:
        raise NotFound("no such request")
    return RequestTraceOut.of(log)


@router.get("/tasks")
async def list_tasks(
    request: Request,
    ctx: OrgCtx,
    session: SessionDep,
    resources: ResourcesDep,
    cursor: Text | None = Query(default=None, max_length=100),
    limit: int = Query(default=50, ge=1, le=200),
    status: Literal["pending", "processing", "succeeded", "failed", "canceled"] | None = None,
) -> dict[str, Any]:
    page, next_cursor = await tasks.list_tasks(
        session, ctx.org.id, status=status, cursor=cursor, limit=limit
    )
    base = public_base_url(request, resources)
    data = [task_view(t, base_url=base, signer=resources.results.signer) for t in page]
    return {"object": "list", "data": data, "next_cursor": next_cursor}


@router.get("/tasks/{task_id}")
async def get_task(
    task_id: uuid.UUID, request: Request, ctx: OrgCtx, session: SessionDep, resources: ResourcesDep
) -> dict[str, Any]:
    task = await tasks.get_task(session, ctx.org.id, task_id)
    base = public_base_url(request, resources)
    return task_view(task, base_url=base, signer=resources.results.signer)
