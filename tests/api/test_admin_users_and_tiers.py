"""Operators: tiers, an org's tier, user search, disabling users and granting the role."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy import text

from config.runtime import Resources
from tests.fixtures.portal import PASSWORD, signup
from tests.portal.helpers import operator_headers

ROUTES = [
    ("GET", "/admin/v1/tiers"),
    ("GET", "/admin/v1/users"),
    ("PATCH", "/admin/v1/users/{user}"),
    ("GET", "/admin/v1/orgs/{org}"),
    ("PATCH", "/admin/v1/orgs/{org}"),
]


async def test_admin_routes_are_operator_only(client: httpx.AsyncClient) -> None:
    user = await signup(client)
    for method, path in ROUTES:
        url = path.replace("{user}", str(user.user_id)).replace("{org}", str(user.org_id))
        body = {} if method == "PATCH" else None
        for headers in (user.headers(), {}):
            resp = await client.request(method, url, json=body, headers=headers)
            assert resp.status_code == (403 if headers else 401), (method, url, resp.text)


async def test_tiers_and_setting_an_orgs_tier(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ops = await operator_headers(client, resources)
    tiers = (await client.get("/admin/v1/tiers", headers=ops)).json()
    by_name = {t["tier"]: t for t in tiers["data"]}
    assert set(by_name) == {"free", "trial", "starter", "professional", "enterprise"}
    assert by_name["enterprise"]["price_multiplier_bps"] == 8_000
    assert by_name["free"]["monthly_allocation_credits"] == (
        resources.settings.tier_allocations.get("free", 0)
    )
    assert tiers["power_level_multiplier_bps"]["precision"] == 20_000

    user = await signup(client)
    for bad in ({"tier": "platinum"}, {"name": ""}, {"personal": True}):
        resp = await client.patch(f"/admin/v1/orgs/{user.org_id}", json=bad, headers=ops)
        assert resp.status_code == 400, (bad, resp.text)
    missing = await client.patch(
        f"/admin/v1/orgs/{uuid.uuid4()}", json={"tier": "starter"}, headers=ops
    )
    assert missing.status_code == 404
    resp = await client.patch(
        f"/admin/v1/orgs/{user.org_id}", json={"tier": "enterprise"}, headers=ops
    )
    assert resp.status_code == 200 and resp.json()["tier"] == "enterprise"
    seen = await client.get("/enterprise/v1/org", headers=user.headers(user.org_id))
    assert seen.json()["tier"] == "enterprise"
    assert (await client.get(f"/admin/v1/orgs/{user.org_id}", headers=ops)).json()["tier"] == (
        "enterprise"
    )
    async with resources.sessions() as s:
        audit = (
            await s.execute(
                text("SELECT before, after FROM audit_events WHERE org_id = :o"
                     " AND action = 'org.admin_updated'"),
                {"o": user.org_id},
            )
        ).one()  # fmt: skip
    assert audit[0]["tier"] == "free" and audit[1]["tier"] == "enterprise"


async def test_user_search_disable_and_operator_role(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ops = await operator_headers(client, resources)
    tag = uuid.uuid4().hex[:8]
    user = await signup(client, f"find_{tag}@example.com")
    await signup(client, f"findx{tag}@example.com")  # `_` must not act as a wildcard
    found = await client.get("/admin/v1/users", params={"q": f"find_{tag}"}, headers=ops)
    assert [u["email"] for u in found.json()["data"]] == [user.email]
    assert found.json()["data"][0]["org_count"] == 1

    # Disabling signs the user out at once and refuses new logins; enabling undoes it.
    resp = await client.patch(
        f"/admin/v1/users/{user.user_id}", json={"disabled": True}, headers=ops
    )
    assert resp.status_code == 200 and resp.json()["disabled"] is True
    assert (await client.get("/portal/v1/me", headers=user.headers())).status_code == 401
    login = {"email": user.email, "password": PASSWORD}
    assert (await client.post("/portal/v1/auth/login", json=login)).status_code == 401
    await client.patch(f"/admin/v1/users/{user.user_id}", json={"disabled": False}, headers=ops)
    assert (await client.post("/portal/v1/auth/login", json=login)).status_code == 200

    # Granting the operator role opens the console; operators cannot lock themselves out.
    await client.patch(f"/admin/v1/users/{user.user_id}", json={"is_operator": True}, headers=ops)
    assert (await client.get("/admin/v1/tiers", headers=user.headers())).status_code == 200
    me = (await client.get("/admin/v1/users", params={"q": "ops@example.com"}, headers=ops)).json()
    ops_id = me["data"][0]["id"]
    for change in ({"disabled": True}, {"is_operator": False}):
        resp = await client.patch(f"/admin/v1/users/{ops_id}", json=change, headers=ops)
        assert resp.status_code == 409, resp.text
    assert (
        await client.patch(f"/admin/v1/users/{uuid.uuid4()}", json={"disabled": True}, headers=ops)
    ).status_code == 404
    assert (
        await client.patch(f"/admin/v1/users/{ops_id}", json={"email": "x@y.z"}, headers=ops)
    ).status_code == 400
