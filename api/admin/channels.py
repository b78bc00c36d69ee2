"""Operator management of upstream channels, with a one-token test call."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request, status
from pydantic import BaseModel, Field

from api.auth import Operator
from domain.audit.service import Actor
from domain.inputs import Int32, ModelName, PatchBody, Text
from domain.relay.plan import DEFAULT_PROVIDER_URLS
from domain.routing import channels as channel_service
from domain.routing import repository as channels_repo
from domain.routing.models import MAX_MODELS, Capability, ChannelIn, ChannelType, UpstreamName
from domain.routing.probe import probe_channel
from edge.deps import ResourcesDep, SessionDep, client_ip
from schema.channels import Channel
from schema.identity import User
from schema.unit_of_work import after_commit

router = APIRouter(prefix="/admin/v1/channels", tags=["admin: channels"])


class ChannelPatch(PatchBody):
    """`null` clears the base URL (the provider's default applies) or the secret."""

    nullable = frozenset({"base_url", "secret"})

    name: Text | None = Field(default=None, min_length=1, max_length=200)
    base_url: Text | None = Field(default=None, max_length=500)
    secret: Text | None = Field(default=None, max_length=2000, description="write-only; '' clears")
    models: list[ModelName] | None = Field(default=None, max_length=MAX_MODELS)
    model_mapping: dict[ModelName, UpstreamName] | None = Field(default=None, max_length=MAX_MODELS)
    group: Text | None = Field(default=None, min_length=1, max_length=80)
    priority: Int32 | None = None
    weight: Int32 | None = Field(default=None, ge=1, le=10_000)
    types: list[ChannelType] | None = None
    capabilities: list[Capability] | None = Field(default=None, max_length=8)
    enabled: bool | None = None


class ChannelOut(BaseModel):
    id: uuid.UUID
    name: str
    provider: str
    base_url: str | None
    has_secret: bool
    models: list[str]
    model_mapping: dict[str, str]
    group: str
    priority: int
    weight: int
    types: list[str]
    capabilities: list[str]
    enabled: bool
    breaker_state: str
    consecutive_failures: int
    breaker_opened_at: datetime | None
    created_at: datetime | None
    updated_at: datetime | None

    @classmethod
    def of(cls, c: Channel) -> ChannelOut:
        data: dict[str, Any] = {f: getattr(c, f) for f in cls.model_fields if f != "has_secret"}
        return cls(**data, has_secret=c.secret_ciphertext is not None)


class ChannelList(BaseModel):
    data: list[ChannelOut]


class TestCallOut(BaseModel):
    ok: bool
    model: str
    latency_ms: int
    error: str | None = None
    upstream_request_id: str | None = None


def _actor(request: Request, user: User) -> Actor:
    return Actor("operator", user.id, client_ip(request))


@router.get("")
async def list_channels(_: Operator, session: SessionDep) -> ChannelList:
    return ChannelList(data=[ChannelOut.of(c) for c in await channels_repo.list_channels(session)])


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_channel(
    body: ChannelIn, request: Request, user: Operator, resources: ResourcesDep, session: SessionDep
) -> ChannelOut:
    spec = body.model_dump(exclude={"secret"})
    channel = await channel_service.create_channel(
        session, _actor(request, user), resources.secret_box, spec, body.secret
    )
    after_commit(session, lambda: resources.relay.cache.invalidate())
    return ChannelOut.of(channel)


@router.get("/{channel_id}")
async def get_channel(channel_id: uuid.UUID, _: Operator, session: SessionDep) -> ChannelOut:
    return ChannelOut.of(await channel_service.get_channel(session, channel_id))


@router.patch("/{channel_id}")
async def update_channel(
    channel_id: uuid.UUID,
    body: ChannelPatch,
    request: Request,
    user: Operator,
    resources: ResourcesDep,
    session: SessionDep,
) -> ChannelOut:
    changes = body.model_dump(exclude_unset=True, exclude={"secret"})
    secret = body.secret if "secret" in body.model_fields_set else None
    channel = await channel_service.update_channel(
        session, _actor(request, user), resources.secret_box, channel_id, changes, secret
    )
    after_commit(session, lambda: resources.relay.cache.invalidate())
    return ChannelOut.of(channel)


@router.delete("/{channel_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_channel(
    channel_id: uuid.UUID,
    request: Request,
    user: Operator,
    resources: ResourcesDep,
    session: SessionDep,
) -> None:
    await channel_service.delete_channel(session, _actor(request, user), channel_id)
    after_commit(session, lambda: resources.relay.cache.invalidate())


@router.post("/{channel_id}/test")
async def test_channel(
    channel_id: uuid.UUID,
    _: Operator,
    resources: ResourcesDep,
    session: SessionDep,
    model: ModelName | None = None,
) -> TestCallOut:
    """A real one-token chat call through the channel, outside billing and breakers."""
    channel = await channel_service.get_channel(session, channel_id)
    urls = {**DEFAULT_PROVIDER_URLS, **resources.settings.provider_base_urls}
    result = await probe_channel(channel, resources.secret_box, resources.http, urls, model)
    return TestCallOut(**dataclasses.asdict(result))
