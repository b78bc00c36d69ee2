"""Budget policy rules: who may set them, what a valid one is, and how it reads back.

A policy is a monthly credit limit on everything a department, member, key or cost center
spends. Hard policies refuse a request whose hold does not fit what is left this month
(`api_key_budget_exhausted`, through the same holds as key budgets); soft ones never refuse
and only record an alert the first time each threshold is crossed in a month. Admins edit;
finance reads, since budgets are spend.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from domain.audit.service import record
from domain.budgets import repository as repo
from domain.budgets.models import period_of
from domain.enterprise import repository as enterprise_repo
from domain.enterprise import structure
from domain.errors import InvalidField, NotFound
from domain.identity.service import OrgContext
from domain.keys import repository as keys_repo
from schema.org_structure import BUDGET_MODES, BUDGET_SCOPES

MAX_THRESHOLDS = 10
MAX_LIMIT_MICROS = 10**15  # a billion credits: a typo guard, far above any real month
EDITABLE = ("name", "limit_micros", "mode", "alert_thresholds", "enabled")


NO_USAGE = repo.PolicyUsage(spent_micros=0, reserved_micros=0)


@dataclass(frozen=True)
class PolicyView:
    policy: Any
    period: date
    spent_micros: int
    reserved_micros: int

    @property
    def remaining_micros(self) -> int:
        limit: int = self.policy["limit_micros"]
        return max(limit - self.spent_micros - self.reserved_micros, 0)


def _summary(row: Any) -> dict[str, Any]:
    return {
        "name": row["name"],
        "scope": row["scope"],
        "scope_id": str(row["scope_id"]),
        "limit_micros": row["limit_micros"],
        "mode": row["mode"],
        "alert_thresholds": list(row["alert_thresholds"]),
        "enabled": row["enabled"],
    }


def _thresholds(value: Any) -> list[int]:
    if not isinstance(value, list) or len(value) > MAX_THRESHOLDS:
        raise InvalidField(
            f"alert_thresholds must be a list of at most {MAX_THRESHOLDS} percentages",
            param="alert_thresholds",
        )
    for pct in value:
        if not isinstance(pct, int) or isinstance(pct, bool) or not 1 <= pct <= 1000:
            raise InvalidField(
                "each alert threshold is a whole percentage from 1 to 1000",
                param="alert_thresholds",
            )
    return sorted(set(value))


def _validate(changes: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if "name" in changes:
        name = changes["name"]
        if not isinstance(name, str) or not 1 <= len(name.strip()) <= 200:
            raise InvalidField("name must be 1 to 200 characters", param="name")
        values["name"] = name.strip()
    if "limit_micros" in changes:
        limit = changes["limit_micros"]
        if (
            not isinstance(limit, int)
            or isinstance(limit, bool)
            or not 0 < limit <= MAX_LIMIT_MICROS
        ):
            raise InvalidField(
                "limit_micros must be a positive whole number of micro-credits",
                param="limit_micros",
            )
        values["limit_micros"] = limit
    if "mode" in changes:
        if changes["mode"] not in BUDGET_MODES:
            raise InvalidField(f"mode must be one of {', '.join(BUDGET_MODES)}", param="mode")
        values["mode"] = changes["mode"]
    if "alert_thresholds" in changes:
        values["alert_thresholds"] = _thresholds(changes["alert_thresholds"])
    if "enabled" in changes:
        if not isinstance(changes["enabled"], bool):
            raise InvalidField("enabled must be true or false", param="enabled")
        values["enabled"] = changes["enabled"]
    return values


async def _check_scope(
    session: AsyncSession, org_id: uuid.UUID, scope: Any, scope_id: uuid.UUID
) -> None:
    """The target must belong to the caller's org, so a policy can never name another
    tenant's key or member (the same 404 as any unknown id)."""
    if scope not in BUDGET_SCOPES:
        raise InvalidField(f"scope must be one of {', '.join(BUDGET_SCOPES)}", param="scope")
    if scope in ("department", "cost_center"):
        await structure.resolve(session, scope, org_id, scope_id)
    elif scope == "member":
        if await enterprise_repo.member(session, org_id, scope_id) is None:
            raise NotFound("no such member in this org", param="scope_id")
    elif await keys_repo.get_key(session, org_id, scope_id) is None:
        raise NotFound("no such api key in this org", param="scope_id")


async def _views(session: AsyncSession, rows: list[Any]) -> list[PolicyView]:
    period = period_of()
    usage = await repo.usage_for(session, [r["id"] for r in rows], period)
    views = []
    for r in rows:
        used = usage.get(r["id"], NO_USAGE)
        views.append(PolicyView(r, period, used.spent_micros, used.reserved_micros))
    return views


async def list_policies(session: AsyncSession, ctx: OrgContext) -> list[PolicyView]:
    ctx.require("finance")
    return await _views(session, await repo.list_policies(session, ctx.org.id))


async def get_policy(session: AsyncSession, ctx: OrgContext, policy_id: uuid.UUID) -> PolicyView:
    ctx.require("finance")
    row = await repo.get_policy(session, ctx.org.id, policy_id)
    if row is None:
        raise NotFound("no such budget policy")
    return (await _views(session, [row]))[0]


async def create_policy(
    session: AsyncSession, ctx: OrgContext, changes: dict[str, Any]
) -> PolicyView:
    ctx.require("admin")
    for required in ("name", "scope", "scope_id", "limit_micros", "mode"):
        if changes.get(required) is None:
            raise InvalidField(f"{required} is required", param=required)
    unknown = set(changes) - {*EDITABLE, "scope", "scope_id"}
    if unknown:
        raise InvalidField(f"cannot set {', '.join(sorted(unknown))}")
    # The org first (the lock order in `domain.enterprise.service`): the scope's entity
    # cannot be deleted between this check and the insert.
    await enterprise_repo.lock_org(session, ctx.org.id)
    await _check_scope(session, ctx.org.id, changes["scope"], changes["scope_id"])
    values = _validate(changes)
    values.setdefault("alert_thresholds", [])
    row = await repo.insert_policy(
        session,
        {
            "id": uuid.uuid4(),
            "org_id": ctx.org.id,
            "scope": changes["scope"],
            "scope_id": changes["scope_id"],
            **values,
        },
    )
    await record(
        session, ctx.actor, "budget.created", org_id=ctx.org.id, target_type="budget",
        target_id=row["id"], after=_summary(row),
    )  # fmt: skip
    return (await _views(session, [row]))[0]


async def update_policy(
    session: AsyncSession, ctx: OrgContext, policy_id: uuid.UUID, changes: dict[str, Any]
) -> PolicyView:
    """Scope is fixed once made: a budget moved to another team would carry the first
    team's spend. Make a new policy instead."""
    ctx.require("admin")
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise InvalidField(
            f"cannot change {', '.join(sorted(unknown))} (scope is fixed; create a new policy)"
        )
    values = _validate(changes)
    await enterprise_repo.lock_org(session, ctx.org.id)
    before = await repo.get_policy(session, ctx.org.id, policy_id, lock=True)
    if before is None:
        raise NotFound("no such budget policy")
    values = {k: v for k, v in values.items() if before[k] != v}
    if not values:
        return (await _views(session, [before]))[0]
    row = await repo.update_policy(session, ctx.org.id, policy_id, values)
    await record(
        session, ctx.actor, "budget.updated", org_id=ctx.org.id, target_type="budget",
        target_id=policy_id, before=_summary(before), after=_summary(row),
    )  # fmt: skip
    return (await _views(session, [row]))[0]


async def delete_policy(session: AsyncSession, ctx: OrgContext, policy_id: uuid.UUID) -> None:
    """Pending holds that counted against it settle normally; its counters go with it."""
    ctx.require("admin")
    await enterprise_repo.lock_org(session, ctx.org.id)
    before = await repo.get_policy(session, ctx.org.id, policy_id, lock=True)
    if before is None:
        raise NotFound("no such budget policy")
    await repo.delete_policy(session, ctx.org.id, policy_id)
    await record(
        session, ctx.actor, "budget.deleted", org_id=ctx.org.id, target_type="budget",
        target_id=policy_id, before=_summary(before),
    )  # fmt: skip


async def list_alerts(
    session: AsyncSession, ctx: OrgContext, policy_id: uuid.UUID | None = None
) -> list[Any]:
    ctx.require("finance")
    if policy_id is not None and await repo.get_policy(session, ctx.org.id, policy_id) is None:
        raise NotFound("no such budget policy")
    return await repo.list_alerts(session, ctx.org.id, policy_id)
