"""Plans as Stripe subscriptions (DESIGN.md §4): checkout, allocations by paid invoices
(once per period, whatever the order or repetition of events), tier moves, cancel, and the
monthly schedule leaving subscription orgs to their invoices."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from config.runtime import Resources
from domain.billing_cycles.allocations import allocate_batch
from domain.plans.catalog import PlanSpec
from tests.billing.conftest import (
    MICROS,
    Billing,
    billing_settings,
    deps_for,
    resources_with,
    rows,
    scalar,
)
from tests.domain.factories import make_org
from tests.fakes.stripe import FakeStripe
from tests.fixtures.portal import PortalUser, signup
from worker import build_worker

PRICES = {"trial": "price_trial", "starter": "price_starter", "professional": "price_pro"}
JAN_10 = int(datetime(2027, 1, 10, tzinfo=UTC).timestamp())  # periods: Jan 10, Feb 9, Mar 11


@pytest.fixture
async def plans(
    resources: Resources, time_skipping_env: WorkflowEnvironment, fake_stripe: FakeStripe
) -> AsyncIterator[Billing]:
    queue = f"plans-{uuid.uuid4()}"
    plan_specs = {
        "trial": PlanSpec(
            name="Trial", amount_cents=100, interval="week", price_id=PRICES["trial"]
        ),
        "starter": PlanSpec(name="Starter", amount_cents=1_900, price_id=PRICES["starter"]),
        "professional": PlanSpec(
            name="Professional", amount_cents=4_900, price_id=PRICES["professional"]
        ),
    }
    settings = billing_settings(resources.settings, fake_stripe, queue, plans=plan_specs)
    fake_stripe.subscriptions.price_intervals[PRICES["trial"]] = "week"
    res = resources_with(resources, settings, time_skipping_env.client)
    async with (
        build_worker(time_skipping_env.client, deps_for(resources, settings), queue),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(resources=res)),
            base_url="http://testserver",
        ) as client,
    ):
        yield Billing(res, settings, client, time_skipping_env, fake_stripe)


async def _subscribe(b: Billing, user: PortalUser, tier: str, start: int = JAN_10) -> Any:
    resp = await b.client.post(
        "/portal/v1/plan/checkout", json={"tier": tier}, headers=user.headers()
    )
    assert resp.status_code == 201, resp.text
    session_id = resp.json()["url"].rsplit("/", 1)[1]
    return b.fake.subscriptions.subscribe(session_id, start=start)


async def _deliver_all(b: Billing, events: list[dict[str, Any]]) -> list[str]:
    results = []
    for event in events:
        assert (await b.deliver(event)).status_code == 200
        results.append((await b.processed(event["id"])).outcome.result)
    return results


async def _allocations(b: Billing, org_id: uuid.UUID) -> list[tuple[str, int]]:
    found = await rows(
        b.resources,
        "SELECT idempotency_key, amount_micros FROM ledger_entries"
        " WHERE org_id = :o AND kind = 'allocation' ORDER BY idempotency_key",
        o=org_id,
    )
    return [(r["idempotency_key"], r["amount_micros"]) for r in found]


async def _plan(b: Billing, user: PortalUser) -> dict[str, Any]:
    resp = await b.client.get("/portal/v1/plan", headers=user.headers())
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


async def test_checkout_then_invoice_paid_credits_the_period_once(plans: Billing) -> None:
    user = await signup(plans.client)
    _sub, events = await _subscribe(plans, user, "starter")
    (call,) = plans.fake.calls("/v1/checkout/sessions")
    assert call.params["mode"] == "subscription"
    assert call.params["line_items"][0]["price"] == PRICES["starter"]
    assert call.params["subscription_data"]["metadata"]["oxinf_org_id"] == str(user.org_id)

    assert await _deliver_all(plans, events) == ["recorded", "recorded", "credited"]
    invoice = events[-1]
    # The same event again, and the same invoice under another event id: nothing more.
    assert (await plans.deliver(invoice)).status_code == 200
    again = {**invoice, "id": f"evt_copy_{uuid.uuid4().hex}"}
    assert await _deliver_all(plans, [again]) == ["already_credited"]

    assert await _allocations(plans, user.org_id) == [
        (f"alloc:{user.org_id}:2027-01", 20_000 * MICROS)
    ]
    plan = await _plan(plans, user)
    assert (plan["tier"], plan["status"], plan["pending_tier"]) == ("starter", "active", None)
    assert plan["current_period_end"].startswith("2027-02-09")
    assert plan["next_allocation"]["credits"] == "20000"
    assert plan["next_allocation"]["at"] == plan["current_period_end"]
    assert {t["tier"]: t["multiplier_bps"] for t in plan["tiers"]}["starter"] == 12_000


async def test_events_in_any_order_and_twice_credit_once_per_period(plans: Billing) -> None:
    user = await signup(plans.client)
    sub, first = await _subscribe(plans, user, "starter")
    renewal = plans.fake.subscriptions.renew(sub["id"])
    # The renewal's invoice arrives before the checkout's events; then everything again,
    # shuffled, and copies under new event ids.
    everything = first + renewal
    shuffled = [renewal[-1], *random.Random(16).sample(everything, len(everything))]
    copies = [{**e, "id": f"evt_dup_{uuid.uuid4().hex}"} for e in everything]
    for event in shuffled + copies:
        assert (await plans.deliver(event)).status_code == 200
        await plans.processed(event["id"])
    assert await _allocations(plans, user.org_id) == [
        (f"alloc:{user.org_id}:2027-01", 20_000 * MICROS),
        (f"alloc:{user.org_id}:2027-02", 20_000 * MICROS),
    ]
    plan = await _plan(plans, user)
    assert (plan["tier"], plan["status"]) == ("starter", "active")
    assert plan["current_period_end"].startswith("2027-03-11")  # the renewal's, the newest


async def test_upgrade_at_once_downgrade_at_period_end(plans: Billing) -> None:
    user = await signup(plans.client)
    sub, events = await _subscribe(plans, user, "starter")
    await _deliver_all(plans, events)
    subs = plans.fake.subscriptions

    await _deliver_all(plans, [subs.change_price(sub["id"], PRICES["professional"])])
    assert await scalar(plans.resources, "SELECT tier FROM orgs WHERE id = :o", o=user.org_id) == (
        "professional"
    )
    plan = await _plan(plans, user)
    assert plan["tier"] == "professional"
    assert plan["next_allocation"]["credits"] == "60000"

    await _deliver_all(plans, [subs.change_price(sub["id"], PRICES["starter"])])
    plan = await _plan(plans, user)
    assert (plan["tier"], plan["pending_tier"]) == ("professional", "starter")
    assert plan["next_allocation"]["tier"] == "starter"

    await _deliver_all(plans, subs.renew(sub["id"]))
    plan = await _plan(plans, user)
    assert (plan["tier"], plan["pending_tier"]) == ("starter", None)
    assert await _allocations(plans, user.org_id) == [
        (f"alloc:{user.org_id}:2027-01", 20_000 * MICROS),
        (f"alloc:{user.org_id}:2027-02", 20_000 * MICROS),
    ]


async def test_cancel_at_period_end_stops_the_next_allocation_and_keeps_credits(
    plans: Billing,
) -> None:
    user = await signup(plans.client)
    sub, events = await _subscribe(plans, user, "professional")
    await _deliver_all(plans, events)
    subs = plans.fake.subscriptions
    await _deliver_all(plans, [subs.cancel_at_period_end(sub["id"])])
    plan = await _plan(plans, user)
    assert plan["cancel_at_period_end"] is True and plan["next_allocation"] is None
    assert plan["tier"] == "professional"

    ended = subs.end(sub["id"])
    # A stale update (still active) delivered after the end changes nothing.
    stale = {**events[1], "id": f"evt_stale_{uuid.uuid4().hex}"}
    await _deliver_all(plans, [ended, stale])
    plan = await _plan(plans, user)
    assert (plan["tier"], plan["status"]) == ("free", "canceled")
    balance = (await plans.client.get("/portal/v1/credits/balance", headers=user.headers())).json()
    assert balance["balance"] == "60000"  # credits granted stay


async def test_the_monthly_schedule_never_allocates_a_subscription_org(plans: Billing) -> None:
    user = await signup(plans.client)
    _sub, events = await _subscribe(plans, user, "starter")
    await _deliver_all(plans, events)
    assigned = await make_org(plans.resources.sessions, tier="starter")
    async with plans.resources.sessions.begin() as s:
        result = await allocate_batch(
            s, "2027-02", after=None, limit=500, tiers=plans.settings.tier_allocations
        )
    assert result.credited == 1  # the admin-assigned starter org, not the subscriber
    assert await _allocations(plans, assigned) == [(f"alloc:{assigned}:2027-02", 20_000 * MICROS)]
    assert await _allocations(plans, user.org_id) == [
        (f"alloc:{user.org_id}:2027-01", 20_000 * MICROS)
    ]


async def test_weekly_trial_allocates_per_week(plans: Billing) -> None:
    user = await signup(plans.client)
    sub, events = await _subscribe(plans, user, "trial")
    await _deliver_all(plans, events + plans.fake.subscriptions.renew(sub["id"]))
    assert [k for k, _ in await _allocations(plans, user.org_id)] == [
        f"alloc:{user.org_id}:2027-W01",
        f"alloc:{user.org_id}:2027-W02",
    ]


async def test_checkout_and_portal_refusals_and_portal_url(plans: Billing) -> None:
    user = await signup(plans.client)
    portal = await plans.client.post("/portal/v1/plan/portal", headers=user.headers())
    assert portal.status_code == 409  # no Stripe customer yet
    for tier, status in (("enterprise", 400), ("gold", 400)):
        resp = await plans.client.post(
            "/portal/v1/plan/checkout", json={"tier": tier}, headers=user.headers()
        )
        assert resp.status_code == status, resp.text
        assert resp.json()["error"]["param"] == "tier"
    sub, events = await _subscribe(plans, user, "starter")
    await _deliver_all(plans, events)
    again = await plans.client.post(
        "/portal/v1/plan/checkout", json={"tier": "professional"}, headers=user.headers()
    )
    assert again.status_code == 409  # change plans in the portal
    portal = await plans.client.post("/portal/v1/plan/portal", headers=user.headers())
    assert portal.status_code == 200, portal.text
    assert portal.json()["url"] == plans.fake.subscriptions.portals[-1]["url"]
    assert plans.fake.subscriptions.portals[-1]["customer"] == sub["customer"]


async def test_plan_without_stripe(client: httpx.AsyncClient) -> None:
    user = await signup(client)
    plan = (await client.get("/portal/v1/plan", headers=user.headers())).json()
    assert (plan["tier"], plan["status"], plan["next_allocation"]) == ("free", "none", None)
    resp = await client.post(
        "/portal/v1/plan/checkout", json={"tier": "starter"}, headers=user.headers()
    )
    assert resp.status_code == 503
