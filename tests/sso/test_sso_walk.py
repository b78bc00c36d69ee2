"""The whole path a company takes: configure SSO, test it, a new user signs in through the
provider and lands in the org, "require SSO" closes password login, signing in again."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy import text

from config.runtime import Resources
from tests.enterprise.helpers import audit_actions
from tests.fixtures.oidc import Idp, query_of
from tests.fixtures.portal import PASSWORD
from tests.sso.conftest import FakeTxt
from tests.sso.helpers import CALLBACK, DOMAIN, configure, sign_in, start


async def test_configure_test_sign_in_require_sso_and_sign_in_again(
    sso_client: httpx.AsyncClient, sso_resources: Resources, idp: Idp, dns_txt: FakeTxt
) -> None:
    client = sso_client
    org = await configure(client, idp, dns_txt, default_role="finance")
    assert org.config["redirect_uri"] == CALLBACK
    assert org.config["console_redirect_uri"] == "http://testserver/console/sign-in/sso/callback"
    assert org.config["issuer"] == idp.issuer
    assert org.config["domains"][0]["domain"] == DOMAIN
    assert org.config["domains"][0]["txt_record_name"] == f"_oxinf-verification.{DOMAIN}"
    assert dns_txt.asked == [f"_oxinf-verification.{DOMAIN}"]

    tested = await client.post("/enterprise/v1/sso/test", headers=org.owner.headers())
    assert tested.status_code == 200, tested.text
    report = tested.json()
    assert report["ok"] is True, report
    assert report["error"] is None
    assert report["issuer"] == idp.issuer
    assert report["token_endpoint"] == f"{idp.issuer}/oauth2/token"
    assert report["jwks_uri"] == f"{idp.issuer}/jwks"
    assert report["signing_algorithms"] == ["RS256"]
    assert len(report["key_ids"]) == 1
    assert report["client_credentials"] == "accepted"

    # The authorization URL asks for a code with PKCE S256, a state and a nonce.
    email = f"new.hire-{uuid.uuid4().hex[:6]}@{DOMAIN}"
    url = httpx.URL(await start(client, email))
    params = query_of(url)
    assert str(url).startswith(f"{idp.issuer}/oauth2/authorize?")
    assert params["response_type"] == "code"
    assert params["client_id"] == org.client_id
    assert params["redirect_uri"] == CALLBACK
    assert params["code_challenge_method"] == "S256"
    assert len(params["code_challenge"]) == 43
    assert len(params["state"]) >= 32 and len(params["nonce"]) >= 32
    assert params["login_hint"] == email
    assert "openid" in params["scope"].split()

    signed = await sign_in(client, idp, email)
    assert signed.status_code == 200, signed.text
    body = signed.json()
    assert body["email"] == email
    assert body["org_id"] == str(org.owner.org_id)
    assert body["role"] == "finance"
    token = body["token"]
    me = await client.get("/portal/v1/me", headers={"authorization": f"Bearer {token}"})
    assert me.status_code == 200, me.text
    assert me.json()["email"] == email
    assert [(o["id"], o["role"]) for o in me.json()["orgs"]] == [(str(org.owner.org_id), "finance")]

    # The owner turns on "require SSO": a password no longer signs in that domain...
    body = {"issuer": idp.issuer, "client_id": org.client_id, "domains": [DOMAIN],
            "default_role": "finance", "require_sso": True}  # fmt: skip
    put = await client.put("/enterprise/v1/sso", json=body, headers=org.owner.headers())
    assert put.status_code == 200, put.text
    assert put.json()["require_sso"] is True
    assert put.json()["client_secret_hint"] == org.config["client_secret_hint"]
    for who in (email, f"someone-else@{DOMAIN}", f"SOMEONE@{DOMAIN.upper()}"):
        refused = await client.post(
            "/portal/v1/auth/login", json={"email": who, "password": PASSWORD}
        )
        assert refused.status_code == 403, refused.text
        error = refused.json()["error"]
        assert error["code"] == "sso_required"
        assert "requires single sign-on" in error["message"]
        assert "/portal/v1/auth/sso/start" in error["message"]
    # ... while other domains sign in with their password as before.
    ok = await client.post(
        "/portal/v1/auth/login", json={"email": org.owner.email, "password": PASSWORD}
    )
    assert ok.status_code == 200, ok.text

    # Signing in again: the same user, still one membership with the role it had.
    again = await sign_in(client, idp, email)
    assert again.status_code == 200, again.text
    assert again.json()["user_id"] == signed.json()["user_id"]
    assert again.json()["role"] == "finance"
    async with sso_resources.sessions() as s:
        count = await s.execute(
            text(
                "SELECT count(*) FROM memberships m JOIN users u ON u.id = m.user_id"
                " WHERE u.email = :e"
            ),
            {"e": email},
        )
        assert count.scalar_one() == 1
        no_password = await s.execute(
            text("SELECT password_hash IS NULL FROM users WHERE email = :e"), {"e": email}
        )
        assert no_password.scalar_one() is True
    actions = await audit_actions(sso_resources, org.owner.org_id)
    for action in ("sso.configured", "sso.domain_verified", "user.created", "member.added",
                   "sso.signed_in", "sso.updated"):  # fmt: skip
        assert action in actions, actions
    assert actions.count("sso.signed_in") == 2
