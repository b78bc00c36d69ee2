"""Sign-up, login sessions, throttling, `me`, and the admin bootstrap."""

from __future__ import annotations

import httpx
from sqlalchemy import func, select, text

from config.runtime import Resources
from domain.identity.bootstrap import bootstrap_admin
from schema.identity import User
from tests.fixtures.portal import PASSWORD, signup


async def test_signup_login_me(client: httpx.AsyncClient) -> None:
    user = await signup(client, "Alice@Example.com")
    me = await client.get("/portal/v1/me", headers=user.headers())
    assert me.status_code == 200
    body = me.json()
    assert body["email"] == "alice@example.com"
    assert body["is_operator"] is False
    first = body["orgs"][0]
    assert first["id"] == str(user.org_id)
    assert (first["name"], first["role"], first["personal"], first["tier"]) == (
        "Personal", "owner", True, "free",
    )  # fmt: skip
    assert "password" not in me.text


async def test_email_is_unique_case_insensitively(client: httpx.AsyncClient) -> None:
    await signup(client, "bob@example.com")
    resp = await client.post(
        "/portal/v1/auth/signup", json={"email": "BOB@example.com", "password": PASSWORD}
    )
    assert resp.status_code == 409
    assert resp.json()["error"]["code"] == "conflict"


async def test_password_policy_and_email_format(client: httpx.AsyncClient) -> None:
    cases = [
        ("carol@example.com", "short1"),
        ("carol@example.com", "password123"),
        ("carol@example.com", "aaaaaaaaaaaaaa"),
        ("carol@example.com", "carol-is-great-99"),
        ("carol@example.com", "x" * 40 + "é" * 20),
        ("not-an-email", PASSWORD),
    ]
    for email, password in cases:
        resp = await client.post(
            "/portal/v1/auth/signup", json={"email": email, "password": password}
        )
        assert resp.status_code == 400, (email, password, resp.text)
        assert resp.json()["error"]["code"] == "invalid_request"


async def test_wrong_password_and_unknown_email_look_the_same(client: httpx.AsyncClient) -> None:
    user = await signup(client)
    wrong = await client.post(
        "/portal/v1/auth/login", json={"email": user.email, "password": "wrong-password-1"}
    )
    unknown = await client.post(
        "/portal/v1/auth/login", json={"email": "nobody@example.com", "password": PASSWORD}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["error"]["message"] == unknown.json()["error"]["message"]


async def test_login_locks_out_per_email_then_clears(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    user = await signup(client)
    bad = {"email": user.email, "password": "wrong-password-1"}
    for _ in range(resources.settings.login_max_failures):
        assert (await client.post("/portal/v1/auth/login", json=bad)).status_code == 401
    locked = await client.post(
        "/portal/v1/auth/login", json={"email": user.email, "password": PASSWORD}
    )
    assert locked.status_code == 429
    assert locked.json()["error"]["code"] == "rate_limit_exceeded"
    assert int(locked.headers["retry-after"]) >= 1

    # Once the lock-out passes, the right password works and resets the count.
    async with resources.sessions.begin() as s:
        await s.execute(text("UPDATE login_throttles SET locked_until = now() - interval '1 s'"))
    ok = await client.post(
        "/portal/v1/auth/login", json={"email": user.email, "password": PASSWORD}
    )
    assert ok.status_code == 200
    async with resources.sessions() as s:
        failures = (await s.execute(text("SELECT max(failures) FROM login_throttles"))).scalar()
    assert failures == 0


async def test_login_locks_out_per_ip_across_emails(app: object, resources: Resources) -> None:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 4000))  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        user = await signup(c)
        for i in range(resources.settings.login_max_failures):
            await c.post(
                "/portal/v1/auth/login",
                json={"email": f"guess{i}@example.com", "password": "wrong-password-1"},
            )
        resp = await c.post(
            "/portal/v1/auth/login", json={"email": user.email, "password": PASSWORD}
        )
        assert resp.status_code == 429
    other_ip = httpx.ASGITransport(app=app, client=("198.51.100.9", 4000))  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=other_ip, base_url="http://t") as c:
        resp = await c.post(
            "/portal/v1/auth/login", json={"email": user.email, "password": PASSWORD}
        )
        assert resp.status_code == 200


async def test_logout_revokes_and_expiry_ends_sessions(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    user = await signup(client)
    assert (await client.post("/portal/v1/auth/logout", headers=user.headers())).status_code == 204
    resp = await client.get("/portal/v1/me", headers=user.headers())
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "authentication_required"

    login = await client.post(
        "/portal/v1/auth/login", json={"email": user.email, "password": PASSWORD}
    )
    token = login.json()["token"]
    assert token.startswith("oxs_")
    headers = {"authorization": f"Bearer {token}"}
    assert (await client.get("/portal/v1/me", headers=headers)).status_code == 200
    async with resources.sessions.begin() as s:
        await s.execute(text("UPDATE portal_sessions SET expires_at = now() - interval '1 s'"))
    assert (await client.get("/portal/v1/me", headers=headers)).status_code == 401


async def test_portal_routes_need_a_session(client: httpx.AsyncClient) -> None:
    for path in ("/portal/v1/me", "/portal/v1/api-keys", "/portal/v1/byok"):
        resp = await client.get(path)
        assert resp.status_code == 401, path
        resp = await client.get(path, headers={"authorization": "Bearer oxs_" + "0" * 64})
        assert resp.status_code == 401, path


async def test_admin_bootstrap_is_idempotent_and_keeps_password(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    for password in (PASSWORD, "a-different-password-7"):
        await bootstrap_admin(resources.sessions, resources.identity, "Root@Example.com", password)
    async with resources.sessions() as s:
        count = (await s.execute(select(func.count()).select_from(User))).scalar_one()
        user = (await s.execute(select(User))).scalar_one()
    assert count == 1 and user.is_operator
    login = await client.post(
        "/portal/v1/auth/login", json={"email": "root@example.com", "password": PASSWORD}
    )
    assert login.status_code == 200
