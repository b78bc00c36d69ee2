"""Single sign-on in the console, in a real Chromium against oidc-provider-mock: an owner
sets it up on /console/sso, a new person of that email domain signs in through the
provider and lands in the org with the default role, and "require SSO" turns that domain's
password sign-in into a message saying how to sign in."""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from playwright.async_api import Page, Route, expect
from sqlalchemy import text

from config.runtime import Resources
from edge.sso import CONSOLE_CALLBACK_PATH
from tests.fixtures.browser import (  # noqa: F401
    OpenPage,
    browser,
    new_email,
    open_page,
    page,
    sign_in,
    sign_up,
    snap,
)
from tests.fixtures.conditions import eventually
from tests.fixtures.oidc import Idp
from tests.fixtures.portal import PASSWORD
from tests.fixtures.relay import live_server
from tests.sso.conftest import FakeTxt
from tests.sso.helpers import DOMAIN, configure


@pytest.fixture
async def console_url(sso_app: FastAPI) -> AsyncIterator[str]:
    """The console whose SSO may reach the provider on loopback (see conftest)."""
    async with live_server(sso_app) as url:
        yield url


async def through_provider(tab: Page, idp: Idp, email: str) -> None:
    """Sign-in page -> "Use single sign-on" -> the provider's form -> back to the console."""
    await tab.goto("/console/sign-in")
    await tab.get_by_label("Email").fill(email)
    await tab.get_by_role("button", name="Use single sign-on").click()
    await expect(tab).to_have_url(re.compile("^" + re.escape(idp.issuer) + "/oauth2/authorize"))
    await tab.get_by_placeholder("sub").fill(email)
    await tab.get_by_role("button", name="Authorize").click()


async def test_owner_sets_up_sso_a_new_person_signs_in_and_sso_becomes_required(
    open_page: OpenPage,  # noqa: F811
    idp: Idp,
    dns_txt: FakeTxt,
    sso_resources: Resources,
) -> None:
    domain = f"corp-{secrets.token_hex(3)}.test"
    owner = await open_page()
    owner_email = new_email("owner")
    await sign_up(owner, owner_email)
    await expect(owner).to_have_url(re.compile(r"/console$"))
    org_name = str(await owner.locator(".eyebrow").first.text_content()).strip()

    # The page is in the owner's navigation; nothing is set up yet.
    await (
        owner.get_by_role("navigation", name="Console")
        .get_by_role("link", name="Single sign-on")
        .click()
    )
    await expect(owner).to_have_url(re.compile(r"/console/sso$"))
    await expect(owner.get_by_test_id("sso-status")).to_have_text("Not set up")
    redirect_uri = (await owner.locator("#redirect-console").inner_text()).strip()
    assert redirect_uri.endswith("/console/sign-in/sso/callback"), redirect_uri
    await snap(owner, "sso-setup")

    # The owner registers the console's redirect URI at the provider and fills the form.
    client_id, client_secret = await idp.register_client(redirect_uri)
    await owner.get_by_label("Issuer URL").fill(idp.issuer)
    await owner.get_by_label("Client ID").fill(client_id)
    await owner.get_by_label("Client secret").fill(client_secret)
    await owner.get_by_label("Email domains").fill(domain)
    await owner.get_by_label("Default role").select_option("finance")
    await owner.get_by_role("button", name="Set up single sign-on").click()
    await expect(owner.get_by_role("status")).to_contain_text("Single sign-on is set up.")
    row = owner.locator(f'tr[data-domain="{domain}"]')
    await expect(row).to_contain_text("Pending")
    await expect(owner.get_by_text(client_secret)).to_have_count(0)  # write-only

    # Before the TXT record exists, verifying says so; once published, the domain is proved.
    await owner.get_by_role("button", name="Verify domains").click()
    await expect(owner.get_by_role("status")).to_contain_text("No matching TXT record")
    name = (await row.locator("td").nth(2).inner_text()).strip()
    value = (await row.locator("td").nth(3).inner_text()).strip()
    assert name == f"_oxinf-verification.{domain}"
    dns_txt.publish(name, value)
    await owner.get_by_role("button", name="Verify domains").click()
    await expect(owner.get_by_role("status")).to_contain_text("Every domain is verified.")
    await expect(row).to_contain_text("Verified")

    # Test connection answers in place (htmx) with what the provider said.
    await owner.get_by_role("button", name="Test connection").click()
    outcome = owner.get_by_test_id("sso-test-outcome")
    await expect(outcome).to_contain_text("Connection works")
    await expect(owner.locator(".sso-test dl")).to_contain_text(idp.issuer)
    await snap(owner, "sso-configured")

    # A new person of that domain signs in through the provider: no account existed.
    person = f"new.hire-{secrets.token_hex(3)}@{domain}"
    await idp.set_user(person, email=person, email_verified=True)
    visitor = await open_page()
    await visitor.goto("/console/sign-in")
    await snap(visitor, "sso-sign-in")
    await through_provider(visitor, idp, person)
    await expect(visitor).to_have_url(re.compile(r"/console$"))
    await expect(visitor.get_by_role("status")).to_contain_text(
        f"Signed in with single sign-on as {person}."
    )
    await expect(visitor.locator(".menu-role")).to_have_text(f"Finance in {org_name}")
    await snap(visitor, "sso-signed-in")
    async with sso_resources.sessions() as s:
        found = await s.execute(
            text(
                "SELECT u.email, m.role, u.password_hash IS NULL FROM memberships m"
                " JOIN users u ON u.id = m.user_id WHERE m.org_id IN"
                " (SELECT org_id FROM memberships o JOIN users w ON w.id = o.user_id"
                "  WHERE w.email = :owner AND o.role = 'owner') ORDER BY m.role"
            ),
            {"owner": owner_email},
        )
        assert found.all() == [(person, "finance", True), (owner_email, "owner", False)]

    # Entering just the email (no password) also goes to the provider, and signs in again.
    again = await open_page()
    await again.goto("/console/sign-in")
    await again.get_by_label("Email").fill(person)
    await again.get_by_role("button", name="Sign in").click()
    await expect(again).to_have_url(re.compile("^" + re.escape(idp.issuer) + "/oauth2/authorize"))
    await again.get_by_placeholder("sub").fill(person)
    await again.get_by_role("button", name="Authorize").click()
    await expect(again).to_have_url(re.compile(r"/console$"))
    await expect(again.locator(".menu-role")).to_have_text(f"Finance in {org_name}")

    # "Require SSO": the stored secret is kept (the field left empty), password sign-in
    # for the domain is refused with how to sign in instead.
    await owner.goto("/console/sso")
    await owner.get_by_label("Require single sign-on").check()
    await owner.get_by_role("button", name="Save").click()
    await expect(owner.get_by_role("status")).to_contain_text("Single sign-on is saved.")
    await expect(owner.get_by_test_id("sso-status")).to_have_text("On · required")
    await expect(owner.get_by_label("Require single sign-on")).to_be_checked()

    blocked = await open_page()
    await sign_in(blocked, f"someone@{domain}", PASSWORD)
    alert = blocked.get_by_role("alert")
    await expect(alert).to_contain_text(f"{org_name} requires single sign-on for {domain}")
    await expect(alert).to_contain_text("Use single sign-on")
    await expect(blocked).to_have_url(re.compile(r"/console/sign-in$"))
    await snap(blocked, "sso-required")
    # Other domains sign in with their password as before.
    other = await open_page()
    await sign_in(other, owner_email, PASSWORD)
    await expect(other).to_have_url(re.compile(r"/console$"))

    # The org's audit log shows each step: configured, verified, signed in, required.
    await owner.goto("/console/audit")
    trail = owner.get_by_test_id("audit")
    for action in ("sso.configured", "sso.domain_verified", "sso.signed_in", "sso.updated"):
        await expect(trail).to_contain_text(action)
    await snap(owner, "sso-audit")


async def test_a_callback_this_browser_did_not_start_is_refused(
    page: Page,  # noqa: F811
) -> None:
    response = await page.goto("/console/sign-in/sso/callback?state=made-up&code=stolen")
    assert response is not None and response.status == 400
    await expect(page.get_by_role("alert")).to_contain_text("not started in this browser")


async def test_a_sign_in_started_in_another_browser_is_refused_there(
    open_page: OpenPage,  # noqa: F811
    console_url: str,
    sso_client: httpx.AsyncClient,
    idp: Idp,
    dns_txt: FakeTxt,
) -> None:
    """Login CSRF: someone who starts a sign-in and sends the provider's way back to a
    victim's browser does not sign the victim in; the browser that started it still can."""
    await configure(sso_client, idp, dns_txt, redirect_uri=console_url + CONSOLE_CALLBACK_PATH)
    email = f"mallory-{secrets.token_hex(3)}@{DOMAIN}"
    await idp.set_user(email, email=email, email_verified=True)
    attacker = await open_page()
    captured: list[str] = []

    async def hold(route: Route) -> None:
        """The provider's answer to its form, kept instead of followed."""
        if route.request.method != "POST":
            await route.continue_()
            return
        answer = await route.fetch(max_redirects=0)
        captured.append(answer.headers["location"])
        await route.fulfill(status=200, content_type="text/plain", body="held")

    at_provider = re.compile("^" + re.escape(idp.issuer) + "/oauth2/authorize")
    await attacker.route(at_provider, hold)
    await attacker.goto("/console/sign-in")
    await attacker.get_by_label("Email").fill(email)
    await attacker.get_by_role("button", name="Use single sign-on").click()
    await attacker.get_by_placeholder("sub").fill(email)
    await attacker.get_by_role("button", name="Authorize").click()

    async def redirected() -> bool:
        return bool(captured)

    await eventually(redirected, within=10, what="the provider's redirect back")
    way_back = captured[0]
    assert "code=" in way_back and "state=" in way_back

    victim = await open_page()
    response = await victim.goto(way_back)
    assert response is not None and response.status == 400
    await expect(victim.get_by_role("alert")).to_contain_text("not started in this browser")
    await expect(victim.locator(".menu")).to_have_count(0)  # signed out still

    await attacker.goto(way_back)
    await expect(attacker).to_have_url(re.compile(r"/console$"))
    await expect(attacker.locator(".menu-email")).to_have_text(email)
    # Spent: the same way back a second time signs nobody in.
    replay = await attacker.context.new_page()
    again = await replay.goto(way_back)
    assert again is not None and again.status == 400
