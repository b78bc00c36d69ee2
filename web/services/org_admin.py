"""What the org administration pages show, gathered from the same domain services as
`/enterprise/v1` (never through HTTP): members with their invites, departments and cost
centers with the people in each."""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from domain.enterprise import invites, structure
from domain.enterprise import service as enterprise
from domain.enterprise.repository import Member
from domain.identity.service import ROLE_RANK, OrgContext

ROLE_HELP = {
    "owner": "everything, including making owners",
    "admin": "members, structure, budgets, policies, keys",
    "finance": "invoices and spend",
    "member": "their own keys and usage",
}


@dataclass(frozen=True)
class Entity:
    """A department or cost center with the people in it."""

    id: uuid.UUID
    label: str  # a department's name, a cost center's code
    name: str | None  # a cost center's display name
    archived: bool
    row: Any
    members: list[Member] = field(default_factory=list)


@dataclass(frozen=True)
class MembersView:
    members: list[Member]
    invites: list[invites.Invite]
    departments: list[Entity]
    cost_centers: list[Entity]
    roles: list[str]  # the roles this viewer may grant

    @property
    def seats_used(self) -> int:
        return len(self.members)


def grantable_roles(ctx: OrgContext) -> list[str]:
    ranked = sorted(ROLE_RANK, key=ROLE_RANK.__getitem__)
    return [r for r in ranked if r != "owner" or ctx.at_least("owner")]


async def entities(
    session: AsyncSession, ctx: OrgContext, kind: str, members: list[Member] | None = None
) -> list[Entity]:
    rows = await structure.list_entities(session, kind, ctx)
    people: dict[uuid.UUID, list[Member]] = defaultdict(list)
    for m in members or []:
        entity_id = m.department_id if kind == "department" else m.cost_center_id
        if entity_id is not None:
            people[entity_id].append(m)
    label = "name" if kind == "department" else "code"
    return [
        Entity(
            r["id"],
            r[label],
            r["name"] if kind == "cost_center" else None,
            r["archived_at"] is not None,
            r,
            people[r["id"]],
        )
        for r in rows
    ]


async def members_view(session: AsyncSession, ctx: OrgContext) -> MembersView:
    people = await enterprise.list_members(session, ctx)
    return MembersView(
        members=people,
        invites=await invites.open_invites(session, ctx),
        departments=await entities(session, ctx, "department", people),
        cost_centers=await entities(session, ctx, "cost_center", people),
        roles=grantable_roles(ctx),
    )
