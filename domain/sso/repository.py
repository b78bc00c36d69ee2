"""SQL for SSO configurations, claimed email domains and sign-ins in flight."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from schema.base import table_of
from schema.identity import Membership, Org
from schema.sso import SsoConfig, SsoDomain, SsoLogin

C = table_of(SsoConfig)
D = table_of(SsoDomain)
L = table_of(SsoLogin)
M = table_of(Membership)


@dataclass(frozen=True)
class DomainRoute:
    """Where an email domain signs in: the org that verified it and its configuration."""

    org: Org
    config: SsoConfig


# --- configuration -----------------------------------------------------------------------


async def config_of(session: AsyncSession, org_id: uuid.UUID) -> SsoConfig | None:
    stmt = select(SsoConfig).where(C.c.org_id == org_id).execution_options(populate_existing=True)
    return (await session.execute(stmt)).scalar_one_or_none()


async def insert_config(session: AsyncSession, org_id: uuid.UUID, values: dict[str, Any]) -> None:
    """Complete values (secret included): a concurrent first save just updates the row."""
    stmt = pg_insert(C).values(org_id=org_id, **values)
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[C.c.org_id], set_={**values, "updated_at": func.now()}
        )
    )


async def update_config(session: AsyncSession, org_id: uuid.UUID, values: dict[str, Any]) -> None:
    await session.execute(
        update(C).where(C.c.org_id == org_id).values(**values, updated_at=func.now())
    )


async def delete_config(session: AsyncSession, org_id: uuid.UUID) -> bool:
    """Removes the configuration, the org's domain claims and its sign-ins in flight."""
    await session.execute(delete(D).where(D.c.org_id == org_id))
    await session.execute(delete(L).where(L.c.org_id == org_id))
    found = await session.execute(delete(C).where(C.c.org_id == org_id).returning(C.c.org_id))
    return found.first() is not None


# --- domains -----------------------------------------------------------------------------


async def domains_of(session: AsyncSession, org_id: uuid.UUID) -> list[SsoDomain]:
    stmt = (
        select(SsoDomain)
        .where(D.c.org_id == org_id)
        .order_by(D.c.domain)
        .execution_options(populate_existing=True)
    )
    return list((await session.execute(stmt)).scalars())


async def verified_elsewhere(
    session: AsyncSession, org_id: uuid.UUID, domains: list[str]
) -> list[str]:
    """Which of `domains` another org has already verified."""
    stmt = select(D.c.domain).where(
        D.c.domain.in_(domains), D.c.org_id != org_id, D.c.verified_at.is_not(None)
    )
    return sorted(str(d) for d in (await session.execute(stmt)).scalars())


async def insert_domain(session: AsyncSession, org_id: uuid.UUID, domain: str, token: str) -> None:
    await session.execute(
        pg_insert(D)
        .values(id=uuid.uuid4(), org_id=org_id, domain=domain, verification_token=token)
        .on_conflict_do_nothing()
    )


async def remove_domains(session: AsyncSession, org_id: uuid.UUID, domains: list[str]) -> None:
    await session.execute(delete(D).where(D.c.org_id == org_id, D.c.domain.in_(domains)))


async def mark_verified(session: AsyncSession, domain_id: uuid.UUID, now: datetime) -> bool:
    """False when another org holds the domain verified (checked, and enforced by the
    partial unique index should two orgs verify it at the same moment)."""
    try:
        async with session.begin_nested():
            done = await session.execute(
                update(D)
                .where(D.c.id == domain_id, D.c.verified_at.is_(None))
                .values(verified_at=now)
                .returning(D.c.id)
            )
    except IntegrityError:
        return False
    return done.first() is not None


async def route_for_domain(session: AsyncSession, domain: str) -> DomainRoute | None:
    """The org that verified `domain`, with its SSO configuration (enabled or not)."""
    stmt = (
        select(Org, SsoConfig)
        .join(D, D.c.org_id == table_of(Org).c.id)
        .join(C, C.c.org_id == D.c.org_id)
        .where(D.c.domain == domain, D.c.verified_at.is_not(None))
    )
    row = (await session.execute(stmt)).first()
    return DomainRoute(row[0], row[1]) if row else None


# --- sign-ins in flight ------------------------------------------------------------------


async def insert_login(session: AsyncSession, **values: Any) -> None:
    await session.execute(pg_insert(L).values(id=uuid.uuid4(), **values))


async def claim_login(session: AsyncSession, state_hash: bytes, now: datetime) -> SsoLogin | None:
    """Spend a sign-in's state: at most once, and only before it expires. A second claim
    (a replay, or a concurrent finish) gets None."""
    stmt = (
        update(L)
        .where(L.c.state_hash == state_hash, L.c.used_at.is_(None), L.c.expires_at > now)
        .values(used_at=now)
        .returning(*L.c)
    )
    row = (await session.execute(stmt)).mappings().first()
    return SsoLogin.model_validate(dict(row)) if row else None


async def purge_logins(session: AsyncSession, before: datetime) -> None:
    """Sign-ins that expired long enough ago that nobody can be finishing them."""
    await session.execute(delete(L).where(L.c.expires_at < before))


# --- memberships -------------------------------------------------------------------------


async def add_membership(
    session: AsyncSession, user_id: uuid.UUID, org_id: uuid.UUID, role: str
) -> bool:
    """True when added; False when the user already is a member (their role is kept)."""
    stmt = (
        pg_insert(M)
        .values(id=uuid.uuid4(), user_id=user_id, org_id=org_id, role=role)
        .on_conflict_do_nothing(index_elements=[M.c.user_id, M.c.org_id])
        .returning(M.c.id)
    )
    return (await session.execute(stmt)).first() is not None
