"""Platform API keys: issued once, stored as peppered HMAC, managed by their org.

Owners and admins manage every key of the org; other members only the keys they created.
Revocation is permanent: a revoked key can be neither edited nor re-activated.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from domain.audit.service import record
from domain.crypto import random_hex, token_digest
from domain.errors import Conflict, InvalidField, NotFound
from domain.identity.service import OrgContext
from domain.keys import repository as repo
from schema.keys import ApiKey

KEY_PREFIX = "oxi_"
KEY_RE = re.compile(r"^oxi_[0-9a-f]{64}$")
SCOPES = ("llm:inference", "llm:models", "tasks")
EXPIRY_DAYS: dict[str, int | None] = {"30d": 30, "60d": 60, "90d": 90, "1y": 365, "never": None}
DEFAULT_EXPIRY = "90d"
EDITABLE = ("name", "scopes", "model_allowlist", "rpm_limit", "budget_micros", "log_content")


def new_key() -> str:
    return KEY_PREFIX + random_hex(32)


def display_prefix(key: str) -> str:
    return key[: len(KEY_PREFIX) + 6]


def key_summary(key: ApiKey) -> dict[str, Any]:
    """What an audit event may say about a key: never the key or its hash."""
    return {
        "name": key.name,
        "prefix": key.prefix,
        "scopes": key.scopes,
        "model_allowlist": key.model_allowlist,
        "rpm_limit": key.rpm_limit,
        "budget_micros": key.budget_micros,
        "log_content": key.log_content,
        "expires_at": key.expires_at.isoformat() if key.expires_at else None,
        "revoked": key.revoked_at is not None,
    }


def _validate(values: dict[str, Any]) -> dict[str, Any]:
    if "name" in values:
        name = (values["name"] or "").strip()
        if not 1 <= len(name) <= 100:
            raise InvalidField("name must be 1 to 100 characters", param="name")
        values["name"] = name
    if "scopes" in values:
        scopes = values["scopes"]
        unknown = sorted(set(scopes) - set(SCOPES))
        if unknown or not scopes:
            raise InvalidField(
                f"scopes must be a non-empty subset of {', '.join(SCOPES)}", param="scopes"
            )
        values["scopes"] = sorted(set(scopes))
    if values.get("model_allowlist") is not None:
        allow = [m.strip() for m in values["model_allowlist"] if m.strip()]
        if not allow:
            raise InvalidField("model_allowlist, when set, needs at least one model")
        values["model_allowlist"] = sorted(set(allow))
    rpm = values.get("rpm_limit")
    if rpm is not None and not 1 <= rpm <= 1_000_000:
        raise InvalidField("rpm_limit must be between 1 and 1000000", param="rpm_limit")
    budget = values.get("budget_micros")
    if budget is not None and budget < 0:
        raise InvalidField("budget_micros must not be negative", param="budget_micros")
    return values


async def create_key(
    session: AsyncSession,
    ctx: OrgContext,
    pepper: str,
    *,
    name: str,
    scopes: list[str] | None = None,
    model_allowlist: list[str] | None = None,
    rpm_limit: int | None = None,
    budget_micros: int | None = None,
    log_content: bool = False,
    expires_in: str = DEFAULT_EXPIRY,
) -> tuple[ApiKey, str]:
    """Returns the stored row and the full key, which is never retrievable again."""
    if expires_in not in EXPIRY_DAYS:
        raise InvalidField(
            f"expires_in must be one of {', '.join(EXPIRY_DAYS)}", param="expires_in"
        )
    values = _validate(
        {
            "name": name,
            "scopes": list(SCOPES) if scopes is None else scopes,
            "model_allowlist": model_allowlist,
            "rpm_limit": rpm_limit,
            "budget_micros": budget_micros,
            "log_content": log_content,
        }
    )
    days = EXPIRY_DAYS[expires_in]
    expires_at = datetime.now(UTC) + timedelta(days=days) if days else None
    full = new_key()
    key = await repo.insert_key(
        session,
        org_id=ctx.org.id,
        created_by=ctx.user.id,
        prefix=display_prefix(full),
        key_hash=token_digest(pepper, full),
        expires_at=expires_at,
        **values,
    )
    await record(
        session, ctx.actor, "api_key.created", org_id=ctx.org.id,
        target_type="api_key", target_id=key.id, after=key_summary(key),
    )  # fmt: skip
    return key, full


def _may_manage(ctx: OrgContext, key: ApiKey) -> bool:
    return ctx.at_least("admin") or key.created_by == ctx.user.id


async def list_keys(session: AsyncSession, ctx: OrgContext) -> list[ApiKey]:
    only_own = None if ctx.at_least("admin") else ctx.user.id
    return await repo.list_keys(session, ctx.org.id, created_by=only_own)


async def get_key(session: AsyncSession, ctx: OrgContext, key_id: uuid.UUID) -> ApiKey:
    key = await repo.get_key(session, ctx.org.id, key_id)
    if key is None or not _may_manage(ctx, key):
        raise NotFound("no such API key")
    return key


async def update_key(
    session: AsyncSession, ctx: OrgContext, key_id: uuid.UUID, changes: dict[str, Any]
) -> ApiKey:
    key = await get_key(session, ctx, key_id)
    if key.revoked_at is not None:
        raise Conflict("a revoked key cannot be changed")
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise InvalidField(f"cannot change {', '.join(sorted(unknown))}")
    if not changes:
        return key
    before = key_summary(key)
    updated = await repo.update_key(session, ctx.org.id, key_id, _validate(dict(changes)))
    if updated is None:
        raise Conflict("a revoked key cannot be changed")
    await record(
        session, ctx.actor, "api_key.updated", org_id=ctx.org.id,
        target_type="api_key", target_id=key_id, before=before, after=key_summary(updated),
    )  # fmt: skip
    return updated


async def revoke_key(session: AsyncSession, ctx: OrgContext, key_id: uuid.UUID) -> ApiKey:
    key = await get_key(session, ctx, key_id)
    if key.revoked_at is not None:
        return key
    before = key_summary(key)
    updated = await repo.update_key(session, ctx.org.id, key_id, {"revoked_at": datetime.now(UTC)})
    assert updated is not None
    await record(
        session, ctx.actor, "api_key.revoked", org_id=ctx.org.id,
        target_type="api_key", target_id=key_id, before=before, after=key_summary(updated),
    )  # fmt: skip
    return updated


async def list_org_keys_for_operator(session: AsyncSession, org_id: uuid.UUID) -> list[ApiKey]:
    return await repo.list_keys(session, org_id)
