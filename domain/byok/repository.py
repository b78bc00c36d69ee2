"""SQL for BYOK keys; the ciphertext column is the only place the secret lives."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, literal_column, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from schema.base import table_of
from schema.keys import ByokKey

B = table_of(ByokKey)


async def upsert(session: AsyncSession, org_id: uuid.UUID, provider: str, **values: Any) -> bool:
    """Insert or replace the org's key for a provider; True when it was new."""
    now = datetime.now(UTC)
    stmt: Any = (
        pg_insert(B)
        .values(id=uuid.uuid4(), org_id=org_id, provider=provider, updated_at=now, **values)
        .on_conflict_do_update(
            index_elements=[B.c.org_id, B.c.provider], set_={**values, "updated_at": now}
        )
        .returning(literal_column("(xmax = 0)"))  # true only for a freshly inserted row
    )
    return bool((await session.execute(stmt)).scalar_one())


async def get(session: AsyncSession, org_id: uuid.UUID, provider: str) -> ByokKey | None:
    stmt = select(ByokKey).where(B.c.org_id == org_id, B.c.provider == provider)
    return (await session.execute(stmt)).scalar_one_or_none()


async def reloaded(session: AsyncSession, org_id: uuid.UUID, provider: str) -> ByokKey | None:
    """`get`, then the row read again past the session's identity map (an upsert or update
    above ran as Core, which does not refresh objects the session already holds)."""
    row = await get(session, org_id, provider)
    if row is not None:
        await session.refresh(row)
    return row


async def list_for_org(session: AsyncSession, org_id: uuid.UUID) -> list[ByokKey]:
    rows = await session.execute(select(ByokKey).where(B.c.org_id == org_id).order_by(B.c.provider))
    return list(rows.scalars())


async def set_enabled(
    session: AsyncSession, org_id: uuid.UUID, provider: str, enabled: bool
) -> bool:
    stmt = (
        update(B)
        .where(B.c.org_id == org_id, B.c.provider == provider)
        .values(enabled=enabled, updated_at=datetime.now(UTC))
        .returning(B.c.id)
    )
    return (await session.execute(stmt)).first() is not None


async def remove(session: AsyncSession, org_id: uuid.UUID, provider: str) -> bool:
    stmt = delete(B).where(B.c.org_id == org_id, B.c.provider == provider).returning(B.c.id)
    return (await session.execute(stmt)).first() is not None


async def ciphertext_batch(
    session: AsyncSession, after: uuid.UUID | None, limit: int
) -> list[tuple[uuid.UUID, str]]:
    """Every org's rows, by id: only the secret-rotation command reads across tenants."""
    stmt = select(B.c.id, B.c.secret_ciphertext).order_by(B.c.id).limit(limit)
    if after is not None:
        stmt = stmt.where(B.c.id > after)
    return [(row[0], row[1]) for row in (await session.execute(stmt)).all()]


async def replace_ciphertext(session: AsyncSession, row_id: uuid.UUID, old: str, new: str) -> bool:
    """Compare-and-set, so a concurrent key change is never overwritten with a stale secret."""
    stmt = (
        update(B)
        .where(B.c.id == row_id, B.c.secret_ciphertext == old)
        .values(secret_ciphertext=new)
        .returning(B.c.id)
    )
    return (await session.execute(stmt)).first() is not None


async def enabled_for_org(session: AsyncSession, org_id: uuid.UUID) -> list[ByokKey]:
    stmt = select(ByokKey).where(B.c.org_id == org_id, B.c.enabled.is_(True))
    return list((await session.execute(stmt)).scalars())
