"""Choosing a plan in a real Chromium: sign up with Stripe configured, land on the plan page,
choose Starter, pay on (fake) Stripe Checkout, and once the signed `invoice.paid` webhook is
processed the page shows Starter active and the balance rose by the allocation exactly once
(whatever Stripe repeats). Every page is screenshotted at desktop and phone width."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, Route, expect
from temporalio.testing import WorkflowEnvironment

from config.runtime import Resources
from domain.identity import service as identity
from domain.ledger import service as ledger
from tests.fakes.stripe import FakeStripe
from tests.fixtures.browser import new_email, page_opener, sign_up, snap
from tests.web.stripe_shop import (
    CHECKOUT_HOST,
    MICROS,
    Shop,
    micros_of,
    open_shop,
)

PORTAL_HOST = "https://billing.fake.stripe.test/"
GRANT = 25  # sign-up grant credits on this server
STARTER_ALLOCATION = 20_000


@pytest.fixture
async def shop(
    resources: Resources, time_skipping_env: WorkflowEnvironment, stripe: FakeStripe
) -> AsyncIterator[Shop]:
    async with open_shop(
        resources, time_skipping_env, stripe, "plan-walk", signup_grant_credits=GRANT
    ) as opened:
        yield opened


async def fake_checkout_page(route: Route, stripe: FakeStripe) -> None:
    """Stands in for Stripe's hosted subscription page: a Subscribe link back to the
    session's success URL."""
    session_id = route.request.url.rsplit("/", 1)[-1]
    session = stripe.subscriptions.sessions[session_id]
    back = str(session["success_url"]).replace("{CHECKOUT_SESSION_ID}", session_id)
    body = (
        "<!doctype html><title>Fake Stripe Checkout</title><h1>Subscribe to 0xinf</h1>"
        f"<a href='{back}'>Subscribe</a>"
    )
    await route.fulfill(status=200, content_type="text/html", body=body)


async def fake_portal_page(route: Route) -> None:
    body = "<!doctype html><title>Fake Stripe portal</title><h1>Customer portal</h1>"
    await route.fulfill(status=200, content_type="text/html", body=body)


async def test_sign_up_choose_starter_pay_and_get_the_allocation_once(
    browser: Browser, shop: Shop, resources: Resources
) -> None:
    async with page_opener(browser, shop.url) as open_one:
        page = await open_one()
        await page.route(f"{CHECKOUT_HOST}**", lambda route: fake_checkout_page(route, shop.stripe))
        await page.route(f"{PORTAL_HOST}**", fake_portal_page)

        # Sign up: Stripe is configured, so the newcomer lands on the plan page.
        await sign_up(page, new_email("plan"))
        await expect(page).to_have_url(re.compile(r"/console/plan$"))
        await expect(page.locator("[data-flash]")).to_contain_text(
            "Pick a plan, or start with the trial."
        )
        await expect(page.get_by_test_id("plan-tier")).to_have_text("Free")
        await expect(page.get_by_test_id("plan-status")).to_have_text("No subscription")
        await expect(page.get_by_test_id("signup-grant")).to_contain_text(f"{GRANT} credits")
        await expect(page.get_by_test_id("plan-starter")).to_contain_text("$19.00 / month")
        await expect(page.get_by_test_id("plan-starter")).to_contain_text(
            "20,000 credits each month"
        )
        await expect(page.get_by_test_id("plan-enterprise")).to_contain_text("By contract")
        await expect(page.get_by_role("button", name="Start trial")).to_be_visible()
        nav = page.get_by_role("navigation", name="Console")
        await expect(nav.get_by_role("link", name="Plan")).to_have_attribute("aria-current", "page")
        await snap(page, "plan-choose")

        token = next(
            c["value"] for c in await page.context.cookies() if c["name"] == "oxinf_session"
        )
        async with resources.sessions() as s:
            user = await identity.authenticate_session(s, resources.identity, token)
            ctx = await identity.org_context(s, user, None, None)
            before = (await ledger.balance(s, ctx.org.id)).balance_micros
        assert before == GRANT * MICROS

        # Choose Starter: the form goes to (fake) Stripe Checkout, and back to the waiting page.
        await page.get_by_role("button", name="Choose Starter").click()
        await expect(page).to_have_url(re.compile(r"^https://checkout\.fake\.stripe\.test/c/sub/"))
        session_id = page.url.rsplit("/", 1)[-1]
        await page.get_by_role("link", name="Subscribe").click()
        await expect(page).to_have_url(re.compile(r"/console/plan/success\?tier=starter$"))
        status = page.get_by_test_id("checkout-status")
        await expect(status).to_have_attribute("data-state", "waiting")
        await expect(status).to_contain_text(
            "Waiting for Stripe to confirm the Starter subscription"
        )
        await snap(page, "plan-waiting")

        # Stripe charges the first invoice; its signed `invoice.paid` allocates the period.
        _sub, events = shop.stripe.subscriptions.subscribe(session_id, start=int(time.time()))
        completed, created, invoice = events
        assert invoice["type"] == "invoice.paid"
        assert await shop.deliver(invoice) == "credited"
        await expect(status).to_have_attribute("data-state", "active")  # htmx polled it
        await expect(status).to_contain_text("You are on Starter")
        await snap(page, "plan-active")

        # The rest of Stripe's events, the invoice again, and the same invoice under a new
        # event id: the tier stays, the period's allocation is not credited again.
        assert await shop.deliver(completed) == "recorded"
        assert await shop.deliver(created) == "recorded"
        again = {**invoice, "id": f"evt_again_{uuid.uuid4().hex}"}
        assert await shop.deliver(again) == "already_credited"

        await page.get_by_role("link", name="Back to plan").click()
        await expect(page.get_by_test_id("plan-tier")).to_have_text("Starter")
        await expect(page.get_by_test_id("plan-status")).to_have_text("Active")
        await expect(page.get_by_test_id("next-allocation")).to_have_text("20,000")
        await expect(page.get_by_test_id("plan-starter")).to_contain_text("Current")
        await expect(page.get_by_role("button", name="Choose Professional")).to_have_count(0)
        await expect(page.get_by_test_id("plan-note")).to_contain_text("Manage subscription")
        await snap(page, "plan-starter")

        # The balance rose by exactly one allocation, shown on the credits page too.
        async with resources.sessions() as s:
            after = (await ledger.balance(s, ctx.org.id)).balance_micros
            allocations = await ledger.list_entries(s, ctx.org.id, kind="allocation")
        assert after - before == STARTER_ALLOCATION * MICROS
        assert [e.amount_micros for e in allocations.entries] == [STARTER_ALLOCATION * MICROS]
        await page.goto("/console/credits")
        assert micros_of(await page.get_by_test_id("balance").inner_text()) == after
        rows = page.get_by_test_id("transactions").locator(
            "tbody tr", has_text="Monthly allocation"
        )
        await expect(rows).to_have_count(1)
        await expect(rows).to_contain_text("+20,000")

        # The overview's plan badge leads back to the plan page.
        await page.goto("/console")
        await expect(page.get_by_test_id("plan-badge")).to_have_text("Starter plan")
        await expect(page.get_by_test_id("checklist-grant")).to_contain_text(f"{GRANT}")
        await expect(page.get_by_test_id("next-allocation")).to_have_text("20,000")
        await snap(page, "plan-overview")
        await page.get_by_test_id("plan-badge").click()
        await expect(page).to_have_url(re.compile(r"/console/plan$"))

        # Manage subscription: on to the Stripe customer portal, which returns to this page.
        await page.get_by_role("button", name="Manage subscription").click()
        await expect(page).to_have_url(re.compile(r"^https://billing\.fake\.stripe\.test/p/"))
        (portal,) = shop.stripe.subscriptions.portals
        assert portal["return_url"] == f"{shop.url}/console/plan"

        # A canceled checkout charges nothing and says so.
        await page.goto("/console/plan/cancel")
        await expect(page.get_by_test_id("checkout-status")).to_have_attribute(
            "data-state", "canceled"
        )
        await snap(page, "plan-canceled")
