"""Stripe webhooks end to end: signature, once-only fulfilment, ordering, reversals."""

from __future__ import annotations

import random
import time
import uuid
from datetime import timedelta

import httpx

from api.app import create_app
from api.runtime import Resources
from api.temporal import TemporalHandle
from domain.ledger.transactional import Ledger
from tests.billing.conftest import MICROS, WEBHOOK_SECRET, Billing, gather, rows, scalar
from tests.domain.invariants import assert_books_balance
from tests.fakes.stripe import signed
from tests.fixtures.portal import signup
from tests.fixtures.relay import balance


async def _purchases(billing: Billing, org_id: uuid.UUID) -> list[dict[str, object]]:
    return [
        dict(r)
        for r in await rows(
            billing.resources,
            "SELECT idempotency_key, amount_micros FROM ledger_entries"
            " WHERE org_id = :o AND kind = 'purchase' ORDER BY id",
            o=org_id,
        )
    ]


async def test_completion_credits_once_despite_duplicates_and_disorder(billing: Billing) -> None:
    user = await signup(billing.client)
    a = await billing.checkout(user, "starter_10")
    b = await billing.checkout(user, "pro_50")
    c = await billing.checkout(user, "starter_10")
    a_sid, b_sid, c_sid = (x["payment"]["checkout_session_id"] for x in (a, b, c))

    a_done = billing.fake.completed(a_sid)
    a_async = billing.fake.async_result(a_sid, succeeded=True)  # same session, another event
    b_done = billing.fake.completed(b_sid)
    b_refund = billing.fake.refunded(billing.fake.session(b_sid)["payment_intent"], 5_000)
    c_expired = billing.fake.expired(c_sid)

    # The refund for B overtakes B's completion, and A's completion arrives 5 times at once.
    deliveries = [a_done] * 5 + [a_async, b_refund, c_expired]
    random.Random(7).shuffle(deliveries)
    first = await gather(*(billing.deliver(e) for e in deliveries))
    assert all(r.status_code == 200 for r in first), [r.text for r in first]
    assert sum(not r.json()["duplicate"] for r in first if r.json()["id"] == a_done["id"]) == 1

    refund_report = billing.processed(b_refund["id"])
    assert (await billing.deliver(b_done)).status_code == 200

    outcomes = {
        e["id"]: (await billing.processed(e["id"])).outcome.result
        for e in (a_done, a_async, b_done, c_expired)
    }
    assert outcomes[a_done["id"]] in ("credited", "already_credited")
    assert {outcomes[a_done["id"]], outcomes[a_async["id"]]} == {"credited", "already_credited"}
    assert outcomes[b_done["id"]] == "credited"
    assert outcomes[c_expired["id"]] == "expired"
    report = await refund_report
    assert report.outcome.result == "reversed" and report.attempts >= 2  # it waited for B

    purchases = sorted(
        await _purchases(billing, user.org_id), key=lambda p: int(str(p["amount_micros"]))
    )
    assert purchases == [
        {"idempotency_key": f"stripe:{a_sid}", "amount_micros": 10_000 * MICROS},
        {"idempotency_key": f"stripe:{b_sid}", "amount_micros": 55_000 * MICROS},
    ]
    assert await balance(billing.resources, user.org_id) == (10_000 * MICROS, 10_000 * MICROS)
    await assert_books_balance(billing.resources.sessions, user.org_id)

    statuses = {
        r["checkout_session_id"]: r["status"]
        for r in await rows(billing.resources, "SELECT checkout_session_id, status FROM payments")
    }
    assert statuses == {a_sid: "paid", b_sid: "refunded", c_sid: "expired"}
    unprocessed = "SELECT count(*) FROM stripe_events WHERE processed_at IS NULL"
    assert await scalar(billing.resources, unprocessed) == 0
    assert await scalar(billing.resources, "SELECT count(*) FROM stripe_events") == 5

    # A redelivery long after: acknowledged as a duplicate, nothing moves.
    again = await billing.deliver(a_done)
    assert again.json() == {"received": True, "id": a_done["id"], "duplicate": True}
    assert await balance(billing.resources, user.org_id) == (10_000 * MICROS, 10_000 * MICROS)


async def test_bad_or_stale_signatures_are_rejected_and_nothing_is_recorded(
    billing: Billing,
) -> None:
    user = await signup(billing.client)
    out = await billing.checkout(user)
    event = billing.fake.completed(out["payment"]["checkout_session_id"])

    wrong = await billing.deliver(event, secret="whsec_not_ours")
    stale = await billing.deliver(event, timestamp=int(time.time()) - 301)
    future = await billing.deliver(event, timestamp=int(time.time()) + 301)
    missing = await billing.client.post("/webhooks/stripe", json=event)
    for resp in (wrong, stale, future, missing):
        assert resp.status_code == 400, resp.text
        assert resp.json()["error"]["code"] == "invalid_request"

    body, headers = signed(event, WEBHOOK_SECRET)  # a valid signature over other bytes
    tampered = body.replace(b'"paid"', b'"PAID"')
    resp = await billing.client.post("/webhooks/stripe", content=tampered, headers=headers)
    assert resp.status_code == 400

    assert await scalar(billing.resources, "SELECT count(*) FROM stripe_events") == 0
    assert await balance(billing.resources, user.org_id) == (0, 0)
    ok = await billing.deliver(event, timestamp=int(time.time()) - 290)  # inside tolerance
    assert ok.status_code == 200
    assert (await billing.processed(event["id"])).outcome.result == "credited"


async def test_refunds_and_disputes_post_clamped_reversals(billing: Billing) -> None:
    user = await signup(billing.client)
    out = await billing.buy(user, "pro_50")  # 55,000 credits for $50
    payment_id = uuid.UUID(out["payment"]["id"])
    intent = billing.fake.session(out["payment"]["checkout_session_id"])["payment_intent"]

    half = billing.fake.refunded(intent, 2_500)
    assert (await billing.deliver(half)).status_code == 200
    assert (await billing.processed(half["id"])).outcome.result == "reversed"
    assert await balance(billing.resources, user.org_id) == (27_500 * MICROS, 27_500 * MICROS)

    # A stale, smaller cumulative refund (delivered late) changes nothing.
    older = billing.fake.refunded(intent, 1_000)
    await billing.deliver(older)
    await billing.processed(older["id"])
    assert await balance(billing.resources, user.org_id) == (27_500 * MICROS, 27_500 * MICROS)

    # Most of what is left is held by in-flight requests: a dispute may only take the rest.
    hold = await Ledger(billing.resources.sessions).reserve(
        user.org_id,
        20_000 * MICROS,
        key=f"inflight:{uuid.uuid4()}",
        expires_in=timedelta(minutes=5),
    )
    dispute = billing.fake.disputed(intent, 2_500)
    await billing.deliver(dispute)
    assert (await billing.processed(dispute["id"])).outcome.result == "reversed"
    assert await balance(billing.resources, user.org_id) == (
        20_000 * MICROS,
        20_000 * MICROS - 20_000 * MICROS,
    )

    (payment,) = await rows(billing.resources, "SELECT * FROM payments WHERE id = :p", p=payment_id)
    assert payment["status"] == "disputed"
    assert payment["reversed_micros"] == 27_500 * MICROS + 7_500 * MICROS
    assert payment["uncollected_micros"] == 20_000 * MICROS

    reversals = await rows(
        billing.resources,
        "SELECT amount_micros, idempotency_key, reference FROM ledger_entries"
        " WHERE org_id = :o AND kind = 'reversal' ORDER BY id",
        o=user.org_id,
    )
    assert [r["amount_micros"] for r in reversals] == [-27_500 * MICROS, -7_500 * MICROS]
    assert reversals[0]["idempotency_key"] == f"stripe:{half['id']}:reversal"
    assert {r["reference"] for r in reversals} == {f"payment:{payment_id}"}

    audits = await rows(
        billing.resources,
        "SELECT action, after FROM audit_events WHERE org_id = :o AND action IN"
        " ('payments.refund', 'payments.dispute') ORDER BY id",
        o=user.org_id,
    )
    assert [a["action"] for a in audits] == ["payments.refund", "payments.dispute"]
    assert audits[1]["after"]["uncollected_micros"] == 20_000 * MICROS

    await Ledger(billing.resources.sessions).void(hold.hold.id)
    await assert_books_balance(billing.resources.sessions, user.org_id)


async def test_asynchronous_payments_credit_on_success_and_fail_cleanly(billing: Billing) -> None:
    user = await signup(billing.client)
    slow = await billing.checkout(user)
    bad = await billing.checkout(user)
    slow_sid, bad_sid = (
        slow["payment"]["checkout_session_id"],
        bad["payment"]["checkout_session_id"],
    )

    events = [
        billing.fake.completed(slow_sid, paid=False),
        billing.fake.completed(bad_sid, paid=False),
    ]
    for e in events:
        await billing.deliver(e)
    assert [(await billing.processed(e["id"])).outcome.result for e in events] == [
        "recorded",
        "recorded",
    ]
    assert await balance(billing.resources, user.org_id) == (0, 0)

    ok = billing.fake.async_result(slow_sid, succeeded=True)
    failed = billing.fake.async_result(bad_sid, succeeded=False)
    # a refund of the failed one (it never credited) has nothing to take back
    await gather(billing.deliver(ok), billing.deliver(failed))
    assert (await billing.processed(ok["id"])).outcome.result == "credited"
    assert (await billing.processed(failed["id"])).outcome.result == "failed"
    refund = billing.fake.refunded(billing.fake.session(bad_sid)["payment_intent"], 1_000)
    await billing.deliver(refund)
    assert (await billing.processed(refund["id"])).outcome.result == "ignored"

    assert await balance(billing.resources, user.org_id) == (10_000 * MICROS, 10_000 * MICROS)
    statuses = await rows(billing.resources, "SELECT status FROM payments ORDER BY created_at")
    assert [s["status"] for s in statuses] == ["paid", "failed"]


async def test_events_about_objects_we_did_not_create_are_ignored(billing: Billing) -> None:
    foreign = billing.fake.event(
        "checkout.session.completed",
        {"id": "cs_test_elsewhere", "payment_status": "paid", "metadata": {}},
    )
    other_type = billing.fake.event("customer.created", {"id": "cus_test_x"})
    for e in (foreign, other_type):
        assert (await billing.deliver(e)).status_code == 200
        assert (await billing.processed(e["id"])).outcome.result == "ignored"
    assert await scalar(billing.resources, "SELECT count(*) FROM ledger_entries") == 0


async def test_an_event_whose_workflow_never_started_is_started_by_the_redelivery(
    billing: Billing,
) -> None:
    user = await signup(billing.client)
    out = await billing.checkout(user)
    event = billing.fake.completed(out["payment"]["checkout_session_id"])

    # Temporal unreachable: the event is recorded, Stripe gets a 503 and will redeliver.
    unreachable = billing.settings.model_copy(update={"temporal_address": "127.0.0.1:1"})
    broken = Resources(
        settings=unreachable,
        engine=billing.resources.engine,
        sessions=billing.resources.sessions,
        http=billing.resources.http,
        temporal=TemporalHandle(unreachable),
    )
    body, headers = signed(event, WEBHOOK_SECRET)
    transport = httpx.ASGITransport(app=create_app(resources=broken))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as down:
        resp = await down.post("/webhooks/stripe", content=body, headers=headers)
    assert resp.status_code == 503
    assert resp.json()["error"]["code"] == "service_unavailable"
    assert await scalar(billing.resources, "SELECT count(*) FROM stripe_events") == 1
    assert await balance(billing.resources, user.org_id) == (0, 0)

    # The same happens if the process dies right after the commit. The redelivery is a
    # duplicate, but an unprocessed one, so it starts the workflow.
    again = await billing.deliver(event)
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert (await billing.processed(event["id"])).outcome.result == "credited"
    assert await balance(billing.resources, user.org_id) == (10_000 * MICROS, 10_000 * MICROS)
