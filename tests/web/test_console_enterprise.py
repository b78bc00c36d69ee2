"""The org administration pages over HTTP: who may open which, CSRF on every form, and the
rules the forms go through (the same services as /enterprise/v1)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from config.runtime import Resources
from domain.enterprise import structure
from domain.identity import service as identity
from tests.fixtures.console import csrf_of
from tests.fixtures.portal import PASSWORD
from tests.web.enterprise_helpers import audit_actions, make_company, new_email, person

ADMIN_PAGES = (
    "/console/org", "/console/members", "/console/departments", "/console/cost-centers",
    "/console/budgets", "/console/policies", "/console/audit",
)  # fmt: skip
FINANCE_PAGES = ("/console/invoices",)


def month() -> str:
    return datetime.now(UTC).strftime("%Y-%m")


async def test_each_role_sees_exactly_its_pages(app: FastAPI, resources: Resources) -> None:
    company = await make_company(resources)
    statement = f"/console/invoices/{month()}"
    invoice_pages = (*FINANCE_PAGES, statement, statement + ".csv", statement + ".json")
    expected = {
        "owner": set(ADMIN_PAGES) | set(invoice_pages),
        "admin": set(ADMIN_PAGES) | set(invoice_pages),
        "finance": set(invoice_pages),
        "member": set(),
    }
    for role, email in company.emails.items():
        async with person(app, email, company.org_id) as c:
            for path in (*ADMIN_PAGES, *invoice_pages):
                resp = await c.get(path)
                allowed = path in expected[role]
                assert resp.status_code == (200 if allowed else 403), (role, path, resp.text)
            home = await c.get("/console")
            links = set(re.findall(r'<a href="(/console/[a-z-]+)"', home.text))
            if role == "member":
                assert not links & {*ADMIN_PAGES, *FINANCE_PAGES}, links
            elif role == "finance":
                assert "/console/invoices" in links and not links & set(ADMIN_PAGES)
            else:
                assert {"/console/members", "/console/org"} <= links
            if role == "finance":
                tabs = await c.get("/console/invoices")
                assert 'href="/console/budgets"' not in tabs.text  # no tab to a refused page


@pytest.mark.parametrize(
    "path",
    [
        "/console/org", "/console/org/webhook-secret/rotate", "/console/members/invites",
        "/console/departments", "/console/cost-centers", "/console/budgets",
    ],
)  # fmt: skip
async def test_forms_without_csrf_token_are_refused(
    app: FastAPI, resources: Resources, path: str
) -> None:
    company = await make_company(resources)
    before = await audit_actions(resources, company.org_id)
    async with person(app, company.emails["owner"], company.org_id) as c:
        fields = {"name": "Forged", "label": "Forged", "email": "x@example.com"}
        resp = await c.post(path, data=fields)
        assert resp.status_code == 403
        assert "This form could not be accepted" in resp.text
        resp = await c.post(path, data={**fields, "csrf_token": "0" * 64})
        assert resp.status_code == 403
    assert await audit_actions(resources, company.org_id) == before


async def _invite(c: httpx.AsyncClient, email: str, **fields: str) -> str:
    page = await c.get("/console/members")
    resp = await c.post(
        "/console/members/invites",
        data={"email": email, "role": "member", "csrf_token": csrf_of(page.text), **fields},
    )
    assert resp.status_code == 200, resp.text
    found = re.search(r"http://testserver(/console/invites/inv_[0-9a-f]+)", resp.text)
    assert found, resp.text
    return found.group(1)


async def test_invite_link_works_once_for_its_email_until_it_expires(
    app: FastAPI, resources: Resources
) -> None:
    company = await make_company(resources)
    invitee, stranger = new_email("new"), company.emails["finance"]
    async with person(app, company.emails["admin"], company.org_id) as admin:
        link = await _invite(admin, invitee)
        assert invitee in (await admin.get("/console/members")).text  # listed as open
        # Someone signed in as another address cannot take it.
        async with person(app, stranger, company.org_id) as other:
            page = await other.get(link)
            assert f"This invite is for {invitee}" in page.text
            resp = await other.post(link + "/accept", data={"csrf_token": csrf_of(page.text)})
            assert resp.status_code == 403 and "sign in with that address" in resp.text

        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as new:
            page = await new.get(link)
            assert page.status_code == 200 and "Create account and join" in page.text
            assert "expires" in page.text
            joined = await new.post(
                link + "/join",
                data={"password": PASSWORD, "csrf_token": csrf_of(page.text)},
            )
            assert joined.status_code == 303 and joined.headers["location"] == "/console"
            home = await new.get("/console")
            assert "Acme Corp · member" in home.text and "You joined as member" in home.text
            # The link is spent.
            again = await new.get(link)
            assert "This invite has been accepted" in again.text

        members = await admin.get("/console/members")
        assert invitee in members.text and "3 seats used" not in members.text
        assert "5 seats used" in members.text

        # An expired link is refused even to the right person, with a form opened in time.
        late = new_email("late")
        link = await _invite(admin, late)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as new:
            token = csrf_of((await new.get(link)).text)
            async with resources.sessions.begin() as s:
                await s.execute(
                    text("UPDATE org_invites SET expires_at = :t WHERE email = :e"),
                    {"t": datetime.now(UTC) - timedelta(seconds=1), "e": late},
                )
            page = await new.get(link)
            assert "This invite has expired" in page.text and "/join" not in page.text
            resp = await new.post(link + "/join", data={"password": PASSWORD, "csrf_token": token})
            assert resp.status_code == 409
        async with resources.sessions() as s:
            made = await s.execute(text("SELECT count(*) FROM users WHERE email = :e"), {"e": late})
            assert made.scalar_one() == 0  # the refused join left no account behind
    assert (await httpx.AsyncClient(transport=transport, base_url="http://testserver").get(
        "/console/invites/inv_" + "0" * 48)).status_code == 404  # fmt: skip
    actions = await audit_actions(resources, company.org_id)
    assert actions.count("invite.created") == 2 and actions.count("invite.accepted") == 1


async def test_archived_department_keeps_members_and_takes_no_new_ones(
    app: FastAPI, resources: Resources
) -> None:
    company = await make_company(resources)
    async with person(app, company.emails["admin"], company.org_id) as c:
        page = await c.get("/console/departments")
        token = csrf_of(page.text)
        resp = await c.post("/console/departments", data={"label": "Legal", "csrf_token": token})
        assert resp.status_code == 303
        async with resources.sessions() as s:
            (dept,) = await structure.list_entities(s, "department", company.owner_ctx)
        members = await c.get("/console/members")
        member_id = re.search(
            r'action="/console/members/([0-9a-f-]{36})"[^>]*>\s*<input[^>]*>\s*<button[^>]*>Save',
            members.text,
        )
        assert member_id
        uid = member_id.group(1)
        role = "admin" if uid != str(company.owner_ctx.user.id) else "owner"
        fields = {"role": role, "department_id": str(dept["id"]), "cost_center_id": ""}
        resp = await c.post(f"/console/members/{uid}", data={**fields, "csrf_token": token})
        assert resp.status_code == 303
        resp = await c.post(
            f"/console/departments/{dept['id']}/archive", data={"csrf_token": token}
        )
        assert resp.status_code == 303
        listing = await c.get("/console/departments")
        assert "Archived" in listing.text and "Restore Legal" in listing.text
        # Not offered for invites any more, and refused if sent anyway.
        assert (
            str(dept["id"])
            not in (await c.get("/console/members"))
            .text.split("Invite someone")[1]
            .split("</form>")[0]
        )
        resp = await c.post("/console/members/invites", data={
            "email": new_email("x"), "role": "member", "department_id": str(dept["id"]),
            "csrf_token": token})  # fmt: skip
        assert resp.status_code == 303
        flashed = await c.get("/console/members")
        assert "This department is archived; restore it first." in flashed.text
    actions = await audit_actions(resources, company.org_id)
    assert "department.archived" in actions and "invite.created" not in actions


async def test_audit_filters_and_pages(app: FastAPI, resources: Resources) -> None:
    company = await make_company(resources)
    async with person(app, company.emails["admin"], company.org_id) as c:
        token = csrf_of((await c.get("/console/cost-centers")).text)
        for i in range(55):
            resp = await c.post(
                "/console/cost-centers", data={"label": f"CC-{i:03d}", "csrf_token": token}
            )
            assert resp.status_code == 303
        first = await c.get("/console/audit", params={"action": "cost_center.created"})
        assert first.text.count('data-action="cost_center.created"') == 50
        older = re.search(r'href="(/console/audit\?[^"]+cursor=\d+)"', first.text)
        assert older
        second = await c.get(older.group(1).replace("&amp;", "&"))
        assert second.text.count('data-action="cost_center.created"') == 5
        assert "CC-000" in second.text and "Older events" not in second.text
        by_actor = await c.get("/console/audit", params={"actor": company.emails["owner"]})
        assert 'data-action="member.added"' in by_actor.text
        assert 'data-action="cost_center.created"' not in by_actor.text
        nobody = await c.get("/console/audit", params={"actor": "nobody@example.com"})
        assert "Nothing matches these filters" in nobody.text
        bad = await c.get("/console/audit", params={"since": "yesterday"})
        assert bad.status_code == 400


async def test_console_invoice_downloads_equal_the_api_documents(
    app: FastAPI, resources: Resources, client: httpx.AsyncClient
) -> None:
    company = await make_company(resources)
    async with person(app, company.emails["finance"], company.org_id) as c:
        csv_page = await c.get(f"/console/invoices/{month()}.csv")
        json_page = await c.get(f"/console/invoices/{month()}.json")
    assert csv_page.headers["content-type"].startswith("text/csv")
    assert csv_page.text.splitlines()[0].startswith("month,cost_center")
    token = await _portal_token(client, company.emails["finance"])
    headers = {"authorization": f"Bearer {token}", "x-org-id": str(company.org_id)}
    api_csv = await client.get(f"/enterprise/v1/invoices/{month()}.csv", headers=headers)
    api_json = await client.get(f"/enterprise/v1/invoices/{month()}", headers=headers)
    assert api_csv.status_code == 200, api_csv.text
    assert csv_page.content == api_csv.content
    assert json_page.json() == api_json.json()


async def _portal_token(client: httpx.AsyncClient, email: str) -> str:
    resp = await client.post("/portal/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert resp.status_code == 200, resp.text
    return str(resp.json()["token"])


async def test_existing_user_signs_in_from_the_link_and_joins(
    app: FastAPI, resources: Resources
) -> None:
    company = await make_company(resources)
    existing = new_email("existing")
    async with resources.sessions.begin() as s:
        await identity.create_user(s, resources.identity, existing, PASSWORD)
    async with person(app, company.emails["admin"], company.org_id) as admin:
        link = await _invite(admin, existing.upper(), role="finance")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        page = await c.get(link)
        sign_in_href = re.search(r'href="(/console/sign-in\?next=[^"]+)"', page.text)
        assert sign_in_href and "Sign in to join" in page.text
        form = await c.get(sign_in_href.group(1).replace("&amp;", "&"))
        signed = await c.post(
            "/console/sign-in",
            data={"email": existing, "password": PASSWORD, "csrf_token": csrf_of(form.text),
                  "next": link},
        )  # fmt: skip
        assert signed.status_code == 303 and signed.headers["location"] == link
        page = await c.get(link)
        assert "Join Acme Corp" in page.text and "/accept" in page.text
        joined = await c.post(link + "/accept", data={"csrf_token": csrf_of(page.text)})
        assert joined.status_code == 303
        home = await c.get("/console")
        assert "Acme Corp · finance" in home.text and "You joined as finance" in home.text
        # Finance lands on the org's invoices, and nothing else of its administration.
        assert 'href="/console/invoices"' in home.text
        assert (await c.get("/console/members")).status_code == 403
