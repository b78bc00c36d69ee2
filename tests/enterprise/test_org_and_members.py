"""Org settings and membership: the role matrix, tenant isolation, owner rules, audit."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from config.runtime import Resources
from domain.enterprise import service as enterprise
from domain.errors import Conflict
from domain.identity import repository as identity_repo
from domain.identity import service as identity
from domain.identity.service import OrgContext
from tests.enterprise.helpers import add, audit_actions, make_entity, make_org
from tests.fixtures.conditions import backend_pid, until_waiting_on_a_lock
from tests.fixtures.portal import signup

MONTH = "2026-01"


async def _call(
    client: httpx.AsyncClient, method: str, path: str, headers: dict[str, str], target: str
) -> httpx.Response:
    bodies = {
        "PATCH /enterprise/v1/org": {"name": "Renamed"},
        "POST /enterprise/v1/members": {"email": "nobody@example.com", "role": "member"},
        "PATCH /enterprise/v1/members/{t}": {"department_id": None},
    }
    body = bodies.get(f"{method} {path}")
    return await client.request(method, path.replace("{t}", target), json=body, headers=headers)


ENDPOINTS = [
    ("GET", "/enterprise/v1/org", "finance"),
    ("PATCH", "/enterprise/v1/org", "admin"),
    ("GET", "/enterprise/v1/members", "admin"),
    ("POST", "/enterprise/v1/members", "admin"),
    ("PATCH", "/enterprise/v1/members/{t}", "admin"),
    ("DELETE", "/enterprise/v1/members/{t}", "admin"),
    ("GET", f"/enterprise/v1/invoices/{MONTH}", "finance"),
    ("GET", f"/enterprise/v1/invoices/{MONTH}.csv", "finance"),
]
RANK = {"member": 0, "finance": 1, "admin": 2, "owner": 3}


async def test_role_matrix(client: httpx.AsyncClient) -> None:
    org = await make_org(client)
    users = {"member": org.member, "finance": org.finance, "admin": org.admin, "owner": org.owner}
    for method, path, needed in ENDPOINTS:
        for role, user in users.items():
            # A throwaway member is the target of PATCH/DELETE, so allowed calls succeed.
            victim = await signup(client)
            assert (await add(client, org.id, org.owner, victim, "member")).status_code == 201
            resp = await _call(client, method, path, org.h(user), str(victim.user_id))
            allowed = RANK[role] >= RANK[needed]
            if not allowed:
                assert resp.status_code == 403, (method, path, role, resp.text)
                assert resp.json()["error"]["code"] == "permission_denied"
            elif method == "POST":
                assert resp.status_code == 404, (method, path, role, resp.text)  # no such user
            else:
                assert resp.status_code in (200, 204), (method, path, role, resp.text)


async def test_other_orgs_admin_sees_nothing(client: httpx.AsyncClient) -> None:
    org = await make_org(client)
    outsider = await signup(client)  # owner (so admin+) of their own org only
    for method, path, _ in ENDPOINTS:
        resp = await _call(client, method, path, outsider.headers(org.id), str(org.member.user_id))
        assert resp.status_code == 404, (method, path, resp.text)
    # In their own org, this org's user ids do not exist.
    mine = outsider.headers(outsider.org_id)
    for method in ("PATCH", "DELETE"):
        resp = await _call(
            client, method, "/enterprise/v1/members/{t}", mine, str(org.member.user_id)
        )
        assert resp.status_code == 404, resp.text
    resp = await _call(client, "PATCH", "/enterprise/v1/members/{t}", mine, str(uuid.uuid4()))
    assert resp.status_code == 404
    listed = await client.get("/enterprise/v1/members", headers=mine)
    assert [m["user_id"] for m in listed.json()["data"]] == [str(outsider.user_id)]
    # ...and nothing changed in the victim org.
    members = await client.get("/enterprise/v1/members", headers=org.h(org.owner))
    roles = {m["user_id"]: m["role"] for m in members.json()["data"]}
    assert roles[str(org.member.user_id)] == "member"
    assert (await client.get("/enterprise/v1/org", headers=org.h(org.owner))).json()[
        "name"
    ] == "Personal"


async def test_org_settings_patch(client: httpx.AsyncClient, resources: Resources) -> None:
    org = await make_org(client)
    resp = await client.patch(
        "/enterprise/v1/org",
        json={"name": "Acme", "power_level": "eco", "retention_days": 90, "byok_fallback": True},
        headers=org.h(org.admin),
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["name"], body["power_level"], body["retention_days"], body["byok_fallback"]) == (
        "Acme", "eco", 90, True,
    )  # fmt: skip
    got = await client.get("/enterprise/v1/org", headers=org.h(org.finance))
    assert got.json() == body
    for bad in ({"retention_days": 0}, {"retention_days": 3651}, {"power_level": "turbo"}):
        resp = await client.patch("/enterprise/v1/org", json=bad, headers=org.h(org.admin))
        assert resp.status_code == 400, bad
    tier = await client.patch(
        "/enterprise/v1/org", json={"tier": "enterprise"}, headers=org.h(org.owner)
    )
    assert tier.status_code == 403
    assert (await client.get("/enterprise/v1/org", headers=org.h(org.owner))).json()[
        "tier"
    ] == "free"
    async with resources.sessions() as s:
        row = (
            await s.execute(
                text(
                    "SELECT before, after FROM audit_events"
                    " WHERE org_id = :o AND action = 'org.updated'"
                ),
                {"o": org.id},
            )
        ).one()
    assert row.before["name"] == "Personal" and row.after["name"] == "Acme"
    assert row.after["power_level"] == "eco"


async def test_add_member_rules(client: httpx.AsyncClient, resources: Resources) -> None:
    org = await make_org(client)
    newbie = await signup(client)
    missing = await client.post(
        "/enterprise/v1/members",
        json={"email": "ghost@example.com", "role": "member"},
        headers=org.h(org.admin),
    )
    assert missing.status_code == 404
    again = await add(client, org.id, org.admin, org.member, "member")
    assert again.status_code == 409
    # The pre-0004 free-text fields are refused, not silently dropped.
    legacy = await add(client, org.id, org.admin, newbie, "member", department="R&D")
    assert legacy.status_code == 400, legacy.text
    # Admins cannot create owners; owners can.
    assert (await add(client, org.id, org.admin, newbie, "owner")).status_code == 403
    dept = await make_entity(client, org, "departments", "R&D")
    cc = await make_entity(client, org, "cost-centers", "cc-1")
    made = await add(
        client, org.id, org.owner, newbie, "owner", department_id=dept, cost_center_id=cc
    )
    assert made.status_code == 201, made.text
    assert made.json()["role"] == "owner" and made.json()["cost_center"] == "cc-1"
    assert made.json()["department"] == "R&D" and made.json()["department_id"] == dept
    # Email lookup is case-insensitive.
    other = await signup(client)
    resp = await client.post(
        "/enterprise/v1/members",
        json={"email": other.email.upper(), "role": "finance"},
        headers=org.h(org.admin),
    )
    assert resp.status_code == 201, resp.text
    # The new member now acts in the org with the granted role.
    assert (await client.get("/enterprise/v1/org", headers=org.h(other))).status_code == 200
    assert (await client.get("/enterprise/v1/members", headers=org.h(other))).status_code == 403
    assert (await audit_actions(resources, org.id)).count("member.added") == 5


async def test_owner_rules_and_last_owner(client: httpx.AsyncClient, resources: Resources) -> None:
    org = await make_org(client)
    owner_id = str(org.owner.user_id)
    # The only owner can neither be demoted nor removed, even by themself.
    demote = await client.patch(
        f"/enterprise/v1/members/{owner_id}", json={"role": "admin"}, headers=org.h(org.owner)
    )
    assert demote.status_code == 409, demote.text
    remove = await client.delete(f"/enterprise/v1/members/{owner_id}", headers=org.h(org.owner))
    assert remove.status_code == 409
    # Admins may not touch owners or grant ownership.
    for resp in (
        await client.patch(
            f"/enterprise/v1/members/{owner_id}", json={"role": "member"}, headers=org.h(org.admin)
        ),
        await client.delete(f"/enterprise/v1/members/{owner_id}", headers=org.h(org.admin)),
        await client.patch(
            f"/enterprise/v1/members/{org.admin.user_id}",
            json={"role": "owner"},
            headers=org.h(org.admin),
        ),
    ):
        assert resp.status_code == 403, resp.text
    # Admins do manage non-owners.
    resp = await client.patch(
        f"/enterprise/v1/members/{org.member.user_id}",
        json={
            "role": "finance",
            "cost_center_id": await make_entity(client, org, "cost-centers", "ops"),
        },
        headers=org.h(org.admin),
    )
    assert resp.status_code == 200 and resp.json()["role"] == "finance"
    cleared = await client.patch(
        f"/enterprise/v1/members/{org.member.user_id}",
        json={"cost_center_id": None},
        headers=org.h(org.admin),
    )
    assert cleared.json()["cost_center"] is None
    # With a second owner, the first may step down; then the second is the last one.
    promote = await client.patch(
        f"/enterprise/v1/members/{org.admin.user_id}",
        json={"role": "owner"},
        headers=org.h(org.owner),
    )
    assert promote.status_code == 200, promote.text
    step_down = await client.patch(
        f"/enterprise/v1/members/{owner_id}", json={"role": "admin"}, headers=org.h(org.owner)
    )
    assert step_down.status_code == 200, step_down.text
    new_owner = str(org.admin.user_id)
    last = await client.delete(f"/enterprise/v1/members/{new_owner}", headers=org.h(org.admin))
    assert last.status_code == 409
    gone = await client.delete(
        f"/enterprise/v1/members/{org.finance.user_id}", headers=org.h(org.admin)
    )
    assert gone.status_code == 204
    assert (await client.get("/enterprise/v1/org", headers=org.h(org.finance))).status_code == 404
    actions = await audit_actions(resources, org.id)
    assert actions.count("member.updated") == 4
    assert actions.count("member.removed") == 1
    async with resources.sessions() as s:
        owners = (
            await s.execute(
                text("SELECT count(*) FROM memberships WHERE org_id = :o AND role = 'owner'"),
                {"o": org.id},
            )
        ).scalar_one()
    assert owners == 1


@pytest.mark.parametrize("month", ["2026-13", "2026-1", "26-01", "2026-00"])
async def test_bad_month(client: httpx.AsyncClient, month: str) -> None:
    org = await make_org(client)
    resp = await client.get(f"/enterprise/v1/invoices/{month}", headers=org.h(org.finance))
    assert resp.status_code == 400


async def test_concurrent_demotions_keep_one_owner(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    """Two owners step down at once: the second waits on the org row lock, then sees it
    would leave no owner. Without the lock both would count two owners and succeed."""
    org = await make_org(client)
    promote = await client.patch(
        f"/enterprise/v1/members/{org.admin.user_id}",
        json={"role": "owner"},
        headers=org.h(org.owner),
    )
    assert promote.status_code == 200

    async def ctx_of(s: AsyncSession, user_id: uuid.UUID) -> OrgContext:
        user = await identity_repo.user_by_id(s, user_id)
        assert user is not None
        return await identity.org_context(s, user, org.id, None)

    async with resources.sessions() as first, resources.sessions() as second:
        await enterprise.update_member(
            first, await ctx_of(first, org.owner.user_id), org.owner.user_id, {"role": "admin"}
        )
        second_ctx = await ctx_of(second, org.admin.user_id)
        pid = await backend_pid(second)
        racing = asyncio.create_task(
            enterprise.update_member(second, second_ctx, org.admin.user_id, {"role": "admin"})
        )
        await until_waiting_on_a_lock(resources.sessions, pid, racing)
        assert not racing.done(), "the second demotion must wait for the first"
        await first.commit()
        with pytest.raises(Conflict):
            await racing
        await second.rollback()
    async with resources.sessions() as s:
        owners = (
            await s.execute(
                text("SELECT user_id FROM memberships WHERE org_id = :o AND role = 'owner'"),
                {"o": org.id},
            )
        ).all()
    assert [r[0] for r in owners] == [org.admin.user_id]
