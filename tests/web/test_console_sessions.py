"""Console sessions over HTTP: the cookie is a portal session, CSRF guards every form, the
login back-off applies, and nothing a refused form carried changes anything."""

from __future__ import annotations

import uuid

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from starlette.responses import Response

from config.runtime import Resources
from domain.identity import service as identity
from tests.fixtures.console import csrf_of, form_token, sign_in, sign_up
from tests.fixtures.portal import PASSWORD
from web.cookies import SESSION, CookiePolicy


@pytest.fixture
async def browser_like(app: FastAPI) -> httpx.AsyncClient:
    """A second client with its own cookie jar (another person, or another site's form)."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


async def count(resources: Resources, sql: str, **params: object) -> int:
    async with resources.sessions() as s:
        return int((await s.execute(text(sql), params)).scalar_one())


def session_cookie(client: httpx.AsyncClient) -> str:
    token = client.cookies.get(SESSION)
    assert token and token.startswith("oxs_")
    return token


async def test_root_and_console_send_signed_out_visitors_to_sign_in(
    client: httpx.AsyncClient,
) -> None:
    root = await client.get("/")
    assert (root.status_code, root.headers["location"]) == (303, "/console/sign-in")
    home = await client.get("/console")
    assert (home.status_code, home.headers["location"]) == (303, "/console/sign-in?next=%2Fconsole")
    htmx = await client.get("/console/members", headers={"HX-Request": "true"})
    assert htmx.status_code == 204
    assert htmx.headers["hx-redirect"] == "/console/sign-in?next=%2Fconsole%2Fmembers"

    await sign_up(client)
    assert (await client.get("/")).headers["location"] == "/console"
    assert (await client.get("/console/sign-in")).headers["location"] == "/console"


async def test_the_session_cookie_is_a_hardened_portal_session(client: httpx.AsyncClient) -> None:
    token = await form_token(client, "/console/sign-up")
    email = "cookie-person@example.com"
    resp = await client.post(
        "/console/sign-up", data={"email": email, "password": PASSWORD, "csrf_token": token}
    )
    assert resp.status_code == 303
    cookie = next(c for c in resp.headers.get_list("set-cookie") if c.startswith(SESSION + "="))
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "path", "samesite", "expires"} <= attributes
    assert "samesite=lax" in cookie.lower()
    assert "secure" not in attributes  # env=test; production is covered below

    # The very token /portal/v1/auth/login would have issued: the JSON API accepts it.
    bearer = {"authorization": f"Bearer {session_cookie(client)}"}
    me = await client.get("/portal/v1/me", headers=bearer)
    assert me.status_code == 200 and me.json()["email"] == email


def test_cookies_outside_dev_and_test_are_secure_and_host_locked() -> None:
    assert not CookiePolicy.for_env("dev").secure and not CookiePolicy.for_env("test").secure
    policy = CookiePolicy.for_env("production")
    response = Response()
    policy.set(response, SESSION, "oxs_x")
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("__Host-oxinf_session=oxs_x;")
    lowered = cookie.lower()
    assert "; secure" in lowered and "; httponly" in lowered and "samesite=lax" in lowered
    assert "path=/" in lowered and "domain" not in lowered


async def test_sign_out_revokes_the_session(client: httpx.AsyncClient) -> None:
    await sign_up(client)
    token = session_cookie(client)
    csrf = csrf_of((await client.get("/console")).text)
    resp = await client.post("/console/sign-out", data={"csrf_token": csrf})
    assert (resp.status_code, resp.headers["location"]) == (303, "/console/sign-in")
    assert SESSION not in client.cookies
    me = await client.get("/portal/v1/me", headers={"authorization": f"Bearer {token}"})
    assert me.status_code == 401  # revoked in the database, not only forgotten by the browser
    flash = await client.get("/console/sign-in")
    assert "You are signed out." in flash.text


async def test_forms_without_a_valid_csrf_token_are_refused_and_change_nothing(
    client: httpx.AsyncClient, browser_like: httpx.AsyncClient, resources: Resources
) -> None:
    # Sign-up: the pre-session cookie is there, the token is not.
    await client.get("/console/sign-up")
    email = "forged-signup@example.com"
    refused = await client.post("/console/sign-up", data={"email": email, "password": PASSWORD})
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("text/html")
    assert "This form could not be accepted" in refused.text
    assert await count(resources, "SELECT count(*) FROM users WHERE email = :e", e=email) == 0

    # Sign-in from another site: no pre-session cookie at all, so no token can match.
    await sign_up(client, "victim@example.com")
    sessions = await count(resources, "SELECT count(*) FROM portal_sessions")
    async with browser_like:
        forged = await browser_like.post(
            "/console/sign-in",
            data={"email": "victim@example.com", "password": PASSWORD, "csrf_token": "0" * 64},
        )
        assert forged.status_code == 403
        assert SESSION not in browser_like.cookies
        assert await count(resources, "SELECT count(*) FROM portal_sessions") == sessions
        assert await count(resources, "SELECT count(*) FROM login_throttles") == 0

        # Signed in: a token minted for another session does not open this one.
        await sign_up(browser_like)
        other_token = csrf_of((await browser_like.get("/console")).text)
    own_token = csrf_of((await client.get("/console")).text)
    assert other_token != own_token
    for data in ({}, {"csrf_token": ""}, {"csrf_token": other_token}):
        resp = await client.post("/console/sign-out", data=data)
        assert resp.status_code == 403, data
    assert (await client.get("/console")).status_code == 200  # still signed in

    # The header htmx sends is accepted in place of the field.
    resp = await client.post("/console/sign-out", headers={"X-CSRF-Token": own_token})
    assert resp.status_code == 303


async def test_the_login_back_off_applies_to_the_console(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    email = await sign_up(client)
    client.cookies.clear()
    for _ in range(resources.settings.login_max_failures):
        wrong = await sign_in(client, email, "wrong-password-1")
        assert wrong.status_code == 401
        assert "Email or password is wrong." in wrong.text
    locked = await sign_in(client, email)  # even the right password, while locked
    assert locked.status_code == 429
    assert int(locked.headers["retry-after"]) >= 1
    assert "Too many failed logins" in locked.text
    assert SESSION not in client.cookies


async def test_sign_up_has_the_api_rules(client: httpx.AsyncClient, resources: Resources) -> None:
    token = await form_token(client, "/console/sign-up")
    cases = [
        ("weak@example.com", "short1", 400, "Password must be at least 10 characters."),
        (
            "weak@example.com",
            "password123",
            400,
            "Password is too easy to guess: This is a very common password.",
        ),
        ("not-an-email", PASSWORD, 400, "Email is not a valid address."),
    ]
    for email, password, status, message in cases:
        resp = await client.post(
            "/console/sign-up", data={"email": email, "password": password, "csrf_token": token}
        )
        assert resp.status_code == status, (email, password)
        assert message in resp.text
        assert 'aria-invalid="true"' in resp.text
    assert await count(resources, "SELECT count(*) FROM users") == 0

    await sign_up(client, "Taken@Example.com")
    client.cookies.delete(SESSION)
    token = await form_token(client, "/console/sign-up")
    dup = await client.post(
        "/console/sign-up",
        data={"email": "taken@example.com", "password": PASSWORD, "csrf_token": token},
    )
    assert dup.status_code == 409
    assert "An account with this email already exists." in dup.text


@pytest.mark.parametrize(
    ("next_path", "lands_on"),
    [
        ("/console/members", "/console/members"),
        ("//evil.example/console", "/console"),
        ("/\\evil.example", "/console"),
        ("https://evil.example/console", "/console"),
        ("/console\r\nSet-Cookie: x=1", "/console"),
        ("/v1/models", "/console"),
    ],
)
async def test_sign_in_only_returns_to_console_paths(
    client: httpx.AsyncClient, resources: Resources, next_path: str, lands_on: str
) -> None:
    async with resources.sessions.begin() as s:
        await identity.create_user(s, resources.identity, "returner@example.com", PASSWORD)
    token = await form_token(client, "/console/sign-in")
    resp = await client.post(
        "/console/sign-in",
        data={
            "email": "returner@example.com",
            "password": PASSWORD,
            "csrf_token": token,
            "next": next_path,
        },
    )
    assert (resp.status_code, resp.headers["location"]) == (303, lands_on)


async def test_org_switch_accepts_only_the_viewers_orgs(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    email = await sign_up(client)
    async with resources.sessions.begin() as s:
        stranger = await identity.create_user(
            s, resources.identity, "stranger@example.com", PASSWORD
        )
        foreign = await identity.create_org(s, "Not Yours Inc", stranger.id)
        user = await identity.authenticate_session(s, resources.identity, session_cookie(client))
        team = await identity.create_org(s, "Team Rocket", user.id)
    assert user.email == email
    csrf = csrf_of((await client.get("/console")).text)

    for org_id in (foreign, uuid.uuid4()):
        resp = await client.post(
            "/console/orgs/switch", data={"org_id": str(org_id), "csrf_token": csrf}
        )
        assert resp.status_code == 404
        assert "You are not a member of that organization." in resp.text
        assert "oxinf_org" not in client.cookies

    bad = await client.post("/console/orgs/switch", data={"org_id": "nope", "csrf_token": csrf})
    assert bad.status_code == 400 and bad.headers["content-type"].startswith("text/html")

    ok = await client.post(
        "/console/orgs/switch",
        data={"org_id": str(team), "csrf_token": csrf, "next": "/console/members"},
    )
    assert (ok.status_code, ok.headers["location"]) == (303, "/console/members")
    home = await client.get("/console")
    assert '<p class="eyebrow">Team Rocket</p>' in home.text

    # A forged org cookie (an org the viewer left, or never had) falls back to their own.
    client.cookies.set("oxinf_org", str(foreign))
    home = await client.get("/console")
    assert home.status_code == 200
    assert "Not Yours Inc" not in home.text
    assert '<p class="eyebrow">Personal</p>' in home.text
