"""Buying credits: a Checkout Session on the (fake) Stripe API, a pending payment, roles."""

from __future__ import annotations

import uuid

import httpx

from config.runtime import Resources
from tests.billing.conftest import MICROS, Billing, add_member, rows, scalar
from tests.fixtures.portal import signup


async def test_checkout_creates_a_session_and_a_pending_payment(billing: Billing) -> None:
    user = await signup(billing.client)
    out = await billing.checkout(user, "pro_50", save_payment_method=True)

    payment = out["payment"]
    session_id = payment["checkout_session_id"]
    assert out["url"].endswith(session_id)
    assert payment["status"] == "pending" and payment["kind"] == "checkout"
    assert (payment["amount_cents"], payment["currency"]) == (5_000, "usd")
    assert (payment["credits"], payment["credits_micros"]) == ("55000", 55_000 * MICROS)

    (call,) = billing.fake.calls("/v1/checkout/sessions")
    assert call.idempotency_key == f"oxinf-checkout-{payment['id']}"
    params = call.params
    assert params["mode"] == "payment"
    assert params["client_reference_id"] == str(user.org_id)
    assert params["line_items"][0]["price_data"]["unit_amount"] == "5000"
    assert params["metadata"]["oxinf_payment_id"] == payment["id"]
    assert params["payment_intent_data"]["metadata"]["oxinf_org_id"] == str(user.org_id)
    assert params["payment_intent_data"]["setup_future_usage"] == "off_session"
    assert params["customer_creation"] == "always"

    (row,) = await rows(
        billing.resources, "SELECT * FROM payments WHERE id = :id", id=uuid.UUID(payment["id"])
    )
    assert (row["status"], row["checkout_session_id"], row["ledger_entry_id"]) == (
        "pending",
        session_id,
        None,
    )
    assert row["created_by"] == user.user_id

    listed = await billing.client.get("/portal/v1/credits/payments", headers=user.headers())
    assert [p["id"] for p in listed.json()["data"]] == [payment["id"]]
    packages = await billing.client.get("/portal/v1/credits/packages", headers=user.headers())
    assert {p["id"]: p["credits"] for p in packages.json()} == {
        "pro_50": "55000",
        "starter_10": "10000",
    }


async def test_only_owners_admins_and_finance_may_buy(billing: Billing) -> None:
    owner = await signup(billing.client)
    member = await signup(billing.client)
    finance = await signup(billing.client)
    await add_member(billing.resources, owner.org_id, member.user_id, "member")
    await add_member(billing.resources, owner.org_id, finance.user_id, "finance")

    denied = await billing.client.post(
        "/portal/v1/credits/checkout",
        json={"package_id": "starter_10"},
        headers=member.headers(owner.org_id),
    )
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "permission_denied"
    allowed = await billing.client.post(
        "/portal/v1/credits/checkout",
        json={"package_id": "starter_10"},
        headers=finance.headers(owner.org_id),
    )
    assert allowed.status_code == 201, allowed.text

    unknown = await billing.client.post(
        "/portal/v1/credits/checkout", json={"package_id": "free_money"}, headers=owner.headers()
    )
    assert unknown.status_code == 400
    assert unknown.json()["error"]["param"] == "package_id"
    # nothing but the finance user's purchase was recorded, and only that reached Stripe
    assert await scalar(billing.resources, "SELECT count(*) FROM payments") == 1
    assert len(billing.fake.calls("/v1/checkout/sessions")) == 1


async def test_checkout_without_a_stripe_key_is_503(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    assert resources.settings.stripe_api_key is None
    user = await signup(client)
    resp = await client.post(
        "/portal/v1/credits/checkout", json={"package_id": "starter_10"}, headers=user.headers()
    )
    assert resp.status_code == 503
    error = resp.json()["error"]
    assert error["code"] == "service_unavailable"
    assert "Stripe is not configured" in error["message"]
    assert await scalar(resources, "SELECT count(*) FROM payments") == 0


async def test_stripe_refusing_the_checkout_fails_the_payment(billing: Billing) -> None:
    user = await signup(billing.client)
    billing.fake.api_key, real = "sk_test_rotated", billing.fake.api_key
    try:
        resp = await billing.client.post(
            "/portal/v1/credits/checkout", json={"package_id": "starter_10"}, headers=user.headers()
        )
    finally:
        billing.fake.api_key = real
    assert resp.status_code == 502
    assert resp.json()["error"]["code"] == "upstream_error"
    assert "sk_test" not in resp.text
    assert await scalar(billing.resources, "SELECT status FROM payments") == "failed"
