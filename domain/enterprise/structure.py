"""Departments, cost centers and department policies: the org's structure, admins only.

Anything still pointing at a department or cost center (members, budget policies) keeps it
from being deleted: removing it silently would move spend out from under a budget or an
invoice line. Every change is audited.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from domain.audit.service import record
from domain.budgets import repository as budget_repo
from domain.enterprise import repository as org_repo
from domain.enterprise import structure_repository as repo
from domain.errors import Conflict, InvalidField, NotFound
from domain.identity.service import OrgContext
from domain.pricing import repository as pricing_repo
from schema.org_structure import CONTENT_LOGGING

MAX_ALLOWLIST = 500
NOUN = {"department": "department", "cost_center": "cost center"}
# Who may read each kind: cost centers head invoice lines, so finance reads them too.
READ_ROLE = {"department": "admin", "cost_center": "finance"}


def _label(value: Any, param: str, *, required: bool) -> str | None:
    if value is None:
        if required:
            raise InvalidField(f"{param} is required", param=param)
        return None
    if not isinstance(value, str):
        raise InvalidField(f"{param} must be a string", param=param)
    cleaned = value.strip()
    if required and not cleaned:
        raise InvalidField(f"{param} must not be blank", param=param)
    if len(cleaned) > 200:
        raise InvalidField(f"{param} must be at most 200 characters", param=param)
    return cleaned or None


def summary(kind: str, row: Any) -> dict[str, Any]:
    if kind == "department":
        return {
            "name": row["name"],
            "model_allowlist": row["model_allowlist"],
            "content_logging": row["content_logging"],
        }
    return {"code": row["code"], "name": row["name"]}


async def _require(session: AsyncSession, kind: str, ctx: OrgContext, entity_id: uuid.UUID) -> Any:
    """The entity, locked after its org (the lock order in `domain.enterprise.service`)."""
    await org_repo.lock_org(session, ctx.org.id)
    found = await repo.get(session, kind, ctx.org.id, entity_id, lock=True)
    if found is None:
        raise NotFound(f"no such {NOUN[kind]}")
    return found


async def resolve(
    session: AsyncSession, kind: str, org_id: uuid.UUID, entity_id: uuid.UUID | None
) -> uuid.UUID | None:
    """An id given for a member, invite or policy must name an entity of the same org (else
    404) that is not archived (else 409)."""
    if entity_id is None:
        return None
    found = await repo.get(session, kind, org_id, entity_id)
    if found is None:
        raise NotFound(f"no such {NOUN[kind]} in this org", param=f"{kind}_id")
    if found["archived_at"] is not None:
        raise Conflict(f"this {NOUN[kind]} is archived; restore it first", param=f"{kind}_id")
    return entity_id


async def list_entities(session: AsyncSession, kind: str, ctx: OrgContext) -> list[Any]:
    ctx.require(READ_ROLE[kind])
    return await repo.list_all(session, kind, ctx.org.id)


async def get_entity(
    session: AsyncSession, kind: str, ctx: OrgContext, entity_id: uuid.UUID
) -> Any:
    ctx.require(READ_ROLE[kind])
    found = await repo.get(session, kind, ctx.org.id, entity_id)
    if found is None:
        raise NotFound(f"no such {NOUN[kind]}")
    return found


def _values(kind: str, changes: dict[str, Any], *, creating: bool) -> dict[str, Any]:
    allowed = {"department": ("name",), "cost_center": ("code", "name")}[kind]
    unknown = set(changes) - set(allowed)
    if unknown:
        raise InvalidField(f"cannot set {', '.join(sorted(unknown))}")
    values: dict[str, Any] = {}
    required = "name" if kind == "department" else "code"
    if creating or required in changes:
        values[required] = _label(changes.get(required), required, required=True)
    if kind == "cost_center" and "name" in changes:
        values["name"] = _label(changes["name"], "name", required=False)
    return values


async def create_entity(
    session: AsyncSession, kind: str, ctx: OrgContext, changes: dict[str, Any]
) -> Any:
    ctx.require("admin")
    values = _values(kind, changes, creating=True)
    await org_repo.lock_org(session, ctx.org.id)
    try:
        row = await repo.insert_one(
            session, kind, {"id": uuid.uuid4(), "org_id": ctx.org.id, **values}
        )
    except repo.DuplicateName as exc:
        raise Conflict(f"this org already has a {NOUN[kind]} with that name") from exc
    await record(
        session, ctx.actor, f"{kind}.created", org_id=ctx.org.id, target_type=kind,
        target_id=row["id"], after=summary(kind, row),
    )  # fmt: skip
    return row


async def update_entity(
    session: AsyncSession, kind: str, ctx: OrgContext, entity_id: uuid.UUID, changes: dict[str, Any]
) -> Any:
    ctx.require("admin")
    values = _values(kind, changes, creating=False)
    before = await _require(session, kind, ctx, entity_id)
    values = {k: v for k, v in values.items() if before[k] != v}
    if not values:
        return before
    try:
        row = await repo.update_one(session, kind, ctx.org.id, entity_id, values)
    except repo.DuplicateName as exc:
        raise Conflict(f"this org already has a {NOUN[kind]} with that name") from exc
    await record(
        session, ctx.actor, f"{kind}.updated", org_id=ctx.org.id, target_type=kind,
        target_id=entity_id, before=summary(kind, before), after=summary(kind, row),
    )  # fmt: skip
    return row


async def delete_entity(
    session: AsyncSession, kind: str, ctx: OrgContext, entity_id: uuid.UUID
) -> None:
    ctx.require("admin")
    before = await _require(session, kind, ctx, entity_id)
    members = await repo.member_count(session, kind, ctx.org.id, entity_id)
    policies = await budget_repo.policies_scoped_to(session, ctx.org.id, entity_id)
    if members or policies:
        raise Conflict(
            f"this {NOUN[kind]} still has {members} member(s) and {policies} budget policy(ies);"
            " reassign or delete them first"
        )
    await repo.delete_one(session, kind, ctx.org.id, entity_id)
    await record(
        session, ctx.actor, f"{kind}.deleted", org_id=ctx.org.id, target_type=kind,
        target_id=entity_id, before=summary(kind, before),
    )  # fmt: skip


async def set_archived(
    session: AsyncSession, kind: str, ctx: OrgContext, entity_id: uuid.UUID, archived: bool
) -> Any:
    """Archiving keeps the entity for its members, budgets and invoice lines, and offers it
    for nothing new (`resolve` refuses it); restoring undoes that."""
    ctx.require("admin")
    before = await _require(session, kind, ctx, entity_id)
    if (before["archived_at"] is not None) == archived:
        return before
    row = await repo.set_archived(session, kind, ctx.org.id, entity_id, archived)
    await record(
        session, ctx.actor, f"{kind}.{'archived' if archived else 'restored'}",
        org_id=ctx.org.id, target_type=kind, target_id=entity_id,
        before={**summary(kind, before), "archived": not archived},
        after={**summary(kind, row), "archived": archived},
    )  # fmt: skip
    return row


# --- department policies -------------------------------------------------------------------


async def _clean_allowlist(session: AsyncSession, value: Any) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(m, str) and m.strip() for m in value):
        raise InvalidField("model_allowlist must be a list of model names", param="model_allowlist")
    names = sorted({m.strip() for m in value})
    if len(names) > MAX_ALLOWLIST:
        raise InvalidField(
            f"model_allowlist holds at most {MAX_ALLOWLIST} models", param="model_allowlist"
        )
    for name in names:
        if await pricing_repo.get_model(session, name) is None:
            raise InvalidField(f"unknown model {name!r}", param="model_allowlist")
    return names


async def set_policy(
    session: AsyncSession, ctx: OrgContext, department_id: uuid.UUID, changes: dict[str, Any]
) -> Any:
    """`model_allowlist`: null allows every model the key allows; a list narrows it (an
    empty list blocks all). `content_logging`: key | disabled | enabled."""
    ctx.require("admin")
    unknown = set(changes) - {"model_allowlist", "content_logging"}
    if unknown:
        raise InvalidField(f"cannot set {', '.join(sorted(unknown))}")
    values: dict[str, Any] = {}
    if "model_allowlist" in changes:
        values["model_allowlist"] = await _clean_allowlist(session, changes["model_allowlist"])
    if "content_logging" in changes:
        if changes["content_logging"] not in CONTENT_LOGGING:
            raise InvalidField(
                f"content_logging must be one of {', '.join(CONTENT_LOGGING)}",
                param="content_logging",
            )
        values["content_logging"] = changes["content_logging"]
    before = await _require(session, "department", ctx, department_id)
    values = {k: v for k, v in values.items() if before[k] != v}
    if not values:
        return before
    row = await repo.update_one(session, "department", ctx.org.id, department_id, values)
    await record(
        session, ctx.actor, "policy.updated", org_id=ctx.org.id, target_type="department",
        target_id=department_id, before=summary("department", before),
        after=summary("department", row),
    )  # fmt: skip
    return row
