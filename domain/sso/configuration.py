"""An org's single sign-on settings: owners and admins configure, test and remove them.

The client secret is write-only: stored as MultiFernet ciphertext, shown back only as a
hint. Saving an enabled configuration fetches the issuer's discovery document (through the
tenant egress policy), so a typo or an unreachable provider is caught when it is typed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from domain.audit.service import record
from domain.crypto import mask_secret, random_hex
from domain.egress.policy import check_base_url
from domain.errors import Conflict, InvalidField, NotFound
from domain.identity.service import OrgContext
from domain.sso import domains as dom
from domain.sso import provider
from domain.sso import repository as repo
from domain.sso.runtime import SsoRuntime
from schema.sso import SSO_ROLES, SsoConfig, SsoDomain


@dataclass(frozen=True)
class SsoSettings:
    config: SsoConfig
    domains: list[SsoDomain]


@dataclass(frozen=True)
class ConnectionReport:
    """What "test connection" found: the provider's endpoints and keys, and whether its
    token endpoint accepts our client credentials; or the first thing that failed."""

    ok: bool
    error: str | None = None
    metadata: provider.ProviderMetadata | None = None
    key_ids: tuple[str, ...] = ()
    client_credentials: str | None = None


def _summary(config: SsoConfig, domains: list[str]) -> dict[str, Any]:
    return {
        "issuer": config.issuer,
        "client_id": config.client_id,
        "client_secret_hint": config.client_secret_hint,
        "domains": domains,
        "default_role": config.default_role,
        "require_sso": config.require_sso,
        "enabled": config.enabled,
    }


async def get_settings(session: AsyncSession, ctx: OrgContext) -> SsoSettings:
    ctx.require("admin")
    config = await repo.config_of(session, ctx.org.id)
    if config is None:
        raise NotFound("single sign-on is not configured for this org")
    return SsoSettings(config, await repo.domains_of(session, ctx.org.id))


async def configure(
    session: AsyncSession,
    ctx: OrgContext,
    rt: SsoRuntime,
    *,
    issuer: str,
    client_id: str,
    client_secret: str | None,
    domains: list[str],
    default_role: str,
    require_sso: bool,
    enabled: bool,
) -> tuple[SsoSettings, bool]:
    """Create or replace the org's configuration; `client_secret` None keeps the stored one.
    Returns the settings and whether they were created."""
    ctx.require("admin")
    if default_role not in SSO_ROLES:
        raise InvalidField(
            "default_role must be admin, finance or member (an identity provider never "
            "makes owners)",
            param="default_role",
        )
    issuer = check_base_url(issuer, policy=rt.egress, param="issuer")
    client_id = client_id.strip()
    if not client_id:
        raise InvalidField("client_id must not be empty", param="client_id")
    wanted = dom.normalize_domains(domains)
    taken = await repo.verified_elsewhere(session, ctx.org.id, wanted)
    if taken:
        raise Conflict(
            f"{', '.join(taken)} already signs in through another organization", param="domains"
        )
    before = await repo.config_of(session, ctx.org.id)
    before_domains = await repo.domains_of(session, ctx.org.id)
    have = {d.domain for d in before_domains}
    # Summarised now: the update below changes the very row object `before` holds.
    before_summary = _summary(before, sorted(have)) if before else None
    secret = client_secret.strip() if client_secret is not None else None
    if not secret and before is None:
        raise InvalidField("client_secret is required", param="client_secret")
    if enabled:
        try:
            await provider.discover(rt.http, issuer, rt.egress)
        except provider.ProviderError as exc:
            raise InvalidField(f"issuer discovery failed: {exc.message}", param="issuer") from None
    values: dict[str, Any] = {
        "issuer": issuer,
        "client_id": client_id,
        "default_role": default_role,
        "require_sso": require_sso,
        "enabled": enabled,
    }
    if secret:
        values["client_secret_ciphertext"] = rt.box.encrypt(secret)
        values["client_secret_hint"] = mask_secret(secret, head=3, tail=3)
    if before is None:
        await repo.insert_config(session, ctx.org.id, values)
    else:
        await repo.update_config(session, ctx.org.id, values)
    await repo.remove_domains(session, ctx.org.id, sorted(have - set(wanted)))
    for name in sorted(set(wanted) - have):
        await repo.insert_domain(session, ctx.org.id, name, random_hex(16))
    after = await get_settings(session, ctx)
    await record(
        session, ctx.actor, "sso.configured" if before is None else "sso.updated",
        org_id=ctx.org.id, target_type="sso_config", target_id=ctx.org.id,
        before=before_summary,
        after=_summary(after.config, wanted),
    )  # fmt: skip
    return after, before is None


async def remove(session: AsyncSession, ctx: OrgContext) -> None:
    ctx.require("admin")
    before = await repo.config_of(session, ctx.org.id)
    if before is None:
        raise NotFound("single sign-on is not configured for this org")
    names = [d.domain for d in await repo.domains_of(session, ctx.org.id)]
    await repo.delete_config(session, ctx.org.id)
    await record(
        session, ctx.actor, "sso.deleted", org_id=ctx.org.id,
        target_type="sso_config", target_id=ctx.org.id, before=_summary(before, names),
    )  # fmt: skip


async def verify_domains(session: AsyncSession, ctx: OrgContext) -> SsoSettings:
    """Look up each pending domain's TXT record; the ones that carry their token are
    verified from now on (unless another org verified the domain first)."""
    settings = await get_settings(session, ctx)
    now = datetime.now(UTC)
    for claim in settings.domains:
        if claim.verified_at is not None:
            continue
        if not await dom.has_proof(claim.domain, claim.verification_token):
            continue
        if not await repo.mark_verified(session, claim.id, now):
            raise Conflict(
                f"{claim.domain} already signs in through another organization", param="domains"
            )
        await record(
            session, ctx.actor, "sso.domain_verified", org_id=ctx.org.id,
            target_type="sso_domain", target_id=claim.id, after={"domain": claim.domain},
        )  # fmt: skip
    return await get_settings(session, ctx)


async def test_connection(
    session: AsyncSession, ctx: OrgContext, rt: SsoRuntime
) -> ConnectionReport:
    """Fetch discovery and the JWKS, and ask the token endpoint whether it knows our client
    (an unusable code with our credentials: `invalid_client` means they are wrong)."""
    config = (await get_settings(session, ctx)).config
    try:
        meta = await provider.discover(rt.http, config.issuer, rt.egress)
        keys = await provider.fetch_keys(rt.http, meta, rt.egress)
    except provider.ProviderError as exc:
        return ConnectionReport(ok=False, error=exc.message)
    key_ids = tuple(sorted(str(k.kid) for k in keys.keys if k.kid))
    client = provider.Client(config.client_id, rt.box.decrypt(config.client_secret_ciphertext))
    verdict = await provider.probe_client(rt.http, meta, client, rt.egress)
    if verdict == "rejected":
        return ConnectionReport(
            ok=False,
            error="the token endpoint rejected the client id or secret (invalid_client)",
            metadata=meta,
            key_ids=key_ids,
            client_credentials=verdict,
        )
    return ConnectionReport(ok=True, metadata=meta, key_ids=key_ids, client_credentials=verdict)
