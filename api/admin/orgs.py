"""Operator views across orgs."""

from __future__ import annotations

import uuid
from datetime import datetime

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.auth import Operator
from api.deps import SessionDep
from api.portal.api_keys import KeyList, KeyOut
from domain.errors import NotFound
from domain.identity import repository as identity_repo
from domain.keys import service as keys

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


@router.get("")
async def list_orgs(
    _: Operator,
    session: SessionDep,
    q: str | None = Query(default=None, max_length=200),
    limit: int = Query(default=50, ge=1, le=200),
    offset: int = Query(default=0, ge=0),
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
