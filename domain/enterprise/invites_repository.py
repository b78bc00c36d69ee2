"""SQL for org invitations; every statement names the org or the token's digest."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update

from schema.base import table_of
from schema.db import Executor
from schema.identity import Org, User
from schema.org_structure import CostCenter, Department, OrgInvite

I = table_of(OrgInvite)  # noqa: E741 - the table's alias, like the other repositories'
O = table_of(Org)  # noqa: E741
U = table_of(User)
D = table_of(Department)
C = table_of(CostCenter)


def _select() -> Any:
    return (
        select(
            *I.c,
            O.c.name.label("org_name"),
            D.c.name.label("department"),
            C.c.code.label("cost_center"),
            U.c.email.label("created_by_email"),
        )
        .join(O, O.c.id == I.c.org_id)
        .outerjoin(D, D.c.id == I.c.department_id)
        .outerjoin(C, C.c.id == I.c.cost_center_id)
        .outerjoin(U, U.c.id == I.c.created_by)
    )


async def insert_invite(session: Executor, values: dict[str, Any]) -> None:
    await session.execute(insert(I).values(**values))


async def get(session: Executor, org_id: uuid.UUID, invite_id: uuid.UUID) -> Any | None:
    stmt = _select().where(I.c.org_id == org_id, I.c.id == invite_id)
    return (await session.execute(stmt)).mappings().first()


async def by_token(session: Executor, token_hash: bytes) -> Any | None:
    stmt = _select().where(I.c.token_hash == token_hash)
    return (await session.execute(stmt)).mappings().first()


async def lock(session: Executor, invite_id: uuid.UUID) -> Any | None:
    stmt = select(I).where(I.c.id == invite_id).with_for_update()
    return (await session.execute(stmt)).mappings().first()


async def pending(session: Executor, org_id: uuid.UUID, now: datetime) -> list[Any]:
    """Invites still open (not accepted, revoked or expired), newest first."""
    stmt = (
        _select()
        .where(
            I.c.org_id == org_id,
            I.c.accepted_at.is_(None),
            I.c.revoked_at.is_(None),
            I.c.expires_at > now,
        )
        .order_by(I.c.created_at.desc(), I.c.id)
    )
    return list((await session.execute(stmt)).mappings().all())


async def revoke_open_for_email(
    session: Executor, org_id: uuid.UUID, email: str, now: datetime
) -> None:
    stmt = (
        update(I)
        .where(
            I.c.org_id == org_id,
            I.c.email == email,
            I.c.accepted_at.is_(None),
            I.c.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    )
    await session.execute(stmt)


async def mark(session: Executor, invite_id: uuid.UUID, values: dict[str, Any]) -> None:
    await session.execute(update(I).where(I.c.id == invite_id).values(**values))
