"""Auto-recharge: once per threshold crossing, never two at once for one org."""

from __future__ import annotations

import uuid
from typing import Any

from temporalio.client import WorkflowExecutionStatus

from domain.payments.recharge import AutoRecharge
from schema.db import SessionFactory
from tests.billing.conftest import MICROS, Billing, gather, result_of, rows, scalar
from tests.domain.invariants import assert_books_balance
from tests.fixtures.conditions import eventually
from tests.fixtures.ledger import Ledger
from tests.fixtures.portal import PortalUser, signup
from tests.fixtures.relay import balance
from workflows.payments import RechargeReport, recharge_workflow_id

THRESHOLD = 5_000 * MICROS


class CountingSessions:
    """A session factory that counts how often the trigger had to read the database."""

    def __init__(self, sessions: SessionFactory) -> None:
        self.sessions = sessions
        self.opened = 0

    def __call__(self) -> Any:
        self.opened += 1
        return self.sessions()


async def _armed_org(billing: Billing) -> PortalUser:
    """Buy once with a saved card, then switch auto-recharge on through the portal."""
    user = await signup(billing.client)
    early = await billing.client.put(
        "/portal/v1/credits/auto-recharge",
        json={"enabled": True, "threshold_micros": THRESHOLD, "package_id": "starter_10",
              "payment_method_id": "pm_test_card"},
        headers=user.headers(),
    )  # fmt: skip
    assert early.status_code == 400  # no Stripe customer yet
    await billing.buy(user, "starter_10", save_payment_method=True)  # 10,000 credits
    resp = await billing.client.put(
        "/portal/v1/credits/auto-recharge",
        json={"enabled": True, "threshold_micros": THRESHOLD, "package_id": "starter_10",
              "payment_method_id": "pm_test_card"},
        headers=user.headers(),
    )  # fmt: skip
    assert resp.status_code == 200, resp.text
    assert resp.json()["enabled"] and resp.json()["has_stripe_customer"]
    return user


async def _spend_to(billing: Billing, org_id: uuid.UUID, available: int) -> None:
    _, now = await balance(billing.resources, org_id)
    await Ledger(billing.resources.sessions).adjust(
        org_id, available - now, key=f"spend:{uuid.uuid4()}", actor="test", reason="usage"
    )


async def _fire(billing: Billing, org_id: uuid.UUID, replicas: int = 8) -> list[bool]:
    """Every replica settles a request that leaves the org below its threshold at once."""
    _, available = await balance(billing.resources, org_id)
    # Each replica has its own AutoRecharge (as each process does), over the one Temporal.
    replicas_ = [
        AutoRecharge(billing.resources.sessions, billing.resources.workflows, cooldown_s=0)
        for _ in range(replicas)
    ]
    return await gather(*(r.maybe_trigger(org_id, available) for r in replicas_))


async def _report(billing: Billing, org_id: uuid.UUID) -> RechargeReport:
    return await result_of(billing.env, recharge_workflow_id(str(org_id)), RechargeReport)


async def test_recharge_fires_once_per_crossing(billing: Billing) -> None:
    user = await _armed_org(billing)
    org = user.org_id
    await _spend_to(billing, org, 1_000 * MICROS)

    assert sorted(await _fire(billing, org)) == [False] * 7 + [True]
    report = await _report(billing, org)
    assert report.status == "credited" and report.rearmed_after_s == 0
    assert len(billing.fake.calls("/v1/payment_intents")) == 1
    assert await balance(billing.resources, org) == (11_000 * MICROS, 11_000 * MICROS)

    # Above the threshold again: nothing fires.
    assert await _fire(billing, org) == [False] * 8
    # The same PaymentIntent also arrives as a webhook: credited once between them.
    (payment,) = await rows(
        billing.resources, "SELECT * FROM payments WHERE kind = 'recharge' AND org_id = :o", o=org
    )
    assert payment["status"] == "paid"
    event = billing.fake.intent_succeeded(payment["payment_intent_id"])
    await billing.deliver(event)
    assert (await billing.processed(event["id"])).outcome.result == "already_credited"

    # A second crossing fires a second recharge.
    await _spend_to(billing, org, 4_999 * MICROS)
    assert sorted(await _fire(billing, org)) == [False] * 7 + [True]
    assert (await _report(billing, org)).status == "credited"
    assert len(billing.fake.calls("/v1/payment_intents")) == 2
    assert await balance(billing.resources, org) == (14_999 * MICROS, 14_999 * MICROS)
    keys = await rows(
        billing.resources,
        "SELECT idempotency_key FROM ledger_entries WHERE org_id = :o AND kind = 'purchase'",
        o=org,
    )
    assert len({k["idempotency_key"] for k in keys}) == 3  # checkout + two recharges
    await assert_books_balance(billing.resources.sessions, org)


async def test_a_declined_card_is_not_retried_until_rearmed(billing: Billing) -> None:
    user = await _armed_org(billing)
    org = user.org_id
    await _spend_to(billing, org, 100 * MICROS)
    billing.fake.decline_next = 1

    assert sorted(await _fire(billing, org)) == [False] * 7 + [True]
    handle = billing.env.client.get_workflow_handle(recharge_workflow_id(str(org)))

    async def declined() -> bool:
        status = await scalar(
            billing.resources,
            "SELECT coalesce(max(status), '') FROM payments"
            " WHERE kind = 'recharge' AND org_id = :o",
            o=org,
        )
        return bool(status == "failed")

    await eventually(declined, within=5, what="the declined charge recorded")
    assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING

    # Still below the threshold, settle after settle: no second charge while it waits.
    for _ in range(3):
        assert await _fire(billing, org, replicas=3) == [False] * 3
    assert len(billing.fake.calls("/v1/payment_intents")) == 1

    # Switching auto-recharge off re-arms the org; the waiting workflow ends.
    off = await billing.client.put(
        "/portal/v1/credits/auto-recharge", json={"enabled": False}, headers=user.headers()
    )
    assert off.status_code == 200 and off.json()["enabled"] is False
    assert off.json()["threshold_micros"] == THRESHOLD  # switching off forgets nothing
    report = await _report(billing, org)
    assert report.status == "failed" and report.rearmed_after_s > 0
    assert await balance(billing.resources, org) == (100 * MICROS, 100 * MICROS)


async def test_the_trigger_is_cheap_when_auto_recharge_is_off(billing: Billing) -> None:
    user = await signup(billing.client)
    counting = CountingSessions(billing.resources.sessions)
    recharge = AutoRecharge(
        counting,  # type: ignore[arg-type]
        billing.resources.workflows,
        config_ttl_s=60,
    )
    for _ in range(50):
        assert await recharge.maybe_trigger(user.org_id, 0) is False
        assert recharge.after_settle(user.org_id) is None  # known off: not even a task
    assert counting.opened == 1
