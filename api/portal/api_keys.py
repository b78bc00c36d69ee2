"""Platform API keys of the caller's current org. The full key appears once, at creation."""

from __future__ import annotations

import uuid
from typing import Literal

from fastapi import APIRouter, status
from pydantic import BaseModel, Field

from api.auth import OrgCtx
from domain.inputs import Int32, Int64, ModelName, PatchBody, Text
from domain.keys import service as keys
from edge.deps import ResourcesDep, SessionDep
from edge.portal.keys import KeyCreated, KeyList, KeyOut
from schema.unit_of_work import after_commit

router = APIRouter(prefix="/portal/v1/api-keys", tags=["portal: api keys"])

Scope = Literal["llm:inference", "llm:models", "tasks"]


MAX_ALLOWLIST = 500


class KeyIn(BaseModel):
    name: Text = Field(min_length=1, max_length=100)
    scopes: list[Scope] | None = None
    model_allowlist: list[ModelName] | None = Field(default=None, max_length=MAX_ALLOWLIST)
    rpm_limit: Int32 | None = Field(default=None, ge=1, le=1_000_000)
    budget_micros: Int64 | None = Field(default=None, ge=0, description="credit budget, micros")
    log_content: bool = False
    expires_in: Literal["30d", "60d", "90d", "1y", "never"] = "90d"


class KeyPatch(PatchBody):
    """`null` clears the allowlist, the RPM limit or the budget; the rest always have a value."""

    nullable = frozenset({"model_allowlist", "rpm_limit", "budget_micros"})

    name: Text | None = Field(default=None, min_length=1, max_length=100)
    scopes: list[Scope] | None = None
    model_allowlist: list[ModelName] | None = Field(default=None, max_length=MAX_ALLOWLIST)
    rpm_limit: Int32 | None = Field(default=None, ge=1, le=1_000_000)
    budget_micros: Int64 | None = Field(default=None, ge=0)
    log_content: bool | None = None


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_key(
    body: KeyIn, ctx: OrgCtx, resources: ResourcesDep, session: SessionDep
) -> KeyCreated:
    key, full = await keys.create_key(session, ctx, resources.identity.pepper, **body.model_dump())
    return KeyCreated(**KeyOut.of(key).model_dump(), key=full)


@router.get("")
async def list_keys(ctx: OrgCtx, session: SessionDep) -> KeyList:
    return KeyList(data=[KeyOut.of(k) for k in await keys.list_keys(session, ctx)])


@router.get("/{key_id}")
async def get_key(key_id: uuid.UUID, ctx: OrgCtx, session: SessionDep) -> KeyOut:
    return KeyOut.of(await keys.get_key(session, ctx, key_id))


@router.patch("/{key_id}")
async def update_key(
    key_id: uuid.UUID, body: KeyPatch, ctx: OrgCtx, resources: ResourcesDep, session: SessionDep
) -> KeyOut:
    key = await keys.update_key(session, ctx, key_id, body.model_dump(exclude_unset=True))
    after_commit(session, lambda: resources.key_auth.invalidate(key_id))
    return KeyOut.of(key)


@router.delete("/{key_id}")
async def revoke_key(
    key_id: uuid.UUID, ctx: OrgCtx, resources: ResourcesDep, session: SessionDep
) -> KeyOut:
    key = await keys.revoke_key(session, ctx, key_id)
    after_commit(session, lambda: resources.key_auth.invalidate(key_id))
    return KeyOut.of(key)
