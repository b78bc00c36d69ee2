"""The org's audit trail, for its owners and admins."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.auth import OrgCtx
from domain.audit import repository as audit_repo
from domain.inputs import Text, Timestamp
from edge.deps import SessionDep

router = APIRouter(prefix="/enterprise/v1/audit", tags=["enterprise: audit"])


class AuditOut(BaseModel):
    id: int
    actor_kind: str
    actor_user_id: uuid.UUID | None
    action: str
    target_type: str
    target_id: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    reason: str | None
    ip: str | None
    created_at: datetime


class AuditPage(BaseModel):
    data: list[AuditOut]
    next_cursor: str | None


@router.get("")
async def list_audit(
    ctx: OrgCtx,
    session: SessionDep,
    cursor: str | None = Query(default=None, pattern=r"^\d{1,18}$"),
    limit: int = Query(default=50, ge=1, le=200),
    action: Text | None = Query(default=None, max_length=80),
    target_type: Text | None = Query(default=None, max_length=40),
    since: Timestamp | None = None,
    until: Timestamp | None = None,
    actor_user_id: uuid.UUID | None = None,
    target_id: Text | None = Query(default=None, max_length=80),
) -> AuditPage:
    ctx.require("admin")
    events = await audit_repo.list_events(
        session,
        ctx.org.id,
        before_id=int(cursor) if cursor else None,
        limit=limit + 1,
        action=action,
        target_type=target_type,
        since=since,
        until=until,
        actor_user_id=actor_user_id,
        target_id=target_id,
    )
    page = events[:limit]
    more = len(events) > limit
    return AuditPage(
        data=[AuditOut.model_validate(e, from_attributes=True) for e in page],
        next_cursor=str(page[-1].id) if more and page else None,
    )
