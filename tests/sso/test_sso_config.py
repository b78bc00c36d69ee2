"""Configuring SSO: who may, what is validated, domains and their DNS proof, the egress
policy on the issuer, and a client secret that never comes back out."""

from __future__ import annotations

import logging
import threading
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from config.runtime import Resources
from tests.enterprise.helpers import add
from tests.fixtures.oidc import Idp, query_of
from tests.fixtures.portal import signup
from tests.sso.conftest import FakeTxt
from tests.sso.helpers import CALLBACK, DOMAIN, configure, sign_in, start


def _body(idp: Idp, client_id: str = "client", **fields: Any) -> dict[str, Any]:
    return {"issuer": idp.issuer, "client_id": client_id, "client_secret": "s3cret-value-1",
            "domains": [DOMAIN], **fields}  # fmt: skip


async def test_only_owners_and_admins_see_or_change_sso(
    sso_client: httpx.AsyncClient, idp: Idp, dns_txt: FakeTxt
) -> None:
    org = await configure(sso_client, idp, dns_txt)
    for role in ("admin", "finance", "member"):
        user = await signup(sso_client)
        assert (await add(sso_client, org.owner.org_id, org.owner, user, role)).status_code == 201
        h = user.headers(org.owner.org_id)
        calls = [
            sso_client.get("/enterprise/v1/sso", headers=h),
            sso_client.put("/enterprise/v1/sso", json=_body(idp, org.client_id), headers=h),
            sso_client.post("/enterprise/v1/sso/test", headers=h),
            sso_client.post("/enterprise/v1/sso/domains/verify", headers=h),
        ]
        for call in calls:
            resp = await call
            if role == "admin":
                assert resp.status_code == 200, resp.text
            else:
                assert resp.status_code == 403, resp.text
                assert resp.json()["error"]["code"] == "permission_denied"
        if role != "admin":
            deleted = await sso_client.delete("/enterprise/v1/sso", headers=h)
            assert deleted.status_code == 403


async def test_what_a_configuration_must_hold(
    sso_client: httpx.AsyncClient, idp: Idp, dns_txt: FakeTxt
) -> None:
    owner = await signup(sso_client)
    h = owner.headers()
    assert (await sso_client.get("/enterprise/v1/sso", headers=h)).status_code == 404
    cases: list[tuple[dict[str, Any], str]] = [
        ({"default_role": "owner"}, "default_role"),
        ({"client_secret": None}, "client_secret"),
        ({"client_id": ""}, "client_id"),
        ({"domains": []}, "domains"),
        ({"domains": ["not a domain"]}, "domains"),
        ({"domains": ["localhost"]}, "domains"),
        ({"domains": [f"d{i}.test" for i in range(51)]}, "domains"),
        ({"issuer": "ftp://idp.example.com"}, "issuer"),
        ({"issuer": f"{idp.issuer}/?x=1"}, "issuer"),
        ({"surprise": True}, "surprise"),
    ]
    for fields, param in cases:
        resp = await sso_client.put("/enterprise/v1/sso", json=_body(idp, **fields), headers=h)
        assert resp.status_code == 400, (fields, resp.text)
        assert resp.json()["error"]["param"] == param, (fields, resp.text)
    # An issuer that is reachable but is no OpenID provider: the discovery error says why.
    missing = await sso_client.put(
        "/enterprise/v1/sso", json=_body(idp, issuer=f"{idp.issuer}/nothing-here"), headers=h
    )
    assert missing.status_code == 400
    assert missing.json()["error"]["message"].startswith(
        f"issuer discovery failed: the discovery document at {idp.issuer}/nothing-here/"
        ".well-known/openid-configuration answered HTTP 404"
    )
    # Domains are normalised: case, a leading @, a trailing dot, duplicates.
    ok = await sso_client.put(
        "/enterprise/v1/sso",
        json=_body(idp, domains=["ACME.test.", "@acme.test", "Sub.Acme.Test"]),
        headers=h,
    )
    assert ok.status_code == 200, ok.text
    assert [d["domain"] for d in ok.json()["domains"]] == ["acme.test", "sub.acme.test"]
    assert [d["verified"] for d in ok.json()["domains"]] == [False, False]


async def test_a_domain_routes_only_once_verified_and_only_to_one_org(
    sso_client: httpx.AsyncClient, idp: Idp, dns_txt: FakeTxt
) -> None:
    first = await configure(sso_client, idp, dns_txt, verify=False)
    email = f"someone@{DOMAIN}"
    pending = await sso_client.post("/portal/v1/auth/sso/start", json={"email": email})
    assert pending.status_code == 404, pending.text
    assert "no organization signs in acme.test addresses" in pending.json()["error"]["message"]

    # A second org may claim the same domain while nobody has proved it...
    second = await configure(sso_client, idp, dns_txt, verify=False)
    # ... and whoever publishes its TXT record first owns it.
    record = second.config["domains"][0]
    assert record["txt_record_value"] != first.config["domains"][0]["txt_record_value"]
    nothing = await sso_client.post(
        "/enterprise/v1/sso/domains/verify", headers=first.owner.headers()
    )
    assert nothing.json()["domains"][0]["verified"] is False  # no record published yet
    dns_txt.publish(record["txt_record_name"], "some-other-verification=abc")
    dns_txt.publish(record["txt_record_name"], record["txt_record_value"])
    won = await sso_client.post("/enterprise/v1/sso/domains/verify", headers=second.owner.headers())
    assert won.json()["domains"][0]["verified"] is True
    url = await start(sso_client, email)
    assert query_of(httpx.URL(url))["client_id"] == second.client_id

    # The first org's own record no longer helps it, nor can it claim the domain anew.
    theirs = first.config["domains"][0]
    dns_txt.publish(theirs["txt_record_name"], theirs["txt_record_value"])
    lost = await sso_client.post("/enterprise/v1/sso/domains/verify", headers=first.owner.headers())
    assert lost.status_code == 409, lost.text
    assert lost.json()["error"]["message"] == (
        "acme.test already signs in through another organization"
    )
    third = await signup(sso_client)
    claimed = await sso_client.put("/enterprise/v1/sso", json=_body(idp), headers=third.headers())
    assert claimed.status_code == 409, claimed.text
    assert claimed.json()["error"]["param"] == "domains"


async def test_disabled_or_deleted_sso_does_not_route(
    sso_client: httpx.AsyncClient, sso_resources: Resources, idp: Idp, dns_txt: FakeTxt
) -> None:
    org = await configure(sso_client, idp, dns_txt, require_sso=True)
    email = f"someone@{DOMAIN}"
    body = _body(idp, org.client_id, enabled=False, require_sso=True)
    del body["client_secret"]  # kept as stored
    off = await sso_client.put("/enterprise/v1/sso", json=body, headers=org.owner.headers())
    assert off.status_code == 200, off.text
    assert off.json()["enabled"] is False
    resp = await sso_client.post("/portal/v1/auth/sso/start", json={"email": email})
    assert resp.status_code == 404
    # Disabled SSO requires nothing: the password answers (wrong, as there is no account).
    login = await sso_client.post(
        "/portal/v1/auth/login", json={"email": email, "password": "not-the-password-1"}
    )
    assert login.status_code == 401, login.text

    gone = await sso_client.delete("/enterprise/v1/sso", headers=org.owner.headers())
    assert gone.status_code == 204
    assert (
        await sso_client.get("/enterprise/v1/sso", headers=org.owner.headers())
    ).status_code == 404
    assert (
        await sso_client.delete("/enterprise/v1/sso", headers=org.owner.headers())
    ).status_code == 404
    async with sso_resources.sessions() as s:
        left = await s.execute(text("SELECT count(*) FROM sso_domains"))
        assert left.scalar_one() == 0
        actions = await s.execute(
            text("SELECT action FROM audit_events WHERE action LIKE 'sso.%' ORDER BY id")
        )
        assert list(actions.scalars()) == [
            "sso.configured",
            "sso.domain_verified",
            "sso.updated",
            "sso.deleted",
        ]
        updated = await s.execute(
            text("SELECT before, after FROM audit_events WHERE action = 'sso.updated'")
        )
        before, after = updated.one()
        assert (before["enabled"], after["enabled"]) == (True, False)  # the change, not after twice


async def test_start_refuses_bad_addresses_and_foreign_redirects(
    sso_client: httpx.AsyncClient, idp: Idp, dns_txt: FakeTxt
) -> None:
    await configure(sso_client, idp, dns_txt)
    email = f"someone@{DOMAIN}"
    for body, status, param in [
        ({"email": "not-an-email"}, 400, "email"),
        ({"email": "someone@unknown-domain.test"}, 404, "email"),
        ({"email": email, "redirect_uri": "http://evil.example/cb"}, 400, "redirect_uri"),
        ({"email": email, "redirect_uri": "javascript:alert(1)"}, 400, "redirect_uri"),
        ({"email": email, "redirect_uri": "https://app.example/cb#frag"}, 400, "redirect_uri"),
    ]:
        resp = await sso_client.post("/portal/v1/auth/sso/start", json=body)
        assert resp.status_code == status, (body, resp.text)
        assert resp.json()["error"]["param"] == param
    for own in ("https://app.example/sso/done", "http://127.0.0.1:8765/callback", CALLBACK):
        resp = await sso_client.post(
            "/portal/v1/auth/sso/start", json={"email": email, "redirect_uri": own}
        )
        assert resp.status_code == 200, resp.text
        assert query_of(httpx.URL(resp.json()["authorization_url"]))["redirect_uri"] == own


async def test_test_connection_reports_a_wrong_secret_and_an_unreachable_provider(
    sso_client: httpx.AsyncClient, idp: Idp, dns_txt: FakeTxt
) -> None:
    org = await configure(sso_client, idp, dns_txt)
    h = org.owner.headers()
    body = _body(idp, org.client_id, client_secret="not-the-registered-secret")
    assert (await sso_client.put("/enterprise/v1/sso", json=body, headers=h)).status_code == 200
    report = (await sso_client.post("/enterprise/v1/sso/test", headers=h)).json()
    assert report["ok"] is False
    assert report["client_credentials"] == "rejected"
    assert "rejected the client id or secret" in report["error"]
    assert report["jwks_uri"] == f"{idp.issuer}/jwks"  # what it found before that

    # Saved disabled (so not checked), pointing at a port nobody listens on.
    dead = "http://127.0.0.1:9"
    body = _body(idp, org.client_id, issuer=dead, enabled=False)
    assert (await sso_client.put("/enterprise/v1/sso", json=body, headers=h)).status_code == 200
    report = (await sso_client.post("/enterprise/v1/sso/test", headers=h)).json()
    assert report["ok"] is False
    assert report["error"].startswith(
        f"the discovery document at {dead}/.well-known/openid-configuration could not be "
        "reached (ConnectError"
    ), report


@pytest.mark.parametrize(
    ("issuer", "says"),
    [
        ("IDP", "must use https"),
        ("https://127.0.0.1:8443", "must be a public address; 127.0.0.1 is loopback"),
        ("https://localhost", "must be a public host, not a local name"),
        ("https://10.1.2.3", "must be a public address; 10.1.2.3 is private"),
        ("https://169.254.169.254", "must be a public address"),
        ("https://[::1]", "must be a public address"),
        ("https://idp.rebind.example", "is refused by the egress policy"),
    ],
)
async def test_an_issuer_on_a_private_address_is_refused_by_the_egress_policy(
    client: httpx.AsyncClient, idp: Idp, fake_dns: Any, issuer: str, says: str
) -> None:
    """The shared app keeps the strict policy: no tenant reaches loopback or the private
    network by calling it an identity provider, however the address is spelled or hidden
    behind a name; nothing reaches the provider on loopback."""
    fake_dns.set("idp.rebind.example", ["127.0.0.1"])
    issuer = idp.issuer if issuer == "IDP" else issuer
    owner = await signup(client)
    before = len(idp.paths)
    resp = await client.put("/enterprise/v1/sso", json=_body(idp, issuer=issuer),
                            headers=owner.headers())  # fmt: skip
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["param"] == "issuer"
    assert says in error["message"], error
    assert "127.0.0.1" not in error["message"] or "rebind" not in issuer
    assert idp.paths[before:] == []


async def test_the_client_secret_never_comes_back_out(
    sso_client: httpx.AsyncClient,
    sso_resources: Resources,
    idp: Idp,
    dns_txt: FakeTxt,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    org = await configure(sso_client, idp, dns_txt)
    secret = org.client_secret
    h = org.owner.headers()
    seen = [
        await sso_client.get("/enterprise/v1/sso", headers=h),
        await sso_client.post("/enterprise/v1/sso/test", headers=h),
        await sso_client.put(
            "/enterprise/v1/sso", json=_body(idp, org.client_id, client_secret=secret), headers=h
        ),
        await sign_in(sso_client, idp, f"user-{uuid.uuid4().hex[:6]}@{DOMAIN}"),
    ]
    # A failing exchange and a failing test connection, whose errors quote the provider.
    body = _body(idp, org.client_id, client_secret=secret + "-wrong")
    seen.append(await sso_client.put("/enterprise/v1/sso", json=body, headers=h))
    seen.append(await sso_client.post("/enterprise/v1/sso/test", headers=h))
    back = await sign_in(sso_client, idp, f"user-{uuid.uuid4().hex[:6]}@{DOMAIN}")
    assert back.status_code == 401, back.text
    seen.append(back)
    assert seen[0].json()["client_secret_hint"] == f"{secret[:3]}…{secret[-3:]}"
    for resp in seen:
        assert secret not in resp.text, resp.text
        assert "client_secret_ciphertext" not in resp.text
    # Ours only: the provider runs in its own threads and logs what it was sent, as a
    # provider would in its own logs.
    here = threading.current_thread().name
    ours = [r for r in caplog.records if r.threadName == here]
    assert any(r.name.startswith("oxinf") for r in ours), "nothing of ours was logged"
    for record in ours:
        assert secret not in record.getMessage(), record
        assert secret not in str(record.__dict__), record
    async with sso_resources.sessions() as s:
        stored = await s.execute(text("SELECT client_secret_ciphertext FROM sso_configs"))
        ciphertext = stored.scalar_one()
        assert secret not in ciphertext
        assert sso_resources.secret_box.decrypt(ciphertext) == secret + "-wrong"
        audit = await s.execute(text("SELECT before::text, after::text FROM audit_events"))
        for row in audit.all():
            assert secret not in f"{row[0]} {row[1]}"
