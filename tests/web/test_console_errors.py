"""Console paths get HTML error pages with the request id; API paths keep the JSON envelope."""

from __future__ import annotations

import httpx
from fastapi import APIRouter, FastAPI

from config.runtime import Resources
from domain.identity import repository as identity_repo
from domain.identity import service as identity
from tests.fixtures.console import sign_in, sign_up
from tests.fixtures.portal import PASSWORD
from web.errors import PageRoute
from web.render import CSP


def is_html(resp: httpx.Response) -> bool:
    return resp.headers["content-type"].startswith("text/html")


async def test_unknown_console_urls_get_the_404_page(client: httpx.AsyncClient) -> None:
    for path in ("/console/nope", "/console/members/x/y", "/help/nothing-here"):
        resp = await client.get(path)
        assert resp.status_code == 404 and is_html(resp), path
        assert "Page not found" in resp.text
        request_id = resp.headers["x-request-id"]
        assert f"<code>{request_id}</code>" in resp.text
        assert resp.headers["content-security-policy"] == CSP

    wrong_method = await client.get("/console/sign-out")
    assert wrong_method.status_code == 405 and is_html(wrong_method)


async def test_api_paths_keep_the_json_envelope(client: httpx.AsyncClient) -> None:
    for path, status, code in (
        ("/v1/nope", 404, "not_found"),
        ("/portal/v1/me", 401, "authentication_required"),
        ("/consolex", 404, "not_found"),  # a prefix of a console path is not one
    ):
        resp = await client.get(path)
        assert resp.status_code == status, path
        body = resp.json()["error"]
        assert body["code"] == code
        assert body["request_id"] == resp.headers["x-request-id"]
    invalid = await client.post("/portal/v1/auth/login", json={"email": 1})
    assert invalid.headers["content-type"] == "application/json"
    assert invalid.json()["error"]["code"] == "invalid_request"


async def test_a_failing_page_shows_the_500_page_without_internals(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    broken = APIRouter(route_class=PageRoute)

    @broken.get("/console/broken")
    async def explode() -> None:
        raise RuntimeError("secret internals: postgres://user:hunter2@db")

    app.include_router(broken)
    resp = await client.get("/console/broken")
    assert resp.status_code == 500 and is_html(resp)
    assert "Something went wrong on our side" in resp.text
    assert f"<code>{resp.headers['x-request-id']}</code>" in resp.text
    assert "hunter2" not in resp.text and "RuntimeError" not in resp.text


async def test_a_member_gets_the_403_page_and_no_link_for_admin_pages(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    async with resources.sessions.begin() as s:
        owner = await identity.create_user(s, resources.identity, "boss@example.com", PASSWORD)
        org_id = await identity.create_org(s, "Shared Org", owner.id)
        member = await identity.create_user(s, resources.identity, "crew@example.com", PASSWORD)
        await identity_repo.insert_membership(s, member.id, org_id, "member")
    assert (await sign_in(client, "crew@example.com")).status_code == 303
    client.cookies.set("oxinf_org", str(org_id))

    home = await client.get("/console")
    assert '<p class="eyebrow">Shared Org</p>' in home.text
    assert 'href="/console/members"' not in home.text
    resp = await client.get("/console/members")
    assert resp.status_code == 403 and is_html(resp)
    assert "for this organization&#39;s owners and admins" in resp.text
    assert "crew@example.com" not in resp.text.split("<main", 1)[1]  # no member list leaked

    client.cookies.delete("oxinf_org")  # back in their own org, where they are the owner
    own = await client.get("/console")
    assert 'href="/console/members"' in own.text
    assert (await client.get("/console/members")).status_code == 200


async def test_pages_carry_the_security_headers(client: httpx.AsyncClient) -> None:
    await sign_up(client)
    resp = await client.get("/console")
    assert resp.headers["content-security-policy"] == CSP
    assert "script-src 'self'" in CSP and "unsafe-inline" not in CSP
    assert resp.headers["x-frame-options"] == "DENY"
    assert resp.headers["cache-control"] == "no-store"
    assert "<script>" not in resp.text  # nothing inline: the CSP would block it anyway
