"""Budget policies: monthly credit limits on a department, member, key or cost center.

Amounts are integer micro-credits (1 credit = 1,000,000), like every other money field.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, status
from pydantic import BaseModel, Field

from api.auth import OrgCtx
from domain.budgets import service as budgets
from domain.inputs import Int64, PatchBody, Text
from domain.pricing.cost import format_credits
from edge.deps import ResourcesDep, SessionDep
from schema.unit_of_work import after_commit

router = APIRouter(prefix="/enterprise/v1/budgets", tags=["enterprise: budgets"])

Scope = Literal["department", "member", "key", "cost_center"]
Mode = Literal["hard", "soft"]


class BudgetOut(BaseModel):
    id: uuid.UUID
    name: str
    scope: str
    scope_id: uuid.UUID
    mode: str
    limit_micros: int
    limit_credits: str
    alert_thresholds: list[int]
    enabled: bool
    period: str = Field(description="the current month, UTC: YYYY-MM")
    spent_micros: int
    reserved_micros: int = Field(description="held by requests in flight")
    remaining_micros: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, view: budgets.PolicyView) -> BudgetOut:
        p = view.policy
        return cls(
            id=p["id"],
            name=p["name"],
            scope=p["scope"],
            scope_id=p["scope_id"],
            mode=p["mode"],
            limit_micros=p["limit_micros"],
            limit_credits=format_credits(p["limit_micros"]),
            alert_thresholds=list(p["alert_thresholds"]),
            enabled=p["enabled"],
            period=view.period.strftime("%Y-%m"),
            spent_micros=view.spent_micros,
            reserved_micros=view.reserved_micros,
            remaining_micros=view.remaining_micros,
            created_at=p["created_at"],
            updated_at=p["updated_at"],
        )


class BudgetList(BaseModel):
    data: list[BudgetOut]


Percent = Annotated[int, Field(ge=1, le=1000)]
Thresholds = Annotated[list[Percent], Field(max_length=budgets.MAX_THRESHOLDS)]


class BudgetIn(BaseModel):
    model_config = {"extra": "forbid"}

    name: Text = Field(max_length=200)
    scope: Scope
    scope_id: uuid.UUID = Field(description="a department, member (user id), key or cost center")
    limit_micros: Int64 = Field(
        gt=0, le=budgets.MAX_LIMIT_MICROS, description="the monthly limit, micro-credits"
    )
    mode: Mode = Field(description="hard: refuse past the limit; soft: alert only")
    alert_thresholds: Thresholds = Field(
        default_factory=lambda: [50, 80, 100],
        description="percentages of the limit recorded as alerts, once per month each",
    )
    enabled: bool = True


class BudgetPatch(PatchBody):
    name: Text | None = Field(default=None, max_length=200)
    limit_micros: Int64 | None = Field(default=None, gt=0, le=budgets.MAX_LIMIT_MICROS)
    mode: Mode | None = None
    alert_thresholds: Thresholds | None = None
    enabled: bool | None = None


class AlertOut(BaseModel):
    id: uuid.UUID
    policy_id: uuid.UUID
    period: date
    threshold_pct: int
    spent_micros: int
    limit_micros: int
    created_at: datetime


class AlertList(BaseModel):
    data: list[AlertOut]


@router.get("")
async def list_budgets(ctx: OrgCtx, session: SessionDep) -> BudgetList:
    return BudgetList(data=[BudgetOut.of(v) for v in await budgets.list_policies(session, ctx)])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    description=(
        "Hard budgets reserve each request's estimated cost before it is sent and refuse "
        "with 402 api_key_budget_exhausted when the month's limit would be passed."
    ),
)
async def create_budget(
    body: BudgetIn, ctx: OrgCtx, session: SessionDep, resources: ResourcesDep
) -> BudgetOut:
    view = await budgets.create_policy(session, ctx, body.model_dump())
    out = BudgetOut.of(view)
    after_commit(session, lambda: resources.relay.forget_org(ctx.org.id))
    return out


@router.get("/alerts", description="Every alert of the org, newest first (at most 200).")
async def list_all_alerts(ctx: OrgCtx, session: SessionDep) -> AlertList:
    rows = await budgets.list_alerts(session, ctx)
    return AlertList(data=[AlertOut.model_validate(dict(r)) for r in rows])


@router.get("/{policy_id}")
async def get_budget(policy_id: uuid.UUID, ctx: OrgCtx, session: SessionDep) -> BudgetOut:
    return BudgetOut.of(await budgets.get_policy(session, ctx, policy_id))


@router.patch("/{policy_id}", description="Scope cannot change; make a new policy instead.")
async def update_budget(
    policy_id: uuid.UUID,
    body: BudgetPatch,
    ctx: OrgCtx,
    session: SessionDep,
    resources: ResourcesDep,
) -> BudgetOut:
    changes: dict[str, Any] = body.model_dump(exclude_unset=True)
    view = await budgets.update_policy(session, ctx, policy_id, changes)
    out = BudgetOut.of(view)
    after_commit(session, lambda: resources.relay.forget_org(ctx.org.id))
    return out


@router.delete("/{policy_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_budget(
    policy_id: uuid.UUID, ctx: OrgCtx, session: SessionDep, resources: ResourcesDep
) -> None:
    await budgets.delete_policy(session, ctx, policy_id)
    after_commit(session, lambda: resources.relay.forget_org(ctx.org.id))


@router.get("/{policy_id}/alerts")
async def list_alerts(policy_id: uuid.UUID, ctx: OrgCtx, session: SessionDep) -> AlertList:
    rows = await budgets.list_alerts(session, ctx, policy_id)
    return AlertList(data=[AlertOut.model_validate(dict(r)) for r in rows])
