"""An org with SSO configured against the test provider, and a sign-in through it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from tests.fixtures.oidc import Idp
from tests.fixtures.portal import PortalUser, signup
from tests.sso.conftest import FakeTxt

CALLBACK = "http://testserver/portal/v1/auth/sso/callback"
DOMAIN = "acme.test"


@dataclass
class SsoOrg:
    owner: PortalUser
    client_id: str
    client_secret: str
    config: dict[str, Any]


async def configure(
    client: httpx.AsyncClient,
    idp: Idp,
    dns_txt: FakeTxt,
    *,
    domain: str = DOMAIN,
    verify: bool = True,
    redirect_uri: str = CALLBACK,
    **fields: Any,
) -> SsoOrg:
    """An owner configures SSO for their org and proves the domain with its TXT record;
    `redirect_uri` is what is registered at the provider."""
    owner = await signup(client)
    client_id, secret = await idp.register_client(redirect_uri)
    body = {"issuer": idp.issuer, "client_id": client_id, "client_secret": secret,
            "domains": [domain], **fields}  # fmt: skip
    put = await client.put("/enterprise/v1/sso", json=body, headers=owner.headers())
    assert put.status_code == 200, put.text
    config = put.json()
    if verify:
        for d in config["domains"]:
            dns_txt.publish(d["txt_record_name"], d["txt_record_value"])
        verified = await client.post("/enterprise/v1/sso/domains/verify", headers=owner.headers())
        assert verified.status_code == 200, verified.text
        config = verified.json()
        assert all(d["verified"] for d in config["domains"]), config
    return SsoOrg(owner, client_id, secret, config)


async def start(client: httpx.AsyncClient, email: str) -> str:
    resp = await client.post("/portal/v1/auth/sso/start", json={"email": email})
    assert resp.status_code == 200, resp.text
    return str(resp.json()["authorization_url"])


async def to_callback(
    client: httpx.AsyncClient,
    idp: Idp,
    email: str,
    /,
    *,
    edit_url: Callable[[httpx.URL], httpx.URL] | None = None,
    **claims: Any,
) -> httpx.URL:
    """Start, then the provider's form: the URL the browser is sent back to, not yet
    followed. `claims` replace what the provider says of the user (email by default)."""
    await idp.set_user(email, **{"email": email, "email_verified": True, **claims})
    url = httpx.URL(await start(client, email))
    back = await idp.authorize(str(edit_url(url) if edit_url else url), email)
    assert str(back).startswith(CALLBACK), back
    return back


async def sign_in(
    client: httpx.AsyncClient, idp: Idp, email: str, /, **claims: Any
) -> httpx.Response:
    """The whole browser round trip: start, the provider's form, back to our callback."""
    return await client.get(str(await to_callback(client, idp, email, **claims)))
