"""The caller's org settings: admins edit, finance may read."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.auth import OrgCtx
from domain.enterprise import service as enterprise
from domain.inputs import PatchBody, Text
from edge.deps import ResourcesDep, SessionDep
from schema.identity import Org
from schema.unit_of_work import after_commit

router = APIRouter(prefix="/enterprise/v1/org", tags=["enterprise: org"])


class OrgOut(BaseModel):
    id: uuid.UUID
    name: str
    personal: bool
    tier: str = Field(description="read-only here; platform operators change tiers")
    power_level: str
    retention_days: int
    byok_fallback: bool
    created_at: datetime | None

    @classmethod
    def of(cls, org: Org) -> OrgOut:
        return cls.model_validate(org, from_attributes=True)


class OrgPatch(PatchBody):
    name: Text | None = Field(default=None, min_length=1, max_length=200)
    power_level: Literal["eco", "balanced", "precision"] | None = None
    retention_days: int | None = Field(default=None, ge=1, le=3650)
    byok_fallback: bool | None = None
    tier: Text | None = Field(
        default=None, description="rejected with 403: operators change tiers", max_length=20
    )


@router.get("")
async def get_org(ctx: OrgCtx) -> OrgOut:
    return OrgOut.of(enterprise.get_org(ctx))


@router.patch("")
async def patch_org(
    body: OrgPatch, ctx: OrgCtx, resources: ResourcesDep, session: SessionDep
) -> OrgOut:
    org = await enterprise.update_org(session, ctx, body.model_dump(exclude_unset=True))
    out = OrgOut.of(org)
    # The relay memoises org settings (power level, BYOK fallback): drop them now.
    after_commit(session, lambda: resources.relay.forget_org(ctx.org.id))
    return out
