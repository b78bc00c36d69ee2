"""Accounts that exist before their first SSO sign-in, platform operators under "require
SSO", the console's sign-in form, and the migration going down and up again."""

from __future__ import annotations

import secrets

import httpx
from sqlalchemy import text

from config.runtime import Resources
from domain.identity.service import ensure_operator
from schema.db import create_engine
from schema.migrate import current_revision, head_revision, upgrade
from tests.enterprise.helpers import add
from tests.fixtures.console import sign_in as console_sign_in
from tests.fixtures.db import create_database, drop_database
from tests.fixtures.oidc import Idp
from tests.fixtures.portal import PASSWORD, signup
from tests.sso.conftest import FakeTxt
from tests.sso.helpers import DOMAIN, configure, sign_in


async def _login(client: httpx.AsyncClient, email: str) -> httpx.Response:
    return await client.post("/portal/v1/auth/login", json={"email": email, "password": PASSWORD})


async def test_an_existing_member_keeps_their_role_password_and_sessions(
    sso_client: httpx.AsyncClient, idp: Idp, dns_txt: FakeTxt
) -> None:
    member = await signup(sso_client, f"lead-{secrets.token_hex(3)}@{DOMAIN}")
    org = await configure(sso_client, idp, dns_txt)
    added = await add(sso_client, org.owner.org_id, org.owner, member, "admin")
    assert added.status_code == 201, added.text
    signed = await sign_in(sso_client, idp, member.email)
    assert signed.status_code == 200, signed.text
    assert (signed.json()["user_id"], signed.json()["role"]) == (str(member.user_id), "admin")
    assert (await sso_client.get("/portal/v1/me", headers=member.headers())).status_code == 200
    assert (await _login(sso_client, member.email)).status_code == 200


async def test_linking_an_account_that_was_no_member_drops_its_password_and_sessions(
    sso_client: httpx.AsyncClient, sso_resources: Resources, idp: Idp, dns_txt: FakeTxt
) -> None:
    """Someone signed up with the address before the org proved its domain: the provider
    now vouches for the address, so a password set without that proof stops working."""
    early = await signup(sso_client, f"early-{secrets.token_hex(3)}@{DOMAIN}")
    org = await configure(sso_client, idp, dns_txt)
    signed = await sign_in(sso_client, idp, early.email)
    assert signed.status_code == 200, signed.text
    body = signed.json()
    assert (body["user_id"], body["org_id"], body["role"]) == (
        str(early.user_id), str(org.owner.org_id), "member",
    )  # fmt: skip
    me = await sso_client.get("/portal/v1/me", headers={"authorization": f"Bearer {body['token']}"})
    assert {o["id"] for o in me.json()["orgs"]} == {str(early.org_id), str(org.owner.org_id)}
    assert (await sso_client.get("/portal/v1/me", headers=early.headers())).status_code == 401
    assert (await _login(sso_client, early.email)).status_code == 401
    async with sso_resources.sessions() as s:
        after = await s.execute(
            text("SELECT after FROM audit_events WHERE action = 'member.added' AND target_id = :u"),
            {"u": str(early.user_id)},
        )
        assert after.scalar_one()["linked"] is True


async def test_operators_keep_password_sign_in_under_require_sso(
    sso_client: httpx.AsyncClient, sso_resources: Resources, idp: Idp, dns_txt: FakeTxt
) -> None:
    email = f"ops-{secrets.token_hex(3)}@{DOMAIN}"
    async with sso_resources.sessions() as s:
        await ensure_operator(s, sso_resources.identity, email, PASSWORD)
        await s.commit()
    await configure(sso_client, idp, dns_txt, require_sso=True)
    assert (await _login(sso_client, email)).status_code == 200
    refused = await _login(sso_client, f"anyone@{DOMAIN}")
    assert refused.json()["error"]["code"] == "sso_required"


async def test_the_console_sign_in_form_says_to_use_sso(
    sso_client: httpx.AsyncClient, idp: Idp, dns_txt: FakeTxt
) -> None:
    await configure(sso_client, idp, dns_txt, require_sso=True)
    page = await console_sign_in(sso_client, f"someone@{DOMAIN}")
    assert page.status_code == 403, page.text
    assert "requires single sign-on" in page.text
    assert "Use single sign-on" in page.text
    assert "oxinf_session" not in page.headers.get("set-cookie", "")


async def test_0009_downgrades_with_sso_users_and_upgrades_again(server_url: str) -> None:
    """Down to 0009 drops the SSO tables and gives password-less users a hash nobody
    can match; up again restores them."""
    from tests.test_settings_and_migrations import _downgrade

    name = "oxinf_mig0009_" + secrets.token_hex(3)
    url = await create_database(server_url, name)
    mig = create_engine(url, pool_size=1)
    tables = text(
        "SELECT count(*) FROM information_schema.tables"
        " WHERE table_name IN ('sso_configs', 'sso_domains', 'sso_logins')"
    )
    try:
        await upgrade(mig)
        async with mig.begin() as conn:
            assert (await conn.execute(tables)).scalar_one() == 3
            await conn.execute(text(
                "INSERT INTO users (id, email) VALUES (gen_random_uuid(), 'jit@acme.test')"
            ))  # fmt: skip
        async with mig.begin() as conn:
            await conn.run_sync(_downgrade, "0009")
        assert await current_revision(mig) != head_revision()
        async with mig.connect() as conn:
            assert (await conn.execute(tables)).scalar_one() == 0
            hashed = await conn.execute(
                text("SELECT password_hash FROM users WHERE email = 'jit@acme.test'")
            )
            assert str(hashed.scalar_one()).startswith("$2b$12$")
        await upgrade(mig)
        assert await current_revision(mig) == head_revision()
        async with mig.connect() as conn:
            assert (await conn.execute(tables)).scalar_one() == 3
    finally:
        await mig.dispose()
        await drop_database(server_url, name)
