"""Members of the caller's org and their roles, departments and cost centers."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, status
from pydantic import BaseModel, Field

from api.auth import OrgCtx
from domain.enterprise import service as enterprise
from domain.enterprise.repository import Member
from domain.inputs import PatchBody, Text
from edge.deps import SessionDep

router = APIRouter(prefix="/enterprise/v1/members", tags=["enterprise: members"])

Role = Literal["owner", "admin", "finance", "member"]


class MemberOut(BaseModel):
    user_id: uuid.UUID
    email: str
    role: str
    department_id: uuid.UUID | None
    department: str | None = Field(description="the department's name")
    cost_center_id: uuid.UUID | None
    cost_center: str | None = Field(description="the cost center's code")
    created_at: datetime | None

    @classmethod
    def of(cls, m: Member) -> MemberOut:
        return cls.model_validate(m, from_attributes=True)


class MemberList(BaseModel):
    data: list[MemberOut]


class MemberIn(BaseModel):
    model_config = {"extra": "forbid"}

    email: Text = Field(max_length=320)
    role: Role = "member"
    department_id: uuid.UUID | None = None
    cost_center_id: uuid.UUID | None = None


class MemberPatch(PatchBody):
    """`null` takes the member out of their department or cost center."""

    nullable = frozenset({"department_id", "cost_center_id"})

    role: Role | None = None
    department_id: uuid.UUID | None = None
    cost_center_id: uuid.UUID | None = None


@router.get("")
async def list_members(ctx: OrgCtx, session: SessionDep) -> MemberList:
    return MemberList(data=[MemberOut.of(m) for m in await enterprise.list_members(session, ctx)])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    description=(
        "Adds an existing 0xinf user, found by email, to this org. No invitation email is "
        "sent (this system sends no email): the person must already have signed up, else "
        "404. Only owners may grant the owner role. `department_id` and `cost_center_id` "
        "name entities from /enterprise/v1/departments and /enterprise/v1/cost-centers."
    ),
)
async def add_member(body: MemberIn, ctx: OrgCtx, session: SessionDep) -> MemberOut:
    found = await enterprise.add_member(session, ctx, **body.model_dump())
    return MemberOut.of(found)


@router.patch(
    "/{user_id}",
    description="Set department_id or cost_center_id to null to clear it.",
)
async def update_member(
    user_id: uuid.UUID, body: MemberPatch, ctx: OrgCtx, session: SessionDep
) -> MemberOut:
    changes: dict[str, Any] = body.model_dump(exclude_unset=True)
    found = await enterprise.update_member(session, ctx, user_id, changes)
    return MemberOut.of(found)


@router.delete("/{user_id}", status_code=status.HTTP_204_NO_CONTENT)
async def remove_member(user_id: uuid.UUID, ctx: OrgCtx, session: SessionDep) -> None:
    await enterprise.remove_member(session, ctx, user_id)
