"""Invitations: how an admin brings someone into the org with a link.

0xinf sends no email, so the admin hands the link over themselves. The link carries a
random token; only its peppered digest is stored, so the link is shown once, when made.
It works once, before it expires (`INVITE_TTL`), and only for the invited address: a new
person signs up with that email on the invite page, an existing user signs in as it. A new
invite for the same address replaces any open one.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from domain.audit.service import Actor, record
from domain.crypto import random_hex, token_digest
from domain.enterprise import invites_repository as repo
from domain.enterprise import repository as org_repo
from domain.enterprise import structure
from domain.enterprise.service import member_summary
from domain.errors import Conflict, InvalidField, NotFound, PermissionDenied
from domain.identity.service import ROLE_RANK, OrgContext, normalize_email
from schema.identity import User

INVITE_TTL = timedelta(days=7)
TOKEN_PREFIX = "inv_"  # noqa: S105 - a label, not a secret


@dataclass(frozen=True)
class Invite:
    id: uuid.UUID
    org_id: uuid.UUID
    org_name: str
    email: str
    role: str
    department: str | None
    cost_center: str | None
    created_by_email: str | None
    created_at: datetime
    expires_at: datetime
    accepted_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, row: Any) -> Invite:
        return cls(**{f: row[f] for f in cls.__dataclass_fields__})

    def state(self, now: datetime) -> str:
        if self.accepted_at is not None:
            return "accepted"
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if self.expires_at <= now else "open"


@dataclass(frozen=True)
class IssuedInvite:
    invite: Invite
    token: str  # shown once: the link is `/console/invites/<token>`

    def __repr__(self) -> str:
        return f"IssuedInvite(invite={self.invite!r}, token='***')"


def _digest(pepper: str, token: str) -> bytes:
    return token_digest(pepper, f"invite:{token}")


def _summary(invite: Invite) -> dict[str, Any]:
    return {
        "email": invite.email,
        "role": invite.role,
        "department": invite.department,
        "cost_center": invite.cost_center,
        "expires_at": invite.expires_at.isoformat(),
    }


async def create_invite(
    session: AsyncSession,
    ctx: OrgContext,
    pepper: str,
    *,
    email: str,
    role: str,
    department_id: uuid.UUID | None = None,
    cost_center_id: uuid.UUID | None = None,
    now: datetime | None = None,
) -> IssuedInvite:
    ctx.require("admin")
    if role not in ROLE_RANK:
        raise InvalidField(f"role must be one of {', '.join(ROLE_RANK)}", param="role")
    if role == "owner":
        ctx.require("owner")
    email = normalize_email(email)
    now = now or datetime.now(UTC)
    await org_repo.lock_org(session, ctx.org.id)  # the lock order of domain.enterprise.service
    department = await structure.resolve(session, "department", ctx.org.id, department_id)
    cost_center = await structure.resolve(session, "cost_center", ctx.org.id, cost_center_id)
    if await org_repo.member_by_email(session, ctx.org.id, email):
        raise Conflict("this person is already a member of the org", param="email")
    await repo.revoke_open_for_email(session, ctx.org.id, email, now)
    token = TOKEN_PREFIX + random_hex(24)
    invite_id = uuid.uuid4()
    await repo.insert_invite(
        session,
        {
            "id": invite_id,
            "org_id": ctx.org.id,
            "email": email,
            "role": role,
            "department_id": department,
            "cost_center_id": cost_center,
            "token_hash": _digest(pepper, token),
            "created_by": ctx.user.id,
            "created_at": now,
            "expires_at": now + INVITE_TTL,
        },
    )
    row = await repo.get(session, ctx.org.id, invite_id)
    invite = Invite.of(row)
    await record(
        session, ctx.actor, "invite.created", org_id=ctx.org.id, target_type="invite",
        target_id=invite_id, after=_summary(invite),
    )  # fmt: skip
    return IssuedInvite(invite, token)


async def open_invites(session: AsyncSession, ctx: OrgContext) -> list[Invite]:
    ctx.require("admin")
    return [Invite.of(r) for r in await repo.pending(session, ctx.org.id, datetime.now(UTC))]


async def revoke_invite(session: AsyncSession, ctx: OrgContext, invite_id: uuid.UUID) -> None:
    ctx.require("admin")
    await org_repo.lock_org(session, ctx.org.id)
    row = await repo.get(session, ctx.org.id, invite_id)
    if row is None:
        raise NotFound("no such invite")
    invite = Invite.of(row)
    if invite.state(datetime.now(UTC)) != "open":
        raise Conflict(f"this invite is already {invite.state(datetime.now(UTC))}")
    if invite.role == "owner":
        ctx.require("owner")
    await repo.mark(session, invite_id, {"revoked_at": datetime.now(UTC)})
    await record(
        session, ctx.actor, "invite.revoked", org_id=ctx.org.id, target_type="invite",
        target_id=invite_id, before=_summary(invite),
    )  # fmt: skip


async def find(session: AsyncSession, pepper: str, token: str) -> Invite:
    """The invite a link names, whatever its state; an unknown token is a plain 404."""
    row = await repo.by_token(session, _digest(pepper, token)) if token else None
    if row is None:
        raise NotFound("this invite link is not valid; ask for a new one")
    return Invite.of(row)


async def accept(
    session: AsyncSession, pepper: str, token: str, user: User, ip: str | None = None
) -> Invite:
    """Join the org as the invite says. Refused once used, revoked or expired, and for any
    account but the invited email's."""
    invite = await find(session, pepper, token)
    await org_repo.lock_org(session, invite.org_id)
    locked = await repo.lock(session, invite.id)
    assert locked is not None
    now = datetime.now(UTC)
    current = Invite.of({**invite.__dict__, **dict(locked)})
    state = current.state(now)
    if state != "open":
        raise Conflict(f"this invite has {'been ' if state != 'expired' else ''}{state}")
    if user.email != current.email:
        raise PermissionDenied(
            f"this invite is for {current.email}; sign in with that address to accept it"
        )
    added = await org_repo.insert_member(
        session, invite.org_id, user.id, current.role,
        locked["department_id"], locked["cost_center_id"],
    )  # fmt: skip
    if not added:
        raise Conflict("you are already a member of this org")
    await repo.mark(session, invite.id, {"accepted_at": now, "accepted_by": user.id})
    member = await org_repo.member(session, invite.org_id, user.id)
    assert member is not None
    await record(
        session, Actor("user", user.id, ip), "invite.accepted", org_id=invite.org_id,
        target_type="user", target_id=user.id, after={**member_summary(member),
        "email": user.email, "invite_id": str(invite.id)},
    )  # fmt: skip
    return current
