"""Operator views of users: search, disable, grant or drop the operator role."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from api.auth import Operator
from domain.audit.service import Actor
from domain.identity import admin
from domain.identity import repository as identity_repo
from domain.inputs import Int64, PatchBody, Text
from edge.deps import SessionDep, client_ip
from schema.identity import User

router = APIRouter(prefix="/admin/v1/users", tags=["admin: users"])


class AdminUserOut(BaseModel):
    id: uuid.UUID
    email: str
    is_operator: bool
    disabled: bool
    created_at: datetime | None
    org_count: int | None = None

    @classmethod
    def of(cls, user: User, org_count: int | None = None) -> AdminUserOut:
        return cls(
            id=user.id,
            email=user.email,
            is_operator=user.is_operator,
            disabled=user.disabled_at is not None,
            created_at=user.created_at,
            org_count=org_count,
        )


class AdminUserList(BaseModel):
    data: list[AdminUserOut]


class AdminUserPatch(PatchBody):
    disabled: bool | None = None
    is_operator: bool | None = None


@router.get("")
async def list_users(
    _: Operator,
    session: SessionDep,
    q: Text | None = Query(default=None, max_length=320, description="part of the email"),
    limit: int = Query(default=50, ge=1, le=200),
    # Annotated, not `= Query(...)`: that form drops the BIGINT bound of `Int64`.
    offset: Annotated[Int64, Query(ge=0)] = 0,
) -> AdminUserList:
    rows = await identity_repo.list_users(session, search=q, limit=limit, offset=offset)
    return AdminUserList(data=[AdminUserOut.of(u, n) for u, n in rows])


@router.patch(
    "/{user_id}",
    description="Disabling signs the user out at once; 409 for your own account.",
)
async def update_user(
    user_id: uuid.UUID,
    body: AdminUserPatch,
    request: Request,
    operator: Operator,
    session: SessionDep,
) -> AdminUserOut:
    actor = Actor("operator", operator.id, client_ip(request))
    changes = body.model_dump(exclude_unset=True)
    user = await admin.update_user(session, actor, user_id, changes)
    out = AdminUserOut.of(user)
    return out
