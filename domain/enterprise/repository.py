"""SQL for the enterprise surface: org settings, memberships and the monthly statement.

Every statement is scoped by org id, so an id from another tenant matches nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from schema.base import table_of
from schema.identity import Membership, Org, User
from schema.keys import ApiKey
from schema.ledger import LedgerEntry
from schema.org_structure import CostCenter, Department
from schema.requests import RequestLog
from schema.tasks import Task

ORGS = table_of(Org)
M = table_of(Membership)
U = table_of(User)
K = table_of(ApiKey)
LE = table_of(LedgerEntry)
RL = table_of(RequestLog)
T = table_of(Task)
D = table_of(Department)
CC = table_of(CostCenter)


@dataclass(frozen=True)
class Member:
    user_id: uuid.UUID
    email: str
    role: str
    department_id: uuid.UUID | None
    department: str | None  # the department's name
    cost_center_id: uuid.UUID | None
    cost_center: str | None  # the cost center's code
    created_at: datetime | None


@dataclass(frozen=True)
class CostCenterTotal:
    cost_center: str | None  # its code; None: no key, membership or cost center to charge
    name: str | None
    entries: int
    debit_micros: int  # positive: what the org was charged


async def lock_org(session: AsyncSession, org_id: uuid.UUID) -> Org | None:
    """Row lock on the org, the first lock every change to an org's settings, members,
    departments, cost centers, policies and budgets takes (so two concurrent demotions
    cannot both see "another owner is left", and no two such changes wait on each other in
    opposite orders: see the lock order in `domain.enterprise.service`).

    FOR NO KEY UPDATE, not FOR UPDATE: it still excludes every other org change, but not
    the KEY SHARE locks that inserting a row referencing the org takes (ledger entries,
    request logs, audit events), so billing never waits on an admin's edit."""
    stmt = (
        select(Org)
        .where(ORGS.c.id == org_id)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def update_org(session: AsyncSession, org_id: uuid.UUID, values: dict[str, Any]) -> Org:
    await session.execute(update(ORGS).where(ORGS.c.id == org_id).values(**values))
    org = await session.get(Org, org_id, populate_existing=True)
    assert org is not None
    return org


def _member_select() -> Any:
    return (
        select(
            M.c.user_id,
            U.c.email,
            M.c.role,
            M.c.department_id,
            D.c.name,
            M.c.cost_center_id,
            CC.c.code,
            M.c.created_at,
        )
        .join(U, U.c.id == M.c.user_id)
        .outerjoin(D, D.c.id == M.c.department_id)
        .outerjoin(CC, CC.c.id == M.c.cost_center_id)
    )


async def list_members(session: AsyncSession, org_id: uuid.UUID) -> list[Member]:
    stmt = _member_select().where(M.c.org_id == org_id).order_by(M.c.created_at, M.c.user_id)
    return [Member(*row) for row in (await session.execute(stmt)).all()]


async def member(session: AsyncSession, org_id: uuid.UUID, user_id: uuid.UUID) -> Member | None:
    stmt = _member_select().where(M.c.org_id == org_id, M.c.user_id == user_id)
    row = (await session.execute(stmt)).first()
    return Member(*row) if row else None


async def owner_count(session: AsyncSession, org_id: uuid.UUID) -> int:
    stmt = select(func.count()).select_from(M).where(M.c.org_id == org_id, M.c.role == "owner")
    return int((await session.execute(stmt)).scalar_one())


async def insert_member(
    session: AsyncSession,
    org_id: uuid.UUID,
    user_id: uuid.UUID,
    role: str,
    department_id: uuid.UUID | None,
    cost_center_id: uuid.UUID | None,
) -> bool:
    """False when the user already belongs to the org (the unique index decides)."""
    stmt = (
        pg_insert(M)
        .values(
            id=uuid.uuid4(),
            org_id=org_id,
            user_id=user_id,
            role=role,
            department_id=department_id,
            cost_center_id=cost_center_id,
        )
        .on_conflict_do_nothing()
        .returning(M.c.id)
    )
    return (await session.execute(stmt)).first() is not None


async def update_member(
    session: AsyncSession, org_id: uuid.UUID, user_id: uuid.UUID, values: dict[str, Any]
) -> None:
    await session.execute(
        update(M).where(M.c.org_id == org_id, M.c.user_id == user_id).values(**values)
    )


async def delete_member(session: AsyncSession, org_id: uuid.UUID, user_id: uuid.UUID) -> None:
    await session.execute(delete(M).where(M.c.org_id == org_id, M.c.user_id == user_id))


async def debits_by_cost_center(
    session: AsyncSession, org_id: uuid.UUID, start: datetime, end: datetime
) -> list[CostCenterTotal]:
    """One row per cost center for the org's debit entries in [start, end).

    The key behind a debit: the entry's own api_key_id (set for budgeted keys), else the
    request log named by its reference, else the request log or task that held the same
    hold. Every lookup is org-filtered and yields at most one key, and the joins after it
    hit unique keys, so each debit is counted exactly once and the totals add up to the
    ledger."""
    by_reference = (
        select(RL.c.api_key_id)
        .where(RL.c.org_id == org_id, RL.c.id == LE.c.reference)
        .limit(1)
        .scalar_subquery()
    )
    by_request_hold = (
        select(RL.c.api_key_id)
        .where(RL.c.org_id == org_id, RL.c.hold_id == LE.c.hold_id, RL.c.api_key_id.is_not(None))
        .limit(1)
        .scalar_subquery()
    )
    by_task_hold = (
        select(T.c.api_key_id)
        .where(T.c.org_id == org_id, T.c.hold_id == LE.c.hold_id, T.c.api_key_id.is_not(None))
        .limit(1)
        .scalar_subquery()
    )
    debits = (
        select(
            LE.c.amount_micros,
            func.coalesce(LE.c.api_key_id, by_reference, by_request_hold, by_task_hold).label(
                "key_id"
            ),
        )
        .where(
            LE.c.org_id == org_id,
            LE.c.kind == "debit",
            LE.c.created_at >= start,
            LE.c.created_at < end,
        )
        .subquery("d")
    )
    stmt = (
        select(
            CC.c.code,
            CC.c.name,
            func.count(),
            func.coalesce(func.sum(-debits.c.amount_micros), 0),
        )
        .select_from(debits)
        .outerjoin(K, (K.c.id == debits.c.key_id) & (K.c.org_id == org_id))
        .outerjoin(M, (M.c.user_id == K.c.created_by) & (M.c.org_id == org_id))
        .outerjoin(CC, (CC.c.id == M.c.cost_center_id) & (CC.c.org_id == org_id))
        .group_by(CC.c.id, CC.c.code, CC.c.name)
        .order_by(CC.c.code.nulls_last())
    )
    rows = (await session.execute(stmt)).all()
    return [CostCenterTotal(code, name, int(n), int(total)) for code, name, n, total in rows]


async def member_by_email(session: AsyncSession, org_id: uuid.UUID, email: str) -> bool:
    stmt = (
        select(M.c.id)
        .join(U, U.c.id == M.c.user_id)
        .where(M.c.org_id == org_id, func.lower(U.c.email) == email.lower())
    )
    return (await session.execute(stmt)).first() is not None
