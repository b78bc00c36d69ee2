"""The budgets page: each policy with what it reaches and this month's spend, and the
alert events, from `domain.budgets.service` (the service `/enterprise/v1/budgets` uses).

Bar widths are whole per-mille of the limit, computed in integers (never floats) and drawn
as SVG rect widths, which the page's CSP allows where inline styles are refused.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from domain.budgets import service as budgets
from domain.enterprise import service as enterprise
from domain.identity.service import OrgContext
from domain.keys import service as keys
from web.services.org_admin import entities

SCOPE_LABELS = {
    "department": "Department",
    "cost_center": "Cost center",
    "member": "Member",
    "key": "API key",
}


@dataclass(frozen=True)
class Target:
    value: str  # "<scope>:<id>", what the form sends
    scope: str
    label: str


@dataclass(frozen=True)
class PolicyRow:
    view: budgets.PolicyView
    target: str  # who or what it limits, for people

    @property
    def policy(self) -> Any:
        return self.view.policy

    @property
    def limit(self) -> int:
        limit: int = self.policy["limit_micros"]
        return limit

    def permille(self, micros: int) -> int:
        return min(1000, micros * 1000 // self.limit) if self.limit else 0

    @property
    def spent_permille(self) -> int:
        return self.permille(self.view.spent_micros)

    @property
    def reserved_permille(self) -> int:
        return min(self.permille(self.view.reserved_micros), 1000 - self.spent_permille)

    @property
    def used_percent(self) -> int:
        used = self.view.spent_micros + self.view.reserved_micros
        return used * 100 // self.limit if self.limit else 0

    @property
    def exhausted(self) -> bool:
        return self.view.remaining_micros == 0

    @property
    def thresholds(self) -> str:
        return ", ".join(str(p) for p in self.policy["alert_thresholds"])


@dataclass(frozen=True)
class Alert:
    row: Any
    policy: str


@dataclass(frozen=True)
class BudgetsView:
    policies: list[PolicyRow]
    alerts: list[Alert]
    targets: dict[str, list[Target]]  # by scope, for the form


async def budgets_view(session: AsyncSession, ctx: OrgContext) -> BudgetsView:
    people = await enterprise.list_members(session, ctx)
    targets: dict[str, list[Target]] = {scope: [] for scope in SCOPE_LABELS}
    names: dict[uuid.UUID, str] = {}
    for kind in ("department", "cost_center"):
        for e in await entities(session, ctx, kind):
            names[e.id] = e.label
            if not e.archived:
                targets[kind].append(Target(f"{kind}:{e.id}", kind, e.label))
    for m in people:
        names[m.user_id] = m.email
        targets["member"].append(Target(f"member:{m.user_id}", "member", m.email))
    for key in await keys.list_keys(session, ctx):
        label = f"{key.name} ({key.prefix}…)"
        names[key.id] = label
        if key.revoked_at is None:
            targets["key"].append(Target(f"key:{key.id}", "key", label))
    rows = [
        PolicyRow(
            view,
            f"{SCOPE_LABELS[view.policy['scope']]}: "
            f"{names.get(view.policy['scope_id'], 'removed')}",
        )
        for view in await budgets.list_policies(session, ctx)
    ]
    by_id = {r.policy["id"]: r.policy["name"] for r in rows}
    alerts = [
        Alert(a, by_id.get(a["policy_id"], "deleted policy"))
        for a in await budgets.list_alerts(session, ctx)
    ]
    return BudgetsView(rows, alerts, targets)
