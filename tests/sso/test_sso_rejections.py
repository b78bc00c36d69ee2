"""What a sign-in must refuse: a state it did not issue (or has spent), a code already
redeemed, an ID token for another client, for another sign-in, expired or signed by another
key, and an address outside the org's verified domains. None of them creates a user."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
from sqlalchemy import text

from config.runtime import Resources
from tests.fixtures.oidc import Idp, query_of
from tests.sso.conftest import FakeTxt
from tests.sso.helpers import CALLBACK, DOMAIN, configure, sign_in, start, to_callback


def _email() -> str:
    return f"user-{uuid.uuid4().hex[:8]}@{DOMAIN}"


def _with(url: httpx.URL, **params: str) -> httpx.URL:
    return url.copy_merge_params(params)


async def _users(resources: Resources, email: str) -> int:
    async with resources.sessions() as s:
        found = await s.execute(text("SELECT count(*) FROM users WHERE email = :e"), {"e": email})
        return int(found.scalar_one())


def _error(resp: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    error: dict[str, Any] = resp.json()["error"]
    assert error["code"] == code, error
    return error


async def test_a_state_we_did_not_issue_is_refused_and_the_real_one_still_works(
    sso_client: httpx.AsyncClient, sso_resources: Resources, idp: Idp, dns_txt: FakeTxt
) -> None:
    await configure(sso_client, idp, dns_txt)
    email = _email()
    back = await to_callback(sso_client, idp, email)
    forged = await sso_client.get(str(_with(back, state="forged-" + "x" * 40)))
    error = _error(forged, 400, "invalid_request")
    assert error["param"] == "state"
    assert "start the sign-in again" in error["message"]
    assert await _users(sso_resources, email) == 0
    # The wrong state spent nothing: the real one still finishes.
    assert (await sso_client.get(str(back))).status_code == 200


async def test_a_replayed_state_and_a_replayed_code_are_refused(
    sso_client: httpx.AsyncClient, idp: Idp, dns_txt: FakeTxt
) -> None:
    await configure(sso_client, idp, dns_txt)
    email = _email()
    back = await to_callback(sso_client, idp, email)
    assert (await sso_client.get(str(back))).status_code == 200
    replayed = await sso_client.get(str(back))  # the same state (and code) a second time
    assert _error(replayed, 400, "invalid_request")["param"] == "state"

    # The redeemed code under a fresh, valid state: the provider refuses it.
    fresh = query_of(httpx.URL(await start(sso_client, email)))["state"]
    calls = idp.token_calls
    reused = await sso_client.get(CALLBACK, params={"code": query_of(back)["code"], "state": fresh})
    error = _error(reused, 401, "authentication_required")
    assert "refused the authorization code (invalid_grant)" in error["message"]
    assert idp.token_calls == calls + 1
    # And that state is spent too: a failed finish is still a finish.
    again = await sso_client.get(CALLBACK, params={"code": "whatever", "state": fresh})
    assert _error(again, 400, "invalid_request")["param"] == "state"


async def test_an_expired_state_is_refused(
    sso_client: httpx.AsyncClient, sso_resources: Resources, idp: Idp, dns_txt: FakeTxt
) -> None:
    await configure(sso_client, idp, dns_txt)
    back = await to_callback(sso_client, idp, _email())
    async with sso_resources.sessions() as s:
        await s.execute(text("UPDATE sso_logins SET expires_at = now() - interval '1 second'"))
        await s.commit()
    assert _error(await sso_client.get(str(back)), 400, "invalid_request")["param"] == "state"


async def test_an_id_token_for_another_client_is_refused(
    sso_client: httpx.AsyncClient, sso_resources: Resources, idp: Idp, dns_txt: FakeTxt
) -> None:
    await configure(sso_client, idp, dns_txt)
    email = _email()
    back = await to_callback(sso_client, idp, email)
    idp.tamper_next = lambda claims: {**claims, "aud": "some-other-client"}
    error = _error(await sso_client.get(str(back)), 401, "authentication_required")
    assert error["message"] == "the ID token was issued for another client (audience)"
    assert await _users(sso_resources, email) == 0


async def test_an_id_token_for_another_sign_in_is_refused(
    sso_client: httpx.AsyncClient, sso_resources: Resources, idp: Idp, dns_txt: FakeTxt
) -> None:
    """The browser's request reaches the provider with another nonce (as an attacker who
    injects their own sign-in would send): the ID token does not answer ours."""
    await configure(sso_client, idp, dns_txt)
    email = _email()
    back = await to_callback(
        sso_client, idp, email, edit_url=lambda url: _with(url, nonce="attackers-nonce-" * 3)
    )
    error = _error(await sso_client.get(str(back)), 401, "authentication_required")
    assert error["message"] == "the ID token does not answer this sign-in (nonce mismatch)"
    assert await _users(sso_resources, email) == 0


async def test_an_expired_id_token_is_refused(
    sso_client: httpx.AsyncClient, sso_resources: Resources, idp: Idp, dns_txt: FakeTxt
) -> None:
    await configure(sso_client, idp, dns_txt)
    email = _email()
    back = await to_callback(sso_client, idp, email)
    hour_ago = int(time.time()) - 3600
    idp.tamper_next = lambda claims: {**claims, "iat": hour_ago - 600, "exp": hour_ago}
    error = _error(await sso_client.get(str(back)), 401, "authentication_required")
    assert error["message"] == "the ID token has expired"
    assert await _users(sso_resources, email) == 0


async def test_an_id_token_signed_by_another_key_is_refused(
    sso_client: httpx.AsyncClient, sso_resources: Resources, idp: Idp, dns_txt: FakeTxt
) -> None:
    await configure(sso_client, idp, dns_txt)
    email = _email()
    back = await to_callback(sso_client, idp, email)
    idp.sign_with_foreign_key = True
    error = _error(await sso_client.get(str(back)), 401, "authentication_required")
    assert error["message"].startswith("the ID token's signature is not valid")
    assert await _users(sso_resources, email) == 0


async def test_an_email_outside_the_verified_domains_is_refused(
    sso_client: httpx.AsyncClient, sso_resources: Resources, idp: Idp, dns_txt: FakeTxt
) -> None:
    """The provider may vouch for any address; the org's word counts for its domains only."""
    await configure(sso_client, idp, dns_txt)
    email = _email()
    outsider = f"ceo-{uuid.uuid4().hex[:6]}@other-company.test"
    back = await to_callback(sso_client, idp, email, email=outsider)
    error = _error(await sso_client.get(str(back)), 403, "permission_denied")
    assert outsider in error["message"]
    assert "not in an email domain this organization has verified" in error["message"]
    assert await _users(sso_resources, outsider) == 0
    assert await _users(sso_resources, email) == 0


async def test_an_unverified_email_or_no_email_is_refused(
    sso_client: httpx.AsyncClient, idp: Idp, dns_txt: FakeTxt
) -> None:
    await configure(sso_client, idp, dns_txt)
    email = _email()
    unverified = await sign_in(sso_client, idp, email, email_verified=False)
    assert "has not verified" in _error(unverified, 401, "authentication_required")["message"]
    email = _email()
    back = await to_callback(sso_client, idp, email)
    idp.tamper_next = lambda claims: {k: v for k, v in claims.items() if k != "email"}
    missing = await sso_client.get(str(back))
    assert "sent no email address" in _error(missing, 401, "authentication_required")["message"]


async def test_the_user_refusing_at_the_provider_spends_the_state(
    sso_client: httpx.AsyncClient, idp: Idp, dns_txt: FakeTxt
) -> None:
    await configure(sso_client, idp, dns_txt)
    state = query_of(httpx.URL(await start(sso_client, _email())))["state"]
    params = {"state": state, "error": "access_denied", "error_description": "user said no"}
    denied = await sso_client.get(CALLBACK, params=params)
    error = _error(denied, 401, "authentication_required")
    assert error["message"] == (
        "the identity provider refused the sign-in (access_denied): user said no"
    )
    again = await sso_client.get(CALLBACK, params={"state": state, "code": "x"})
    assert _error(again, 400, "invalid_request")["param"] == "state"


async def test_bad_callback_input_is_a_400_never_a_500(sso_client: httpx.AsyncClient) -> None:
    for params in (
        {},
        {"code": "abc"},
        {"state": ""},
        {"state": "s" * 201, "code": "c"},
        {"state": "nul\x00byte", "code": "c"},
        {"state": "unknown", "code": "c" * 4001},
        {"state": "unknown"},
        {"state": "unknown", "code": "c"},
    ):
        resp = await sso_client.get(CALLBACK, params=params)
        assert resp.status_code == 400, (params, resp.text)
        assert resp.json()["error"]["code"] == "invalid_request"
