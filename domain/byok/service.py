"""Bring-your-own provider keys: validated, encrypted at rest, only ever shown masked."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from domain.audit.service import record
from domain.byok import repository as repo
from domain.byok.validation import validate
from domain.crypto import SecretBox, mask_secret
from domain.egress.policy import STRICT, EgressPolicy
from domain.errors import NotFound
from domain.identity.service import OrgContext
from schema.keys import ByokKey


@dataclass(frozen=True)
class ByokSecret:
    """A decrypted key for routing; never serialised."""

    provider: str
    api_key: str
    base_url: str | None

    def __repr__(self) -> str:
        return f"ByokSecret(provider={self.provider!r}, api_key='***', base_url={self.base_url!r})"


def _summary(row: ByokKey) -> dict[str, object]:
    return {
        "provider": row.provider,
        "label": row.label,
        "hint": row.key_hint,
        "enabled": row.enabled,
    }


async def put_key(
    session: AsyncSession,
    ctx: OrgContext,
    box: SecretBox,
    *,
    provider: str,
    api_key: str,
    label: str | None,
    base_url: str | None,
    egress: EgressPolicy = STRICT,
) -> tuple[ByokKey, bool]:
    ctx.require("admin")
    key, base_url = validate(provider, api_key, base_url, egress=egress)
    before = await repo.get(session, ctx.org.id, provider)
    # Summarised now: `reloaded` below refreshes the very row object `before` holds.
    before_summary = _summary(before) if before else None
    created = await repo.upsert(
        session,
        ctx.org.id,
        provider,
        label=(label or "").strip() or None,
        base_url=base_url,
        secret_ciphertext=box.encrypt(key),
        key_hint=mask_secret(key) if key else "(none)",
        enabled=True,
    )
    row = await repo.reloaded(session, ctx.org.id, provider)
    assert row is not None
    await record(
        session, ctx.actor, "byok.created" if created else "byok.replaced", org_id=ctx.org.id,
        target_type="byok_key", target_id=provider,
        before=before_summary, after=_summary(row),
    )  # fmt: skip
    return row, created


async def list_keys(session: AsyncSession, ctx: OrgContext) -> list[ByokKey]:
    return await repo.list_for_org(session, ctx.org.id)


async def set_enabled(
    session: AsyncSession, ctx: OrgContext, provider: str, enabled: bool
) -> ByokKey:
    ctx.require("admin")
    if not await repo.set_enabled(session, ctx.org.id, provider, enabled):
        raise NotFound(f"no {provider} key is stored")
    row = await repo.reloaded(session, ctx.org.id, provider)
    assert row is not None
    await record(
        session, ctx.actor, "byok.enabled" if enabled else "byok.disabled", org_id=ctx.org.id,
        target_type="byok_key", target_id=provider, after=_summary(row),
    )  # fmt: skip
    return row


async def delete_key(session: AsyncSession, ctx: OrgContext, provider: str) -> None:
    ctx.require("admin")
    before = await repo.get(session, ctx.org.id, provider)
    if before is None or not await repo.remove(session, ctx.org.id, provider):
        raise NotFound(f"no {provider} key is stored")
    await record(
        session, ctx.actor, "byok.deleted", org_id=ctx.org.id,
        target_type="byok_key", target_id=provider, before=_summary(before),
    )  # fmt: skip


async def secrets_for_routing(
    session: AsyncSession, org_id: uuid.UUID, box: SecretBox
) -> dict[str, ByokSecret]:
    """The org's enabled keys, decrypted for one request and never stored elsewhere."""
    rows = await repo.enabled_for_org(session, org_id)
    return {
        r.provider: ByokSecret(r.provider, box.decrypt(r.secret_ciphertext), r.base_url)
        for r in rows
    }
