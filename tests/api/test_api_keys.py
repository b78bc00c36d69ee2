"""Platform key lifecycle, authentication, revocation window, roles and tenant isolation."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta

import httpx
import pytest
from sqlalchemy import text

from config.runtime import Resources
from domain.errors import Unauthenticated
from domain.identity import repository as identity_repo
from domain.keys.auth import KeyAuthenticator
from tests.fixtures.clock import FakeClock
from tests.fixtures.portal import PortalUser, create_key, signup


async def _audit_actions(resources: Resources, org_id: uuid.UUID) -> list[str]:
    async with resources.sessions() as s:
        rows = await s.execute(
            text("SELECT action FROM audit_events WHERE org_id = :o ORDER BY id"), {"o": org_id}
        )
        return [r[0] for r in rows]


async def test_create_shows_key_once_and_it_authenticates(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    user = await signup(client)
    created = await create_key(client, user, rpm_limit=60, model_allowlist=["demo-chat"])
    full = str(created["key"])
    assert re.fullmatch(r"oxi_[0-9a-f]{64}", full)
    assert created["prefix"] == full[:10]
    assert created["scopes"] == ["llm:inference", "llm:models", "tasks"]
    assert created["status"] == "active"

    listed = await client.get("/portal/v1/api-keys", headers=user.headers())
    one = await client.get(f"/portal/v1/api-keys/{created['id']}", headers=user.headers())
    for resp in (listed, one):
        assert resp.status_code == 200
        assert full not in resp.text and full[10:] not in resp.text
        assert '"key"' not in resp.text

    principal = await resources.key_auth.authenticate(full)
    assert principal.org_id == user.org_id
    assert principal.rpm_limit == 60
    assert principal.allows_model("demo-chat") and not principal.allows_model("gpt-4o")
    assert await _audit_actions(resources, user.org_id) == ["user.created", "api_key.created"]


@pytest.mark.parametrize(
    "presented",
    [None, "", "oxi_short", "sk-" + "a" * 48, "oxi_" + "g" * 64, "oxi_" + "0" * 64],
)
async def test_malformed_and_unknown_keys_are_rejected_alike(
    resources: Resources, presented: str | None
) -> None:
    with pytest.raises(Unauthenticated) as err:
        await resources.key_auth.authenticate(presented)
    assert err.value.code == "invalid_api_key"
    assert err.value.message == "invalid API key"


async def test_revocation_is_immediate_here_and_within_the_ttl_elsewhere(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    user = await signup(client)
    created = await create_key(client, user)
    full = str(created["key"])
    clock = FakeClock()
    other_replica = KeyAuthenticator(
        resources.sessions, resources.identity.pepper, ttl_s=30, resolution_s=60, clock=clock
    )
    await resources.key_auth.authenticate(full)
    await other_replica.authenticate(full)

    resp = await client.delete(f"/portal/v1/api-keys/{created['id']}", headers=user.headers())
    assert resp.status_code == 200 and resp.json()["status"] == "revoked"
    with pytest.raises(Unauthenticated):
        await resources.key_auth.authenticate(full)  # this replica evicted it at once
    clock.advance(29)
    assert await other_replica.authenticate(full)  # the other one trusts its cache a while,
    clock.advance(2)
    with pytest.raises(Unauthenticated):
        await other_replica.authenticate(full)  # but re-reads it once the TTL has passed

    # Revocation is permanent: no edit brings it back, a second revoke changes nothing.
    patch = await client.patch(
        f"/portal/v1/api-keys/{created['id']}", json={"name": "again"}, headers=user.headers()
    )
    assert patch.status_code == 409
    again = await client.delete(f"/portal/v1/api-keys/{created['id']}", headers=user.headers())
    assert again.status_code == 200 and again.json()["status"] == "revoked"
    assert (await _audit_actions(resources, user.org_id)).count("api_key.revoked") == 1


async def test_expired_key_is_rejected(client: httpx.AsyncClient, resources: Resources) -> None:
    user = await signup(client)
    created = await create_key(client, user, expires_in="30d")
    async with resources.sessions.begin() as s:
        await s.execute(
            text("UPDATE api_keys SET expires_at = now() - interval '1 s' WHERE id = :id"),
            {"id": created["id"]},
        )
    fresh = KeyAuthenticator(
        resources.sessions, resources.identity.pepper, ttl_s=5, resolution_s=60
    )
    with pytest.raises(Unauthenticated):
        await fresh.authenticate(str(created["key"]))
    listed = (await client.get("/portal/v1/api-keys", headers=user.headers())).json()["data"]
    assert listed[0]["status"] == "expired"


async def test_never_expiring_key_and_bad_expiry(client: httpx.AsyncClient) -> None:
    user = await signup(client)
    assert (await create_key(client, user, expires_in="never"))["expires_at"] is None
    resp = await client.post(
        "/portal/v1/api-keys", json={"name": "x", "expires_in": "5y"}, headers=user.headers()
    )
    assert resp.status_code == 400


async def test_patch_changes_limits_and_is_audited(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    user = await signup(client)
    created = await create_key(client, user)
    resp = await client.patch(
        f"/portal/v1/api-keys/{created['id']}",
        json={
            "rpm_limit": 10,
            "budget_micros": 5_000_000,
            "scopes": ["tasks"],
            "log_content": True,
        },
        headers=user.headers(),
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["rpm_limit"], body["budget_micros"], body["scopes"], body["log_content"]) == (
        10, 5_000_000, ["tasks"], True,
    )  # fmt: skip
    principal = await resources.key_auth.authenticate(str(created["key"]))
    assert principal.rpm_limit == 10 and principal.scopes == frozenset({"tasks"})
    bad = await client.patch(
        f"/portal/v1/api-keys/{created['id']}", json={"scopes": ["root"]}, headers=user.headers()
    )
    assert bad.status_code == 400
    assert "api_key.updated" in await _audit_actions(resources, user.org_id)


async def test_last_used_is_recorded_coarsely(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    """Written on first use, then at most once per resolution (60 s here), whatever the
    traffic in between."""
    user = await signup(client)
    created = await create_key(client, user)
    clock = FakeClock()
    auth = KeyAuthenticator(
        resources.sessions, resources.identity.pepper, ttl_s=5, resolution_s=60, clock=clock
    )

    async def used_after(calls: int) -> datetime:
        for _ in range(calls):
            await auth.authenticate(str(created["key"]))
        await auth.drain()
        path = f"/portal/v1/api-keys/{created['id']}"
        got = (await client.get(path, headers=user.headers())).json()
        return datetime.fromisoformat(got["last_used_at"])

    first = await used_after(5)
    assert first == clock.now()
    clock.advance(59)
    assert await used_after(3) == first  # within the resolution: not written again
    clock.advance(2)
    assert await used_after(1) == clock.now() == first + timedelta(seconds=61)


async def _add_member(resources: Resources, user: PortalUser, org_id: uuid.UUID, role: str) -> None:
    async with resources.sessions.begin() as s:
        await identity_repo.insert_membership(s, user.user_id, org_id, role)


async def test_members_manage_only_their_own_keys(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    owner = await signup(client)
    member = await signup(client)
    admin = await signup(client)
    await _add_member(resources, member, owner.org_id, "member")
    await _add_member(resources, admin, owner.org_id, "admin")
    owners_key = await create_key(client, owner)
    members_key = (
        await client.post(
            "/portal/v1/api-keys", json={"name": "mine"}, headers=member.headers(owner.org_id)
        )
    ).json()

    seen = await client.get("/portal/v1/api-keys", headers=member.headers(owner.org_id))
    assert [k["id"] for k in seen.json()["data"]] == [members_key["id"]]
    for method in ("GET", "PATCH", "DELETE"):
        resp = await client.request(
            method,
            f"/portal/v1/api-keys/{owners_key['id']}",
            json={"name": "x"} if method == "PATCH" else None,
            headers=member.headers(owner.org_id),
        )
        assert resp.status_code == 404, method
    all_keys = await client.get("/portal/v1/api-keys", headers=admin.headers(owner.org_id))
    assert len(all_keys.json()["data"]) == 2
    revoke = await client.delete(
        f"/portal/v1/api-keys/{members_key['id']}", headers=admin.headers(owner.org_id)
    )
    assert revoke.status_code == 200


async def test_no_cross_org_access_to_keys_byok_or_audit(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    alice = await signup(client)
    mallory = await signup(client)
    alices_key = await create_key(client, alice)
    put = await client.put(
        "/portal/v1/byok",
        json={"provider": "openrouter", "api_key": "sk-or-v1-" + "a" * 64},
        headers=alice.headers(),
    )
    assert put.status_code == 201

    # Mallory names Alice's key id under her own org: 404, as if it did not exist.
    for method in ("GET", "PATCH", "DELETE"):
        resp = await client.request(
            method,
            f"/portal/v1/api-keys/{alices_key['id']}",
            json={"rpm_limit": 1} if method == "PATCH" else None,
            headers=mallory.headers(),
        )
        assert resp.status_code == 404, method
    # Mallory claims Alice's org: 404 on every org-scoped route.
    for method, path in [
        ("GET", "/portal/v1/api-keys"),
        ("GET", f"/portal/v1/api-keys/{alices_key['id']}"),
        ("GET", "/portal/v1/byok"),
        ("PATCH", "/portal/v1/byok/openrouter"),
        ("DELETE", "/portal/v1/byok/openrouter"),
        ("GET", "/enterprise/v1/audit"),
    ]:
        resp = await client.request(
            method,
            path,
            json={"enabled": False} if method == "PATCH" else None,
            headers=mallory.headers(alice.org_id),
        )
        assert resp.status_code == 404, (method, path)
    assert (await client.get("/portal/v1/byok", headers=mallory.headers())).json()["data"] == []
    audit = (await client.get("/enterprise/v1/audit", headers=mallory.headers())).json()["data"]
    assert {e["action"] for e in audit} == {"user.created"}
    assert all(e["target_id"] != str(alices_key["id"]) for e in audit)
    # Alice's key still works and her BYOK entry is intact.
    await resources.key_auth.authenticate(str(alices_key["key"]))
    assert len((await client.get("/portal/v1/byok", headers=alice.headers())).json()["data"]) == 1


async def test_admin_view_of_an_orgs_keys_is_operator_only(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    from domain.identity.bootstrap import bootstrap_admin

    user = await signup(client)
    await create_key(client, user)
    await bootstrap_admin(
        resources.sessions, resources.identity, "ops@example.com", "ops-password-42"
    )
    login = await client.post(
        "/portal/v1/auth/login", json={"email": "ops@example.com", "password": "ops-password-42"}
    )
    ops = {"authorization": f"Bearer {login.json()['token']}"}
    resp = await client.get(f"/admin/v1/orgs/{user.org_id}/api-keys", headers=ops)
    assert resp.status_code == 200 and len(resp.json()["data"]) == 1
    assert "key_hash" not in resp.text
    denied = await client.get(f"/admin/v1/orgs/{user.org_id}/api-keys", headers=user.headers())
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "permission_denied"
    missing = await client.get(f"/admin/v1/orgs/{uuid.uuid4()}/api-keys", headers=ops)
    assert missing.status_code == 404
    orgs = await client.get("/admin/v1/orgs", headers=ops)
    assert {o["id"] for o in orgs.json()["data"]} >= {str(user.org_id)}
