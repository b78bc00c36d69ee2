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
from domain.errors import NotFound
from domain.inputs import Text, Timestamp
from domain.pricing.cost import format_credits
from domain.tasks import service as tasks
from domain.tasks.views import task_view
from domain.usage import repository as usage_repo
from domain.usage import service as usage
from domain.usage.models import GroupBy, UsageRow
from domain.usage.trace import (
    RequestStatus,
    RequestTraceOut,
    parse_request_cursor,
    request_cursor,
)
from edge.deps import ResourcesDep, SessionDep, public_base_url

router = APIRouter(prefix="/portal/v1", tags=["portal: usage"])


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
    status: RequestStatus | None = None,
    model: Text | None = Query(default=None, max_length=200),
) -> RequestPageOut:
    before = parse_request_cursor(cursor) if cursor else None
    rows = await usage_repo.list_logs(
        session, ctx.org.id, before=before, limit=limit + 1, status=status, model=model
    )
    page = rows[:limit]
    next_cursor = request_cursor(page[-1]) if len(rows) > limit and page else None
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
