"""Departments, cost centers and department policies of the caller's org.

Admins manage all three; finance may read cost centers (they head invoice lines). Policy
changes drop the relay's memo on this replica at once; others follow within a second.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, status
from pydantic import BaseModel, Field

from api.auth import OrgCtx
from domain.enterprise import structure
from domain.inputs import ModelName, PatchBody, Text
from edge.deps import ResourcesDep, SessionDep
from schema.unit_of_work import after_commit

departments = APIRouter(prefix="/enterprise/v1/departments", tags=["enterprise: departments"])
cost_centers = APIRouter(prefix="/enterprise/v1/cost-centers", tags=["enterprise: cost centers"])
policies = APIRouter(prefix="/enterprise/v1/policies", tags=["enterprise: policies"])

ContentLogging = Literal["key", "disabled", "enabled"]


class DepartmentOut(BaseModel):
    id: uuid.UUID
    name: str
    model_allowlist: list[str] | None
    content_logging: str
    created_at: datetime
    updated_at: datetime


class DepartmentList(BaseModel):
    data: list[DepartmentOut]


class DepartmentIn(BaseModel):
    model_config = {"extra": "forbid"}

    name: Text = Field(max_length=200)


class CostCenterOut(BaseModel):
    id: uuid.UUID
    code: str
    name: str | None
    created_at: datetime


class CostCenterList(BaseModel):
    data: list[CostCenterOut]


class CostCenterIn(BaseModel):
    model_config = {"extra": "forbid"}

    code: Text = Field(max_length=200, description="what invoices show, e.g. CC-1001")
    name: Text | None = Field(default=None, max_length=200)


class CostCenterPatch(PatchBody):
    """`null` clears the display name; the code always has a value."""

    nullable = frozenset({"name"})

    code: Text | None = Field(default=None, max_length=200)
    name: Text | None = Field(default=None, max_length=200)


class PolicyOut(BaseModel):
    department_id: uuid.UUID
    department: str
    model_allowlist: list[str] | None = Field(
        description="null: every model the key allows; a list narrows it; [] blocks all"
    )
    content_logging: str = Field(
        description="key: each key's log_content decides; disabled: never; enabled: always"
    )


class PolicyList(BaseModel):
    data: list[PolicyOut]


class PolicyIn(PatchBody):
    """`model_allowlist: null` lifts the department's limit; `content_logging` always has a
    value."""

    nullable = frozenset({"model_allowlist"})

    model_allowlist: list[ModelName] | None = Field(
        default=None, max_length=structure.MAX_ALLOWLIST
    )
    content_logging: ContentLogging | None = None


def _policy(row: Any) -> PolicyOut:
    return PolicyOut(
        department_id=row["id"],
        department=row["name"],
        model_allowlist=row["model_allowlist"],
        content_logging=row["content_logging"],
    )


# --- departments ---------------------------------------------------------------------------


@departments.get("")
async def list_departments(ctx: OrgCtx, session: SessionDep) -> DepartmentList:
    rows = await structure.list_entities(session, "department", ctx)
    return DepartmentList(data=[DepartmentOut.model_validate(dict(r)) for r in rows])


@departments.post("", status_code=status.HTTP_201_CREATED)
async def create_department(body: DepartmentIn, ctx: OrgCtx, session: SessionDep) -> DepartmentOut:
    row = await structure.create_entity(session, "department", ctx, body.model_dump())
    out = DepartmentOut.model_validate(dict(row))
    return out


@departments.get("/{department_id}")
async def get_department(
    department_id: uuid.UUID, ctx: OrgCtx, session: SessionDep
) -> DepartmentOut:
    row = await structure.get_entity(session, "department", ctx, department_id)
    return DepartmentOut.model_validate(dict(row))


@departments.patch("/{department_id}")
async def rename_department(
    department_id: uuid.UUID, body: DepartmentIn, ctx: OrgCtx, session: SessionDep
) -> DepartmentOut:
    row = await structure.update_entity(
        session, "department", ctx, department_id, body.model_dump()
    )
    out = DepartmentOut.model_validate(dict(row))
    return out


@departments.delete(
    "/{department_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    description="409 while members or budget policies still point at it.",
)
async def delete_department(
    department_id: uuid.UUID, ctx: OrgCtx, session: SessionDep, resources: ResourcesDep
) -> None:
    await structure.delete_entity(session, "department", ctx, department_id)
    after_commit(session, lambda: resources.relay.forget_org(ctx.org.id))


# --- cost centers --------------------------------------------------------------------------


@cost_centers.get("")
async def list_cost_centers(ctx: OrgCtx, session: SessionDep) -> CostCenterList:
    rows = await structure.list_entities(session, "cost_center", ctx)
    return CostCenterList(data=[CostCenterOut.model_validate(dict(r)) for r in rows])


@cost_centers.post("", status_code=status.HTTP_201_CREATED)
async def create_cost_center(body: CostCenterIn, ctx: OrgCtx, session: SessionDep) -> CostCenterOut:
    row = await structure.create_entity(session, "cost_center", ctx, body.model_dump())
    out = CostCenterOut.model_validate(dict(row))
    return out


@cost_centers.get("/{cost_center_id}")
async def get_cost_center(
    cost_center_id: uuid.UUID, ctx: OrgCtx, session: SessionDep
) -> CostCenterOut:
    row = await structure.get_entity(session, "cost_center", ctx, cost_center_id)
    return CostCenterOut.model_validate(dict(row))


@cost_centers.patch("/{cost_center_id}")
async def update_cost_center(
    cost_center_id: uuid.UUID, body: CostCenterPatch, ctx: OrgCtx, session: SessionDep
) -> CostCenterOut:
    changes = body.model_dump(exclude_unset=True)
    row = await structure.update_entity(session, "cost_center", ctx, cost_center_id, changes)
    out = CostCenterOut.model_validate(dict(row))
    return out


@cost_centers.delete(
    "/{cost_center_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    description="409 while members or budget policies still point at it.",
)
async def delete_cost_center(
    cost_center_id: uuid.UUID, ctx: OrgCtx, session: SessionDep, resources: ResourcesDep
) -> None:
    await structure.delete_entity(session, "cost_center", ctx, cost_center_id)
    after_commit(session, lambda: resources.relay.forget_org(ctx.org.id))


# --- department policies -------------------------------------------------------------------


@policies.get("", description="The model and content-logging policy of every department.")
async def list_policies(ctx: OrgCtx, session: SessionDep) -> PolicyList:
    rows = await structure.list_entities(session, "department", ctx)
    return PolicyList(data=[_policy(r) for r in rows])


@policies.get("/{department_id}")
async def get_policy(department_id: uuid.UUID, ctx: OrgCtx, session: SessionDep) -> PolicyOut:
    return _policy(await structure.get_entity(session, "department", ctx, department_id))


@policies.patch(
    "/{department_id}",
    description=(
        "Enforced on /v1 for keys created by the department's members: a model outside the "
        "allowlist gets 403 model_not_allowed, and content logging follows the rule."
    ),
)
async def set_policy(
    department_id: uuid.UUID,
    body: PolicyIn,
    ctx: OrgCtx,
    session: SessionDep,
    resources: ResourcesDep,
) -> PolicyOut:
    changes = body.model_dump(exclude_unset=True)
    row = await structure.set_policy(session, ctx, department_id, changes)
    out = _policy(row)
    after_commit(session, lambda: resources.relay.forget_org(ctx.org.id))
    return out
