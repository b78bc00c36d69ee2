"""An org with one user per role, built over the HTTP API."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import httpx
from sqlalchemy import text

from config.runtime import Resources
from tests.fixtures.portal import PortalUser, signup


@dataclass
class Org:
    id: uuid.UUID
    owner: PortalUser
    admin: PortalUser
    finance: PortalUser
    member: PortalUser

    def h(self, user: PortalUser) -> dict[str, str]:
        return user.headers(self.id)


async def add(
    client: httpx.AsyncClient,
    org_id: uuid.UUID,
    by: PortalUser,
    user: PortalUser,
    role: str,
    **fields: str,
) -> httpx.Response:
    return await client.post(
        "/enterprise/v1/members",
        json={"email": user.email, "role": role, **fields},
        headers=by.headers(org_id),
    )


async def make_org(client: httpx.AsyncClient) -> Org:
    """The owner's signup org plays the company; the others join it by email."""
    owner = await signup(client)
    others = {}
    for role in ("admin", "finance", "member"):
        user = await signup(client)
        resp = await add(client, owner.org_id, owner, user, role)
        assert resp.status_code == 201, resp.text
        others[role] = user
    return Org(owner.org_id, owner, others["admin"], others["finance"], others["member"])


async def audit_actions(resources: Resources, org_id: uuid.UUID) -> list[str]:
    async with resources.sessions() as s:
        rows = await s.execute(
            text("SELECT action FROM audit_events WHERE org_id = :o ORDER BY id"), {"o": org_id}
        )
        return [r[0] for r in rows]


async def make_entity(client: httpx.AsyncClient, org: Org, kind: str, label: str) -> str:
    """A department (kind "departments", named) or cost center ("cost-centers", coded)."""
    field = "name" if kind == "departments" else "code"
    resp = await client.post(
        f"/enterprise/v1/{kind}", json={field: label}, headers=org.h(org.admin)
    )
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])
