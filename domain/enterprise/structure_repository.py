"""SQL for departments, cost centers and what they impose on a key.

Every statement is scoped by org id, so an id from another tenant matches nothing.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError

from schema.base import table_of
from schema.db import Executor
from schema.identity import Membership
from schema.keys import ApiKey
from schema.org_structure import CostCenter, Department

D = table_of(Department)
C = table_of(CostCenter)
M = table_of(Membership)
K = table_of(ApiKey)

TABLES = {"department": D, "cost_center": C}
MEMBER_COLUMN = {"department": M.c.department_id, "cost_center": M.c.cost_center_id}


class DuplicateName(Exception):
    """The org already has an entity with this name (case-insensitive)."""


async def list_all(session: Executor, kind: str, org_id: uuid.UUID) -> list[Any]:
    t = TABLES[kind]
    label = t.c.name if kind == "department" else t.c.code
    stmt = select(t).where(t.c.org_id == org_id).order_by(func.lower(label), t.c.id)
    return list((await session.execute(stmt)).mappings().all())


async def get(
    session: Executor, kind: str, org_id: uuid.UUID, entity_id: uuid.UUID, *, lock: bool = False
) -> Any | None:
    t = TABLES[kind]
    stmt = select(t).where(t.c.org_id == org_id, t.c.id == entity_id)
    if lock:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).mappings().first()


async def insert_one(session: Executor, kind: str, values: dict[str, Any]) -> Any:
    t = TABLES[kind]
    try:
        async with _savepoint(session):
            return (
                (await session.execute(insert(t).values(**values).returning(*t.c))).mappings().one()
            )
    except IntegrityError as exc:
        raise DuplicateName from exc


async def update_one(
    session: Executor, kind: str, org_id: uuid.UUID, entity_id: uuid.UUID, values: dict[str, Any]
) -> Any:
    t = TABLES[kind]
    if "updated_at" in t.c:
        values = {**values, "updated_at": func.now()}
    stmt = update(t).where(t.c.org_id == org_id, t.c.id == entity_id).values(**values)
    try:
        async with _savepoint(session):
            return (await session.execute(stmt.returning(*t.c))).mappings().one()
    except IntegrityError as exc:
        raise DuplicateName from exc


async def delete_one(session: Executor, kind: str, org_id: uuid.UUID, entity_id: uuid.UUID) -> None:
    t = TABLES[kind]
    await session.execute(delete(t).where(t.c.org_id == org_id, t.c.id == entity_id))


async def set_archived(
    session: Executor, kind: str, org_id: uuid.UUID, entity_id: uuid.UUID, archived: bool
) -> Any:
    t = TABLES[kind]
    values: dict[str, Any] = {"archived_at": func.now() if archived else None}
    if "updated_at" in t.c:
        values["updated_at"] = func.now()
    stmt = update(t).where(t.c.org_id == org_id, t.c.id == entity_id).values(**values)
    return (await session.execute(stmt.returning(*t.c))).mappings().one()


async def member_count(
    session: Executor, kind: str, org_id: uuid.UUID, entity_id: uuid.UUID
) -> int:
    stmt = (
        select(func.count())
        .select_from(M)
        .where(M.c.org_id == org_id, MEMBER_COLUMN[kind] == entity_id)
    )
    return int((await session.execute(stmt)).scalar_one())


async def key_owner(session: Executor, org_id: uuid.UUID, key_id: uuid.UUID) -> Any | None:
    """The creator's membership behind a key: user, department and its policy, cost center.

    A key whose creator left the org (or was made by no one) has no department: it gets no
    department policy and only key-scoped budgets."""
    stmt = (
        select(
            M.c.user_id,
            M.c.department_id,
            M.c.cost_center_id,
            D.c.model_allowlist,
            D.c.content_logging,
        )
        .select_from(K)
        .outerjoin(M, (M.c.user_id == K.c.created_by) & (M.c.org_id == K.c.org_id))
        .outerjoin(D, D.c.id == M.c.department_id)
        .where(K.c.id == key_id, K.c.org_id == org_id)
    )
    return (await session.execute(stmt)).mappings().first()


def _savepoint(session: Executor) -> Any:
    """Admin writes only: a unique violation becomes a 409 and the transaction goes on."""
    return session.begin_nested()
