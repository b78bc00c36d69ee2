"""Operator management of upstream channels, with a one-token test call."""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request, status
from pydantic import BaseModel, Field

from api.auth import Operator
from domain.audit.service import Actor
from domain.inputs import Int32, ModelName, PatchBody, Text
from domain.providers import Upstream, UpstreamError, adapter_for
from domain.relay.plan import DEFAULT_PROVIDER_URLS
from domain.routing import channels as channel_service
from domain.routing import repository as channels_repo
from edge.deps import ResourcesDep, SessionDep, client_ip
from schema.channels import Channel
from schema.identity import User
from schema.unit_of_work import after_commit

router = APIRouter(prefix="/admin/v1/channels", tags=["admin: channels"])

Provider = Literal[
    "openai", "openai_compatible", "openrouter", "ollama", "anthropic", "google", "demo", "jobs"
]
ChannelType = Literal["chat", "image", "video", "audio", "embedding"]


MAX_MODELS = 1000
# An upstream's own name for a model; it is sent upstream and logged with each attempt.
UpstreamName = Annotated[Text, Field(min_length=1, max_length=200)]


class ChannelIn(BaseModel):
    name: Text = Field(min_length=1, max_length=200)
    provider: Provider
    base_url: Text | None = Field(default=None, max_length=500)
    secret: Text | None = Field(default=None, max_length=2000, description="write-only")
    models: list[ModelName] = Field(default_factory=list, max_length=MAX_MODELS)
    model_mapping: dict[ModelName, UpstreamName] = Field(
        default_factory=dict, max_length=MAX_MODELS
    )
    group: Text = Field(default="default", min_length=1, max_length=80)
    priority: Int32 = 0
    weight: Int32 = Field(default=1, ge=1, le=10_000)
    types: list[ChannelType] = Field(default_factory=lambda: list[ChannelType](["chat"]))
    enabled: bool = True


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
    public = model or (channel.models[0] if channel.models else "")
    secret = (
        resources.secret_box.decrypt(channel.secret_ciphertext)
        if channel.secret_ciphertext
        else None
    )
    base = channel.base_url or {
        **DEFAULT_PROVIDER_URLS,
        **resources.settings.provider_base_urls,
    }.get(channel.provider)
    upstream = Upstream(
        provider=channel.provider,
        base_url=base,
        api_key=secret,
        model=channel.model_mapping.get(public, public),
        timeout_s=30.0,
    )
    body = {"model": public, "messages": [{"role": "user", "content": "ping"}], "max_tokens": 1}
    started = time.perf_counter()
    try:
        result = await adapter_for(channel.provider).chat(resources.http, upstream, body, public)
    except UpstreamError as exc:
        return TestCallOut(
            ok=False, model=public, latency_ms=int((time.perf_counter() - started) * 1000),
            error=f"{exc.kind}: {exc.message}", upstream_request_id=exc.upstream_request_id,
        )  # fmt: skip
    return TestCallOut(
        ok=True, model=public, latency_ms=int((time.perf_counter() - started) * 1000),
        upstream_request_id=result.upstream_request_id,
    )  # fmt: skip
