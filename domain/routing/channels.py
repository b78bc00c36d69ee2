"""Operator management of channels. Secrets are write-only: stored encrypted, shown as a hint."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from domain.audit.service import Actor, record
from domain.crypto import SecretBox, mask_secret
from domain.egress.policy import OPERATOR, check_base_url
from domain.errors import Conflict, InvalidField, NotFound
from domain.routing import repository as repo
from schema.channels import CHANNEL_PROVIDERS, Channel

CHANNEL_TYPES = ("chat", "image", "video", "audio", "embedding")
NEEDS_URL = {"openai_compatible", "ollama", "jobs"}
# Providers whose channels may declare `responses_api` (the OpenAI wire family).
RESPONSES_PROVIDERS = ("openai", "openai_compatible", "openrouter", "ollama")
FIELDS = (
    "name", "provider", "base_url", "models", "model_mapping", "group", "priority", "weight",
    "types", "capabilities", "enabled",
)  # fmt: skip


def summary(channel: Channel, box: SecretBox | None = None) -> dict[str, Any]:
    """Everything about a channel except its secret (a masked hint at most)."""
    data: dict[str, Any] = {f: getattr(channel, f) for f in FIELDS}
    data["has_secret"] = channel.secret_ciphertext is not None
    if box is not None and channel.secret_ciphertext is not None:
        data["secret_hint"] = mask_secret(box.decrypt(channel.secret_ciphertext))
    return data


def _validate(values: dict[str, Any], *, provider: str) -> dict[str, Any]:
    if provider not in CHANNEL_PROVIDERS:
        raise InvalidField(
            f"provider must be one of {', '.join(CHANNEL_PROVIDERS)}", param="provider"
        )
    if "base_url" in values and values["base_url"] is not None:
        values["base_url"] = check_base_url(str(values["base_url"]), policy=OPERATOR)
    if "types" in values:
        types = sorted(set(values["types"]))
        if not types or set(types) - set(CHANNEL_TYPES):
            raise InvalidField(
                f"types must be a non-empty subset of {CHANNEL_TYPES}", param="types"
            )
        values["types"] = types
    if "capabilities" in values:
        values["capabilities"] = sorted(set(values["capabilities"] or ()))
        if "responses_api" in values["capabilities"] and provider not in RESPONSES_PROVIDERS:
            raise InvalidField(
                "only openai, openai_compatible, openrouter and ollama channels speak the "
                "Responses API (responses_api)",
                param="capabilities",
            )
    if "models" in values:
        models = sorted({m.strip() for m in values["models"] if m.strip()})
        values["models"] = models
    if "model_mapping" in values:
        mapping = values["model_mapping"] or {}
        if not all(isinstance(k, str) and isinstance(v, str) and v for k, v in mapping.items()):
            raise InvalidField(
                "model_mapping maps public names to upstream names", param="model_mapping"
            )
        values["model_mapping"] = dict(mapping)
    if "weight" in values and values["weight"] < 1:
        raise InvalidField("weight must be at least 1", param="weight")
    return values


async def create_channel(
    session: AsyncSession, actor: Actor, box: SecretBox, spec: dict[str, Any], secret: str | None
) -> Channel:
    provider = spec["provider"]
    values = _validate(dict(spec), provider=provider)
    if provider in NEEDS_URL and not values.get("base_url"):
        raise InvalidField(f"{provider} channels need a base_url", param="base_url")
    if await repo.get_by_name(session, values["name"]) is not None:
        raise Conflict("a channel with this name exists", param="name")
    if secret:
        values["secret_ciphertext"] = box.encrypt(secret.strip())
    channel = await repo.insert_channel(session, values)
    await record(
        session, actor, "channel.created", org_id=None, target_type="channel",
        target_id=channel.id, after=summary(channel),
    )  # fmt: skip
    return channel


async def get_channel(session: AsyncSession, channel_id: uuid.UUID) -> Channel:
    channel = await repo.get_channel(session, channel_id)
    if channel is None:
        raise NotFound("no such channel")
    return channel


async def update_channel(
    session: AsyncSession,
    actor: Actor,
    box: SecretBox,
    channel_id: uuid.UUID,
    changes: dict[str, Any],
    secret: str | None,
) -> Channel:
    channel = await get_channel(session, channel_id)
    before = summary(channel)
    values = _validate(dict(changes), provider=changes.get("provider", channel.provider))
    renamed = "name" in values and values["name"] != channel.name
    if renamed and await repo.get_by_name(session, values["name"]) is not None:
        raise Conflict("a channel with this name exists", param="name")
    if secret is not None:
        values["secret_ciphertext"] = box.encrypt(secret.strip()) if secret.strip() else None
    if values:
        await repo.update_channel(session, channel_id, values)
    updated = await get_channel(session, channel_id)
    after = summary(updated)
    if secret is not None:
        after["secret_changed"] = True
    await record(
        session, actor, "channel.updated", org_id=None, target_type="channel",
        target_id=channel_id, before=before, after=after,
    )  # fmt: skip
    return updated


async def delete_channel(session: AsyncSession, actor: Actor, channel_id: uuid.UUID) -> None:
    channel = await get_channel(session, channel_id)
    await repo.delete_channel(session, channel_id)
    await record(
        session, actor, "channel.deleted", org_id=None, target_type="channel",
        target_id=channel_id, before=summary(channel),
    )  # fmt: skip
