"""Departments, cost centers and department policies of the caller's org.

Admins manage all three; finance may read cost centers (they head invoice lines). Policy
changes drop the relay's memo on this replica at once; others follow within a second.
"""

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, status
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
    archived_at: datetime | None = Field(
        default=None, description="set while archived: kept, but offered for nothing new"
    )


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
    archived_at: datetime | None = Field(
        default=None, description="set while archived: kept, but offered for nothing new"
    )


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


# --- departments and cost centers: one set of routes serving both ---------------------------


def _entity_routes(
    router: APIRouter,
    kind: str,
    *,
    one: Any,
    many: Any,
    create_body: Any,
    patch_body: Any,
    patch_verb: str,
) -> None:
    """List, create, read, change and delete one kind of org entity. `kind` is the
    service's ("department", "cost_center"); the route names and the id's name in the path
    are the ones each kind always had, so the OpenAPI document is unchanged.

    (Annotations here are evaluated when the routes are built, not postponed: FastAPI reads
    the body and id types of each kind from them.)"""
    plural = f"{kind}s"
    entity_id_type: Any = Annotated[uuid.UUID, Path(alias=f"{kind}_id")]

    async def list_all(ctx: OrgCtx, session: SessionDep) -> Any:
        rows = await structure.list_entities(session, kind, ctx)
        return many(data=[one.model_validate(dict(r)) for r in rows])

    async def create(body: create_body, ctx: OrgCtx, session: SessionDep) -> Any:
        row = await structure.create_entity(session, kind, ctx, body.model_dump())
        return one.model_validate(dict(row))

    async def read(entity_id: entity_id_type, ctx: OrgCtx, session: SessionDep) -> Any:
        row = await structure.get_entity(session, kind, ctx, entity_id)
        return one.model_validate(dict(row))

    async def change(
        entity_id: entity_id_type, body: patch_body, ctx: OrgCtx, session: SessionDep
    ) -> Any:
        changes = body.model_dump(exclude_unset=True)
        row = await structure.update_entity(session, kind, ctx, entity_id, changes)
        return one.model_validate(dict(row))

    async def delete(
        entity_id: entity_id_type, ctx: OrgCtx, session: SessionDep, resources: ResourcesDep
    ) -> None:
        await structure.delete_entity(session, kind, ctx, entity_id)
        after_commit(session, lambda: resources.relay.forget_org(ctx.org.id))

    def archiver(archived: bool) -> Any:
        async def set_archived(
            entity_id: entity_id_type, ctx: OrgCtx, session: SessionDep, resources: ResourcesDep
        ) -> Any:
            row = await structure.set_archived(session, kind, ctx, entity_id, archived)
            after_commit(session, lambda: resources.relay.forget_org(ctx.org.id))
            return one.model_validate(dict(row))

        return set_archived

    item = f"/{{{kind}_id}}"
    router.add_api_route("", list_all, methods=["GET"], response_model=many, name=f"list_{plural}")
    router.add_api_route(
        "", create, methods=["POST"], response_model=one, name=f"create_{kind}",
        status_code=status.HTTP_201_CREATED,
    )  # fmt: skip
    router.add_api_route(item, read, methods=["GET"], response_model=one, name=f"get_{kind}")
    router.add_api_route(
        item, change, methods=["PATCH"], response_model=one, name=f"{patch_verb}_{kind}"
    )
    router.add_api_route(
        item, delete, methods=["DELETE"], name=f"delete_{kind}",
        status_code=status.HTTP_204_NO_CONTENT,
        description="409 while members or budget policies still point at it.",
    )  # fmt: skip
    for verb, flag in (("archive", True), ("restore", False)):
        router.add_api_route(
            f"{item}/{verb}", archiver(flag), methods=["POST"], response_model=one,
            name=f"{verb}_{kind}",
            description="Archived: members, budgets and invoice lines keep it; new members, "
            "invites and budgets cannot name it (409)." if flag else "Undo archive.",
        )  # fmt: skip


_entity_routes(
    departments, "department", one=DepartmentOut, many=DepartmentList,
    create_body=DepartmentIn, patch_body=DepartmentIn, patch_verb="rename",
)  # fmt: skip
_entity_routes(
    cost_centers, "cost_center", one=CostCenterOut, many=CostCenterList,
    create_body=CostCenterIn, patch_body=CostCenterPatch, patch_verb="update",
)  # fmt: skip


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
