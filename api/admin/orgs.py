"""Operator views across orgs."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from api.auth import Operator
from domain.audit.service import Actor
from domain.errors import NotFound
from domain.identity import admin
from domain.identity import repository as identity_repo
from domain.inputs import Int64, PatchBody, Text
from domain.keys import service as keys
from edge.deps import ResourcesDep, SessionDep, client_ip
from edge.portal.keys import KeyList, KeyOut
from schema.unit_of_work import after_commit

router = APIRouter(prefix="/admin/v1/orgs", tags=["admin: orgs"])


class AdminOrgOut(BaseModel):
    id: uuid.UUID
    name: str
    personal: bool
    tier: str
    power_level: str
    created_at: datetime | None


class AdminOrgList(BaseModel):
    data: list[AdminOrgOut]


class AdminOrgPatch(PatchBody):
    tier: Literal["free", "trial", "starter", "professional", "enterprise"] | None = None
    name: Text | None = Field(default=None, min_length=1, max_length=200)


@router.get("")
async def list_orgs(
    _: Operator,
    session: SessionDep,
    q: Text | None = Query(default=None, max_length=200),
    limit: int = Query(default=50, ge=1, le=200),
    # Annotated, not `= Query(...)`: that form drops the BIGINT bound of `Int64`.
    offset: Annotated[Int64, Query(ge=0)] = 0,
) -> AdminOrgList:
    orgs = await identity_repo.list_orgs(session, search=q, limit=limit, offset=offset)
    return AdminOrgList(data=[AdminOrgOut.model_validate(o, from_attributes=True) for o in orgs])


@router.get("/{org_id}/api-keys")
async def org_api_keys(org_id: uuid.UUID, _: Operator, session: SessionDep) -> KeyList:
    if await identity_repo.org_by_id(session, org_id) is None:
        raise NotFound("no such org")
    return KeyList(
        data=[KeyOut.of(k) for k in await keys.list_org_keys_for_operator(session, org_id)]
    )


@router.get("/{org_id}")
async def get_org(org_id: uuid.UUID, _: Operator, session: SessionDep) -> AdminOrgOut:
    org = await identity_repo.org_by_id(session, org_id)
    if org is None:
        raise NotFound("no such org")
    return AdminOrgOut.model_validate(org, from_attributes=True)


@router.patch(
    "/{org_id}",
    description="Set the tier an org pays for (prices and allocations follow it); audited.",
)
async def update_org(
    org_id: uuid.UUID,
    body: AdminOrgPatch,
    request: Request,
    operator: Operator,
    session: SessionDep,
    resources: ResourcesDep,
) -> AdminOrgOut:
    actor = Actor("operator", operator.id, client_ip(request))
    org = await admin.update_org(session, actor, org_id, body.model_dump(exclude_unset=True))
    out = AdminOrgOut.model_validate(org, from_attributes=True)
    # The relay memoises the tier it prices with.
    after_commit(session, lambda: resources.relay.forget_org(org_id))
    return out
