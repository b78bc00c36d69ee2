"""Invitations to the caller's org: a link the invited person opens in the console.

The link carries a one-time token stored only as a digest, so it is in the create answer
and nowhere else. It works once, for the invited email, until `expires_at` (7 days).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Request, status
from pydantic import BaseModel, Field

from api.auth import OrgCtx
from domain.enterprise import invites
from domain.inputs import Text
from edge.deps import ResourcesDep, SessionDep, public_base_url

router = APIRouter(prefix="/enterprise/v1/invites", tags=["enterprise: invites"])

Role = Literal["owner", "admin", "finance", "member"]


class InviteOut(BaseModel):
    id: uuid.UUID
    email: str
    role: str
    department: str | None = Field(description="the department's name")
    cost_center: str | None = Field(description="the cost center's code")
    created_at: datetime
    expires_at: datetime

    @classmethod
    def of(cls, invite: invites.Invite) -> InviteOut:
        return cls.model_validate(invite, from_attributes=True)


class IssuedInviteOut(InviteOut):
    url: str = Field(description="the link to hand over; shown only in this answer")


class InviteList(BaseModel):
    data: list[InviteOut]


class InviteIn(BaseModel):
    model_config = {"extra": "forbid"}

    email: Text = Field(max_length=320)
    role: Role = "member"
    department_id: uuid.UUID | None = None
    cost_center_id: uuid.UUID | None = None


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    description=(
        "A new person signs up from the link with this email; an existing user signs in as "
        "it and joins. A new invite for the same email replaces an open one. 409 if the "
        "person is already a member; only owners invite owners."
    ),
)
async def create_invite(
    body: InviteIn, request: Request, ctx: OrgCtx, session: SessionDep, resources: ResourcesDep
) -> IssuedInviteOut:
    issued = await invites.create_invite(
        session, ctx, resources.identity.pepper, **body.model_dump()
    )
    url = f"{public_base_url(request, resources)}/console/invites/{issued.token}"
    return IssuedInviteOut(**InviteOut.of(issued.invite).model_dump(), url=url)


@router.get("", description="Open invites (not accepted, revoked or expired), newest first.")
async def list_invites(ctx: OrgCtx, session: SessionDep) -> InviteList:
    return InviteList(data=[InviteOut.of(i) for i in await invites.open_invites(session, ctx)])


@router.delete("/{invite_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_invite(invite_id: uuid.UUID, ctx: OrgCtx, session: SessionDep) -> None:
    await invites.revoke_invite(session, ctx, invite_id)
