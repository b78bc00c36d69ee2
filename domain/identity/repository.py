"""SQL for users, orgs, memberships, portal sessions and login throttles."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from schema.base import table_of
from schema.identity import LoginThrottle, Membership, Org, PortalSession, User

U = table_of(User)
ORGS = table_of(Org)
M = table_of(Membership)
S = table_of(PortalSession)
LT = table_of(LoginThrottle)


@dataclass(frozen=True)
class OrgMembership:
    org: Org
    role: str
    department_id: uuid.UUID | None
    cost_center_id: uuid.UUID | None


async def user_by_email(session: AsyncSession, email: str) -> User | None:
    stmt = select(User).where(func.lower(U.c.email) == email.lower())
    return (await session.execute(stmt)).scalar_one_or_none()


async def user_by_id(session: AsyncSession, user_id: uuid.UUID) -> User | None:
    return await session.get(User, user_id)


async def insert_user(
    session: AsyncSession, email: str, password_hash: str | None, *, is_operator: bool = False
) -> uuid.UUID | None:
    """Returns None when the email is taken (case-insensitively) instead of raising.
    `password_hash` None: a user who signs in only through single sign-on."""
    stmt = (
        pg_insert(U)
        .values(id=uuid.uuid4(), email=email, password_hash=password_hash, is_operator=is_operator)
        .on_conflict_do_nothing()
        .returning(U.c.id)
    )
    found: uuid.UUID | None = (await session.execute(stmt)).scalar_one_or_none()
    return found


async def set_operator(session: AsyncSession, user_id: uuid.UUID, value: bool) -> None:
    await session.execute(update(U).where(U.c.id == user_id).values(is_operator=value))


async def set_default_org_if_unset(
    session: AsyncSession, user_id: uuid.UUID, org_id: uuid.UUID
) -> None:
    await session.execute(
        update(U)
        .where(U.c.id == user_id, U.c.default_org_id.is_(None))
        .values(default_org_id=org_id)
    )


async def insert_org(session: AsyncSession, **values: Any) -> uuid.UUID:
    org_id = uuid.uuid4()
    await session.execute(insert(ORGS).values(id=org_id, **values))
    return org_id


async def org_by_id(session: AsyncSession, org_id: uuid.UUID) -> Org | None:
    return await session.get(Org, org_id)


async def insert_membership(
    session: AsyncSession, user_id: uuid.UUID, org_id: uuid.UUID, role: str
) -> None:
    await session.execute(
        insert(M).values(id=uuid.uuid4(), user_id=user_id, org_id=org_id, role=role)
    )


async def memberships_of(session: AsyncSession, user_id: uuid.UUID) -> list[OrgMembership]:
    stmt = (
        select(Org, M.c.role, M.c.department_id, M.c.cost_center_id)
        .join(M, M.c.org_id == ORGS.c.id)
        .join(U, U.c.id == M.c.user_id)
        .where(M.c.user_id == user_id)
        .order_by(
            (U.c.default_org_id == ORGS.c.id).is_(True).desc(),
            ORGS.c.personal.desc(),
            ORGS.c.created_at,
            ORGS.c.id,
        )
    )
    rows = await session.execute(stmt)
    return [OrgMembership(org, role, dept, cc) for org, role, dept, cc in rows.all()]


async def membership(
    session: AsyncSession, user_id: uuid.UUID, org_id: uuid.UUID
) -> OrgMembership | None:
    stmt = (
        select(Org, M.c.role, M.c.department_id, M.c.cost_center_id)
        .join(M, M.c.org_id == ORGS.c.id)
        .where(M.c.user_id == user_id, M.c.org_id == org_id)
    )
    row = (await session.execute(stmt)).first()
    return OrgMembership(row[0], row[1], row[2], row[3]) if row else None


async def list_orgs(
    session: AsyncSession, *, search: str | None, limit: int, offset: int
) -> list[Org]:
    stmt = select(Org)
    if search:
        stmt = stmt.where(ORGS.c.name.ilike(_contains(search), escape="\\"))
    rows = await session.execute(
        stmt.order_by(ORGS.c.created_at, ORGS.c.id).limit(limit).offset(offset)
    )
    return list(rows.scalars())


# --- portal sessions ---------------------------------------------------------------------


async def insert_session(
    session: AsyncSession,
    token_hash: bytes,
    user_id: uuid.UUID,
    expires_at: datetime,
    ip: str | None,
) -> None:
    await session.execute(
        insert(S).values(
            id=uuid.uuid4(), token_hash=token_hash, user_id=user_id, expires_at=expires_at, ip=ip
        )
    )


async def revoke_user_sessions(session: AsyncSession, user_id: uuid.UUID, now: datetime) -> None:
    await session.execute(
        update(S).where(S.c.user_id == user_id, S.c.revoked_at.is_(None)).values(revoked_at=now)
    )


async def clear_password(session: AsyncSession, user_id: uuid.UUID) -> None:
    await session.execute(update(U).where(U.c.id == user_id).values(password_hash=None))


async def live_session_user(
    session: AsyncSession, token_hash: bytes, now: datetime
) -> tuple[PortalSession, User] | None:
    stmt = (
        select(PortalSession, User)
        .join(U, U.c.id == S.c.user_id)
        .where(
            S.c.token_hash == token_hash,
            S.c.revoked_at.is_(None),
            S.c.expires_at > now,
            U.c.disabled_at.is_(None),
        )
    )
    row = (await session.execute(stmt)).first()
    return (row[0], row[1]) if row else None


async def revoke_session(session: AsyncSession, token_hash: bytes, now: datetime) -> bool:
    stmt = (
        update(S)
        .where(S.c.token_hash == token_hash, S.c.revoked_at.is_(None))
        .values(revoked_at=now)
        .returning(S.c.id)
    )
    return (await session.execute(stmt)).first() is not None


# --- login throttling --------------------------------------------------------------------


async def throttles(session: AsyncSession, subjects: list[str]) -> list[LoginThrottle]:
    rows = await session.execute(select(LoginThrottle).where(LT.c.subject.in_(subjects)))
    return list(rows.scalars())


async def record_failure(
    session: AsyncSession,
    subject: str,
    now: datetime,
    lock_after: int,
    lock_until: Callable[[int], datetime],
) -> int:
    """Count one more failure; lock once the count reaches `lock_after`. Returns the count."""
    stmt = (
        pg_insert(LT)
        .values(subject=subject, failures=1, updated_at=now)
        .on_conflict_do_update(
            index_elements=[LT.c.subject],
            set_={"failures": LT.c.failures + 1, "updated_at": now},
        )
        .returning(LT.c.failures)
    )
    failures = int((await session.execute(stmt)).scalar_one())
    if failures >= lock_after:
        await session.execute(
            update(LT).where(LT.c.subject == subject).values(locked_until=lock_until(failures))
        )
    return failures


async def clear_failures(session: AsyncSession, subjects: list[str]) -> None:
    await session.execute(
        update(LT).where(LT.c.subject.in_(subjects)).values(failures=0, locked_until=None)
    )


async def lock_user(session: AsyncSession, user_id: uuid.UUID) -> User | None:
    stmt = (
        select(User)
        .where(U.c.id == user_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def update_user_flags(
    session: AsyncSession,
    user_id: uuid.UUID,
    *,
    disabled: bool | None = None,
    is_operator: bool | None = None,
) -> User:
    values: dict[str, Any] = {}
    if disabled is not None:
        values["disabled_at"] = func.now() if disabled else None
    if is_operator is not None:
        values["is_operator"] = is_operator
    await session.execute(update(U).where(U.c.id == user_id).values(**values))
    user = await session.get(User, user_id, populate_existing=True)
    assert user is not None
    return user


async def list_users(
    session: AsyncSession, *, search: str | None, limit: int, offset: int
) -> list[tuple[User, int]]:
    """Users with how many orgs each belongs to, oldest first; `search` matches the email."""
    orgs = select(func.count()).where(M.c.user_id == U.c.id).scalar_subquery()
    stmt = select(User, orgs)
    if search:
        stmt = stmt.where(U.c.email.ilike(_contains(search), escape="\\"))
    stmt = stmt.order_by(U.c.created_at, U.c.id).limit(limit).offset(offset)
    return [(row[0], int(row[1])) for row in (await session.execute(stmt)).all()]


def _contains(search: str) -> str:
    """A LIKE pattern matching `search` literally: % and _ typed by a user are not wildcards."""
    escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"
