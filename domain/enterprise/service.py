"""Org administration rules: settings, who holds which role, and the monthly statement.

Roles rank owner > admin > finance > member. Owners are the only ones who can make or
unmake owners, and an org always keeps at least one owner, or nobody could administer it.

Lock order, for every change to an org's settings, members, departments, cost centers,
department policies and budget policies: the org row first (`repository.lock_org`), then
the department, cost center or policy row, then memberships, then the audit event. A
member edit used to lock the org and then (through the membership's foreign key) the cost
center, while a cost-center edit locked the cost center and then (through its audit
event's foreign key) the org: two such requests at once deadlocked. Taking the org first
everywhere makes them queue instead.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from domain.audit.service import record
from domain.enterprise import repository as repo
from domain.enterprise import structure
from domain.errors import Conflict, InvalidField, NotFound, PermissionDenied
from domain.identity import repository as identity_repo
from domain.identity.service import ROLE_RANK, OrgContext, normalize_email
from domain.pricing.cost import format_credits
from schema.identity import POWER_LEVELS, Org

ORG_EDITABLE = ("name", "power_level", "retention_days", "byok_fallback")
MEMBER_EDITABLE = ("role", "department_id", "cost_center_id")
UNASSIGNED = "unassigned"
MONTH_RE = re.compile(r"^([0-9]{4})-(0[1-9]|1[0-2])$")


def org_summary(org: Org) -> dict[str, Any]:
    return {f: getattr(org, f) for f in ("name", "tier", *ORG_EDITABLE[1:])}


def member_summary(m: repo.Member) -> dict[str, Any]:
    return {
        "role": m.role,
        "department": m.department,
        "department_id": str(m.department_id) if m.department_id else None,
        "cost_center": m.cost_center,
        "cost_center_id": str(m.cost_center_id) if m.cost_center_id else None,
    }


# --- org settings ------------------------------------------------------------------------


def get_org(ctx: OrgContext) -> Org:
    ctx.require("finance")
    return ctx.org


def _validate_org(changes: dict[str, Any]) -> dict[str, Any]:
    out = dict(changes)
    if "name" in out:
        name = str(out["name"]).strip()
        if not 1 <= len(name) <= 200:
            raise InvalidField("name must be 1 to 200 characters", param="name")
        out["name"] = name
    if "power_level" in out and out["power_level"] not in POWER_LEVELS:
        raise InvalidField(f"power_level must be one of {', '.join(POWER_LEVELS)}")
    if "retention_days" in out and not 1 <= int(out["retention_days"]) <= 3650:
        raise InvalidField("retention_days must be between 1 and 3650", param="retention_days")
    return out


async def update_org(session: AsyncSession, ctx: OrgContext, changes: dict[str, Any]) -> Org:
    """Tier is absent on purpose: it is what the org pays for, so only operators set it."""
    ctx.require("admin")
    if "tier" in changes:
        raise PermissionDenied("the tier is changed by platform operators, not org admins")
    unknown = set(changes) - set(ORG_EDITABLE)
    if unknown:
        raise InvalidField(f"cannot change {', '.join(sorted(unknown))}")
    values = _validate_org(changes)
    org = await repo.lock_org(session, ctx.org.id)
    if org is None:  # pragma: no cover - the membership that let us in holds the FK
        raise NotFound("no such org")
    before = org_summary(org)
    values = {k: v for k, v in values.items() if before[k] != v}
    if not values:
        return org
    updated = await repo.update_org(session, ctx.org.id, values)
    await record(
        session, ctx.actor, "org.updated", org_id=ctx.org.id,
        target_type="org", target_id=ctx.org.id, before=before, after=org_summary(updated),
    )  # fmt: skip
    return updated


# --- members -----------------------------------------------------------------------------


def _check_role(role: str) -> None:
    if role not in ROLE_RANK:
        raise InvalidField(f"role must be one of {', '.join(ROLE_RANK)}", param="role")


async def list_members(session: AsyncSession, ctx: OrgContext) -> list[repo.Member]:
    ctx.require("admin")
    return await repo.list_members(session, ctx.org.id)


async def _locked_member(session: AsyncSession, ctx: OrgContext, user_id: uuid.UUID) -> repo.Member:
    await repo.lock_org(session, ctx.org.id)
    found = await repo.member(session, ctx.org.id, user_id)
    if found is None:
        raise NotFound("no such member")
    return found


async def add_member(
    session: AsyncSession,
    ctx: OrgContext,
    *,
    email: str,
    role: str,
    department_id: uuid.UUID | None = None,
    cost_center_id: uuid.UUID | None = None,
) -> repo.Member:
    """Adds someone who already has an account; there is no invitation mail to send."""
    ctx.require("admin")
    _check_role(role)
    if role == "owner":
        ctx.require("owner")
    user = await identity_repo.user_by_email(session, normalize_email(email))
    if user is None or user.disabled_at is not None:
        raise NotFound("no user with this email; they must sign up first", param="email")
    await repo.lock_org(session, ctx.org.id)  # before the entities it resolves (lock order)
    added = await repo.insert_member(
        session,
        ctx.org.id,
        user.id,
        role,
        await structure.resolve(session, "department", ctx.org.id, department_id),
        await structure.resolve(session, "cost_center", ctx.org.id, cost_center_id),
    )
    if not added:
        raise Conflict("this user is already a member of the org", param="email")
    found = await repo.member(session, ctx.org.id, user.id)
    assert found is not None
    await record(
        session, ctx.actor, "member.added", org_id=ctx.org.id,
        target_type="user", target_id=user.id, after=member_summary(found),
    )  # fmt: skip
    return found


async def update_member(
    session: AsyncSession, ctx: OrgContext, user_id: uuid.UUID, changes: dict[str, Any]
) -> repo.Member:
    ctx.require("admin")
    unknown = set(changes) - set(MEMBER_EDITABLE)
    if unknown:
        raise InvalidField(f"cannot change {', '.join(sorted(unknown))}")
    values: dict[str, Any] = {}
    if "role" in changes:
        if changes["role"] is None:
            raise InvalidField("role cannot be null", param="role")
        _check_role(changes["role"])
        values["role"] = changes["role"]
    # The org lock first, then the entities (lock order above): resolved under the lock, a
    # department or cost center cannot be deleted before the membership points at it.
    target = await _locked_member(session, ctx, user_id)
    for kind in ("department", "cost_center"):
        # Keeping the current one is always allowed, even once it is archived.
        if f"{kind}_id" in changes and changes[f"{kind}_id"] != getattr(target, f"{kind}_id"):
            values[f"{kind}_id"] = await structure.resolve(
                session, kind, ctx.org.id, changes[f"{kind}_id"]
            )
    role = values.get("role", target.role)
    if role != target.role:
        if "owner" in (role, target.role):
            ctx.require("owner")
        if target.role == "owner" and await repo.owner_count(session, ctx.org.id) <= 1:
            raise Conflict("the last owner cannot be demoted; make someone else owner first")
    values = {k: v for k, v in values.items() if getattr(target, k) != v}
    if not values:
        return target
    await repo.update_member(session, ctx.org.id, user_id, values)
    updated = await repo.member(session, ctx.org.id, user_id)
    assert updated is not None
    await record(
        session, ctx.actor, "member.updated", org_id=ctx.org.id, target_type="user",
        target_id=user_id, before=member_summary(target), after=member_summary(updated),
    )  # fmt: skip
    return updated


async def remove_member(session: AsyncSession, ctx: OrgContext, user_id: uuid.UUID) -> None:
    """API keys the member created stay with the org; revoking them is a separate act."""
    ctx.require("admin")
    target = await _locked_member(session, ctx, user_id)
    if target.role == "owner":
        ctx.require("owner")
        if await repo.owner_count(session, ctx.org.id) <= 1:
            raise Conflict("the last owner cannot be removed; make someone else owner first")
    await repo.delete_member(session, ctx.org.id, user_id)
    await record(
        session, ctx.actor, "member.removed", org_id=ctx.org.id,
        target_type="user", target_id=user_id, before=member_summary(target),
    )  # fmt: skip


# --- invoices ----------------------------------------------------------------------------


@dataclass(frozen=True)
class InvoiceLine:
    cost_center: str  # the code, or "unassigned"
    name: str | None
    attributed: bool  # False for the "unassigned" line
    entries: int
    debit_micros: int

    @property
    def debit_credits(self) -> str:
        return format_credits(self.debit_micros)


@dataclass(frozen=True)
class Invoice:
    month: str
    period_start: datetime
    period_end: datetime
    lines: list[InvoiceLine]

    @property
    def total_micros(self) -> int:
        return sum(line.debit_micros for line in self.lines)

    @property
    def entries(self) -> int:
        return sum(line.entries for line in self.lines)


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """Calendar months in UTC, the same clock the ledger's created_at is stored in."""
    m = MONTH_RE.match(month)
    if m is None:
        raise InvalidField("month must look like YYYY-MM", param="month")
    year, mon = int(m.group(1)), int(m.group(2))
    if year < 2000:
        raise InvalidField("month must be 2000-01 or later", param="month")
    start = datetime(year, mon, 1, tzinfo=UTC)
    end = datetime(year + mon // 12, mon % 12 + 1, 1, tzinfo=UTC)
    return start, end


async def monthly_invoice(session: AsyncSession, ctx: OrgContext, month: str) -> Invoice:
    ctx.require("finance")
    start, end = month_bounds(month)
    rows = await repo.debits_by_cost_center(session, ctx.org.id, start, end)
    lines = [
        InvoiceLine(
            r.cost_center or UNASSIGNED,
            r.name,
            r.cost_center is not None,
            r.entries,
            r.debit_micros,
        )
        for r in rows
    ]
    return Invoice(month, start, end, lines)
