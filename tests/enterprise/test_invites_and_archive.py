"""Invites and archiving over /enterprise/v1: the same rules the console pages use."""

from __future__ import annotations

import httpx

from config.runtime import Resources
from tests.enterprise.helpers import add, audit_actions, make_entity, make_org
from tests.fixtures.portal import signup


async def test_invite_is_created_listed_and_revoked_by_admins_only(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    org = await make_org(client)
    resp = await client.post(
        "/enterprise/v1/invites", json={"email": "New.Person@Example.com"}, headers=org.h(org.admin)
    )
    assert resp.status_code == 201, resp.text
    made = resp.json()
    assert made["email"] == "new.person@example.com" and made["role"] == "member"
    assert made["url"].startswith("http://testserver/console/invites/inv_")
    listed = (await client.get("/enterprise/v1/invites", headers=org.h(org.admin))).json()
    assert [i["id"] for i in listed["data"]] == [made["id"]]
    assert "url" not in listed["data"][0]  # the link is never shown again
    for who in (org.finance, org.member):
        refused = await client.post(
            "/enterprise/v1/invites", json={"email": "x@example.com"}, headers=org.h(who)
        )
        assert refused.status_code == 403
    # Only owners invite owners; members already in the org cannot be invited.
    owner_invite = await client.post(
        "/enterprise/v1/invites",
        json={"email": "boss@example.com", "role": "owner"},
        headers=org.h(org.admin),
    )
    assert owner_invite.status_code == 403
    again = await client.post(
        "/enterprise/v1/invites", json={"email": org.member.email}, headers=org.h(org.admin)
    )
    assert again.status_code == 409
    gone = await client.delete(f"/enterprise/v1/invites/{made['id']}", headers=org.h(org.admin))
    assert gone.status_code == 204
    assert (await client.get("/enterprise/v1/invites", headers=org.h(org.admin))).json() == {
        "data": []
    }
    twice = await client.delete(f"/enterprise/v1/invites/{made['id']}", headers=org.h(org.admin))
    assert twice.status_code == 409
    actions = await audit_actions(resources, org.id)
    assert actions.count("invite.created") == 1 and actions.count("invite.revoked") == 1


async def test_archived_cost_center_keeps_its_members_and_takes_no_new_ones(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    org = await make_org(client)
    cc = await make_entity(client, org, "cost-centers", "CC-7")
    first = await signup(client)
    assert (await add(client, org.id, org.admin, first, "member", cost_center_id=cc)).is_success
    archived = await client.post(
        f"/enterprise/v1/cost-centers/{cc}/archive", headers=org.h(org.admin)
    )
    assert archived.status_code == 200 and archived.json()["archived_at"] is not None
    # Its member stays; a new member, an invite or a budget cannot name it.
    members = (await client.get("/enterprise/v1/members", headers=org.h(org.admin))).json()
    assert {m["cost_center"] for m in members["data"] if m["user_id"] == str(first.user_id)} == {
        "CC-7"
    }
    second = await signup(client)
    refused = await add(client, org.id, org.admin, second, "member", cost_center_id=cc)
    assert refused.status_code == 409 and "archived" in refused.json()["error"]["message"]
    invite = await client.post(
        "/enterprise/v1/invites",
        json={"email": "z@example.com", "cost_center_id": cc},
        headers=org.h(org.admin),
    )
    assert invite.status_code == 409
    budget = await client.post(
        "/enterprise/v1/budgets",
        json={"name": "b", "scope": "cost_center", "scope_id": cc, "limit_micros": 5,
              "mode": "hard"},
        headers=org.h(org.admin),
    )  # fmt: skip
    assert budget.status_code == 409
    # Changing the member's role leaves the archived cost center in place.
    kept = await client.patch(
        f"/enterprise/v1/members/{first.user_id}",
        json={"role": "finance", "cost_center_id": cc},
        headers=org.h(org.admin),
    )
    assert kept.status_code == 200 and kept.json()["cost_center"] == "CC-7"
    restored = await client.post(
        f"/enterprise/v1/cost-centers/{cc}/restore", headers=org.h(org.admin)
    )
    assert restored.status_code == 200 and restored.json()["archived_at"] is None
    assert (await add(client, org.id, org.admin, second, "member", cost_center_id=cc)).is_success
    actions = await audit_actions(resources, org.id)
    assert "cost_center.archived" in actions and "cost_center.restored" in actions


async def test_audit_filters_by_actor_and_target(client: httpx.AsyncClient) -> None:
    org = await make_org(client)
    dept = await make_entity(client, org, "departments", "Ops")
    by_admin = await client.get(
        "/enterprise/v1/audit",
        params={"actor_user_id": str(org.admin.user_id)},
        headers=org.h(org.owner),
    )
    assert {e["action"] for e in by_admin.json()["data"]} == {"department.created"}
    by_target = await client.get(
        "/enterprise/v1/audit", params={"target_id": dept}, headers=org.h(org.owner)
    )
    assert [e["target_id"] for e in by_target.json()["data"]] == [dept]
