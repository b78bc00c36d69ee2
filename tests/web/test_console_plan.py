"""The plan page over HTTP: what it shows with and without Stripe, sign-up's landing page,
the checkout and portal forms (CSRF, roles, one subscription per org) and the return pages."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import text

from api.app import create_app
from config.runtime import Resources
from domain.enterprise import service as enterprise
from domain.plans import repository as plans_repo
from tests.fakes.stripe import FakeStripe
from tests.fixtures.console import csrf_of, form_token, sign_up
from tests.fixtures.portal import PASSWORD
from tests.web.billing_data import own_ctx

MICROS = 1_000_000


@pytest.fixture(scope="module")
def fake_stripe() -> Iterator[FakeStripe]:
    with FakeStripe() as fake:
        yield fake


def _resources(base: Resources, **update: Any) -> Resources:
    return Resources(
        settings=base.settings.model_copy(update=update),
        engine=base.engine,
        sessions=base.sessions,
        http=base.http,
        temporal=base.temporal,
    )


@pytest.fixture
async def shop(resources: Resources, fake_stripe: FakeStripe) -> AsyncIterator[httpx.AsyncClient]:
    """The console with Stripe configured against the fake (webhooks are the walk's part)."""
    fake_stripe.reset()
    res = _resources(
        resources,
        stripe_api_key=SecretStr(fake_stripe.api_key),
        stripe_api_base=fake_stripe.base_url,
        signup_grant_credits=25,
    )
    transport = httpx.ASGITransport(app=create_app(resources=res))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture
async def no_stripe(resources: Resources) -> AsyncIterator[httpx.AsyncClient]:
    """No Stripe key, and a sign-up grant of 25 credits."""
    res = _resources(resources, signup_grant_credits=25)
    transport = httpx.ASGITransport(app=create_app(resources=res))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


async def _sign_up_with_stripe(client: httpx.AsyncClient) -> str:
    email = f"plan-{uuid.uuid4().hex[:8]}@example.com"
    client.cookies.pop("oxinf_session", None)  # a new person on the same client
    token = await form_token(client, "/console/sign-up")
    resp = await client.post(
        "/console/sign-up", data={"email": email, "password": PASSWORD, "csrf_token": token}
    )
    assert resp.status_code == 303, resp.text
    assert resp.headers["location"] == "/console/plan"
    return email


async def _audit_count(resources: Resources, org_id: uuid.UUID, action: str) -> int:
    async with resources.sessions() as s:
        found = await s.execute(
            text("SELECT count(*) FROM audit_events WHERE org_id = :o AND action = :a"),
            {"o": org_id, "a": action},
        )
        return int(found.scalar_one())


async def _subscribe_directly(resources: Resources, org_id: uuid.UUID, tier: str) -> datetime:
    """The state the webhook's events leave behind, written through the plans repository."""
    end = datetime(2031, 3, 9, tzinfo=UTC)
    async with resources.sessions.begin() as s:
        await plans_repo.save_subscription(
            s, org_id, {
                "stripe_subscription_id": f"sub_test_{uuid.uuid4().hex}",
                "stripe_customer_id": "cus_test_plan", "tier": tier, "pending_tier": None,
                "status": "active", "current_period_end": end, "cancel_at_period_end": False,
                "state_at": 1,
            },
        )  # fmt: skip
        await plans_repo.remember_customer(s, org_id, "cus_test_plan")
        await plans_repo.set_tier(s, org_id, tier)
    return end


async def test_without_stripe_the_page_says_so_and_shows_the_sign_up_grant(
    no_stripe: httpx.AsyncClient, resources: Resources
) -> None:
    await sign_up(no_stripe)  # lands on the overview, as before plans
    home = (await no_stripe.get("/console")).text
    assert re.search(r'data-testid="checklist-grant">.*<strong>25</strong> sign-up credits', home)
    assert re.search(r'<a class="badge badge-tier" href="/console/plan"[^>]*>Free plan</a>', home)
    assert 'data-testid="next-allocation">None<' in home  # the free tier allocates nothing

    page = await no_stripe.get("/console/plan")
    assert page.status_code == 200, page.text
    html = page.text
    assert 'data-testid="plan-tier">Free<' in html
    assert "Plans are not on sale here" in html
    assert "one-time sign-up grant of 25 credits" in html
    assert 'data-testid="signup-grant"><span>This organization received <strong>25</strong>' in html
    assert "/console/plan/checkout" not in html and "Start trial" not in html
    assert "Manage subscription" not in html
    assert "By contract" in html  # enterprise, never for sale
    assert '<a href="/console/plan" aria-current="page">Plan</a>' in html  # in the sidebar

    # A hand-made post is refused with the reason, and nothing is started.
    ctx = await own_ctx(resources, no_stripe)
    token = csrf_of(html)
    refused = await no_stripe.post(
        "/console/plan/checkout", data={"tier": "starter", "csrf_token": token}
    )
    assert refused.status_code == 503
    assert "Stripe is not configured on this server" in refused.text
    assert await _audit_count(resources, ctx.org.id, "plans.checkout_created") == 0


async def test_sign_up_with_stripe_lands_on_the_plan_page_with_the_tiers(
    shop: httpx.AsyncClient,
) -> None:
    await _sign_up_with_stripe(shop)
    page = await shop.get("/console/plan")
    assert page.status_code == 200
    html = page.text
    assert "Welcome to 0xinf! Pick a plan, or start with the trial." in html
    assert "received <strong>25</strong> credits at sign-up" in html
    assert 'data-testid="plan-status">No subscription<' in html
    cards = {
        tier: re.search(rf'data-testid="plan-{tier}".*?</article>', html, re.S)
        for tier in ("trial", "starter", "professional", "enterprise")
    }
    assert all(cards.values())
    trial, starter, pro, ent = (c.group(0) for c in cards.values() if c)
    assert "$1.00</span> / week" in trial and "<strong>5,000</strong> credits each week" in trial
    assert "Start trial" in trial and 'name="tier" value="trial"' in trial
    assert "$19.00</span> / month" in starter and "<strong>20,000</strong> credits" in starter
    assert "<strong>\u00d71.2</strong>" in starter and "Choose Starter" in starter
    assert "$49.00</span> / month" in pro and "<strong>60,000</strong>" in pro
    assert "<strong>\u00d71</strong>" in pro and "Choose Professional" in pro
    assert "By contract" in ent and "Contact us" in ent and "<form" not in ent
    assert "Plans are not on sale here" not in html
    assert "Welcome" not in (await shop.get("/console/plan")).text  # the flash shows once


async def test_checkout_form_needs_csrf_and_opens_a_subscription_checkout(
    shop: httpx.AsyncClient, resources: Resources, fake_stripe: FakeStripe
) -> None:
    await _sign_up_with_stripe(shop)
    ctx = await own_ctx(resources, shop)
    token = csrf_of((await shop.get("/console/plan")).text)

    for path, form in (
        ("/console/plan/checkout", {"tier": "starter"}),
        ("/console/plan/portal", {}),
    ):
        refused = await shop.post(path, data=form)
        assert refused.status_code == 403, path
        assert "This form could not be accepted" in refused.text
        wrong = await shop.post(path, data={**form, "csrf_token": "0" * len(token)})
        assert wrong.status_code == 403, path
    assert fake_stripe.calls("/v1/checkout/sessions") == []
    assert fake_stripe.calls("/v1/billing_portal") == []
    assert await _audit_count(resources, ctx.org.id, "plans.checkout_created") == 0

    enterprise_tier = await shop.post(
        "/console/plan/checkout", data={"tier": "enterprise", "csrf_token": token}
    )
    assert enterprise_tier.status_code == 400
    assert "agreed by contract" in enterprise_tier.text
    assert fake_stripe.calls("/v1/checkout/sessions") == []

    started = await shop.post(
        "/console/plan/checkout", data={"tier": "starter", "csrf_token": token}
    )
    assert started.status_code == 200, started.text
    (call,) = fake_stripe.calls("/v1/checkout/sessions")
    assert call.params["mode"] == "subscription"
    assert call.params["line_items"][0]["price_data"]["unit_amount"] == "1900"
    assert call.params["subscription_data"]["metadata"]["oxinf_org_id"] == str(ctx.org.id)
    assert call.params["success_url"] == "http://testserver/console/plan/success?tier=starter"
    assert call.params["cancel_url"] == "http://testserver/console/plan/cancel"
    url = re.search(r'href="([^"]+)" data-testid="checkout-link"', started.text)
    assert url and url.group(1).startswith("https://checkout.fake.stripe.test/c/sub/cs_")
    assert f'content="0;url={url.group(1)}"' in started.text
    assert await _audit_count(resources, ctx.org.id, "plans.checkout_created") == 1

    # Until Stripe's events arrive the return page waits, polling its status fragment.
    waiting = await shop.get("/console/plan/success?tier=starter")
    assert 'data-state="waiting"' in waiting.text
    assert 'hx-get="/console/plan/success/status?tier=starter"' in waiting.text
    assert "Waiting for Stripe to confirm the Starter subscription" in waiting.text
    canceled = await shop.get("/console/plan/cancel")
    assert 'data-state="canceled"' in canceled.text and "Nothing was charged" in canceled.text
    back = await shop.get("/billing/plan/success?session_id=cs_x")
    assert (back.status_code, back.headers["location"]) == (303, "/console/plan/success")


async def test_subscribed_org_manages_in_the_portal_and_cannot_check_out_again(
    shop: httpx.AsyncClient, resources: Resources, fake_stripe: FakeStripe
) -> None:
    await _sign_up_with_stripe(shop)
    ctx = await own_ctx(resources, shop)
    status = await shop.get("/console/plan/success/status?tier=starter")
    assert 'data-state="waiting"' in status.text
    end = await _subscribe_directly(resources, ctx.org.id, "starter")

    status = await shop.get("/console/plan/success/status?tier=starter")
    assert 'data-state="active"' in status.text and "You are on Starter" in status.text
    assert "hx-get" not in status.text  # polling stops
    html = (await shop.get("/console/plan")).text
    assert 'data-testid="plan-tier">Starter<' in html
    assert 'data-testid="plan-status">Active<' in html
    assert f'datetime="{end.isoformat()}"' in html
    assert 'data-testid="next-allocation">20,000<' in html
    assert "Manage subscription" in html and "/console/plan/checkout" not in html
    assert re.search(r'data-testid="plan-starter".*?badge-tier">Current<', html, re.S)

    token = csrf_of(html)
    again = await shop.post("/console/plan/checkout", data={"tier": "professional",
                                                            "csrf_token": token})  # fmt: skip
    assert again.status_code == 409 and "already subscribed" in again.text
    assert fake_stripe.calls("/v1/checkout/sessions") == []

    portal = await shop.post("/console/plan/portal", data={"csrf_token": token})
    assert portal.status_code == 200, portal.text
    assert "https://billing.fake.stripe.test/p/session/" in portal.text
    (call,) = fake_stripe.calls("/v1/billing_portal")
    assert call.params["customer"] == "cus_test_plan"
    assert call.params["return_url"] == "http://testserver/console/plan"


async def test_member_sees_the_plan_read_only_and_is_refused(
    shop: httpx.AsyncClient, resources: Resources, fake_stripe: FakeStripe
) -> None:
    await _sign_up_with_stripe(shop)
    owner = await own_ctx(resources, shop)
    member_email = await _sign_up_with_stripe(shop)
    async with resources.sessions.begin() as s:
        await enterprise.add_member(s, owner, email=member_email, role="member")
    token = csrf_of((await shop.get("/console")).text)
    await shop.post("/console/orgs/switch", data={"org_id": str(owner.org.id), "csrf_token": token})

    page = await shop.get("/console/plan")
    assert page.status_code == 200
    assert owner.org.name in page.text
    assert "Owners, admins and finance can change the plan." in page.text
    assert "/console/plan/checkout" not in page.text and "Manage subscription" not in page.text
    refused = await shop.post(
        "/console/plan/checkout", data={"tier": "starter", "csrf_token": csrf_of(page.text)}
    )
    assert refused.status_code == 403
    assert "needs the finance role" in refused.text
    await _subscribe_directly(resources, owner.org.id, "starter")
    portal = await shop.post("/console/plan/portal", data={"csrf_token": csrf_of(page.text)})
    assert portal.status_code == 403
    assert fake_stripe.calls("/v1/checkout/sessions") == []
    assert fake_stripe.calls("/v1/billing_portal") == []


async def test_an_enterprise_org_sees_its_plan_is_by_contract(
    shop: httpx.AsyncClient, resources: Resources
) -> None:
    await _sign_up_with_stripe(shop)
    ctx = await own_ctx(resources, shop)
    async with resources.sessions.begin() as s:
        await plans_repo.set_tier(s, ctx.org.id, "enterprise")
    html = (await shop.get("/console/plan")).text
    assert 'data-testid="plan-tier">Enterprise<' in html
    assert re.search(r'data-testid="plan-enterprise".*?badge-tier">Current<', html, re.S)
    assert "Billed by contract." in html
    assert 'data-testid="next-allocation">None<' in html  # enterprise allocates by contract
