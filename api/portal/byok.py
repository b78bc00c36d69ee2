"""Bring-your-own provider keys of the caller's org; listed masked, never returned."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Response, status
from pydantic import BaseModel, Field

from api.auth import OrgCtx
from domain.byok import service as byok
from domain.inputs import Text
from edge.deps import ResourcesDep, SessionDep
from edge.portal.byok import ByokList, ByokOut
from schema.unit_of_work import after_commit

router = APIRouter(prefix="/portal/v1/byok", tags=["portal: byok"])

Provider = Literal["openai", "anthropic", "google", "openrouter", "ollama", "openai_compatible"]


class ByokIn(BaseModel):
    provider: Provider
    api_key: Text = Field(max_length=1000, description="stored encrypted; never returned")
    label: Text | None = Field(default=None, max_length=200)
    base_url: Text | None = Field(default=None, max_length=500)


class ByokPatch(BaseModel):
    enabled: bool


@router.put("")
async def put_key(
    body: ByokIn, response: Response, ctx: OrgCtx, resources: ResourcesDep, session: SessionDep
) -> ByokOut:
    row, created = await byok.put_key(
        session, ctx, resources.secret_box, **body.model_dump(),
        egress=resources.settings.tenant_egress,
    )  # fmt: skip
    after_commit(session, lambda: resources.relay.forget_org(ctx.org.id))
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return ByokOut.of(row)


@router.get("")
async def list_keys(ctx: OrgCtx, session: SessionDep) -> ByokList:
    return ByokList(data=[ByokOut.of(r) for r in await byok.list_keys(session, ctx)])


@router.patch("/{provider}")
async def set_enabled(
    provider: Provider, body: ByokPatch, ctx: OrgCtx, resources: ResourcesDep, session: SessionDep
) -> ByokOut:
    row = await byok.set_enabled(session, ctx, provider, body.enabled)
    after_commit(session, lambda: resources.relay.forget_org(ctx.org.id))
    return ByokOut.of(row)


@router.delete("/{provider}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_key(
    provider: Provider, ctx: OrgCtx, resources: ResourcesDep, session: SessionDep
) -> None:
    await byok.delete_key(session, ctx, provider)
    after_commit(session, lambda: resources.relay.forget_org(ctx.org.id))
