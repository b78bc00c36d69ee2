"""Stripe webhooks end to end: signature, once-only fulfilment, ordering, reversals."""

from __future__ import annotations

import random
import time
import uuid
from datetime import timedelta

import httpx

from api.app import create_app
from tests.billing.conftest import (
    MICROS,
    WEBHOOK_SECRET,
    Billing,
    gather,
    resources_with,
    rows,
    scalar,
)
from tests.domain.invariants import assert_books_balance
from tests.fakes.stripe import signed
from tests.fixtures.ledger import Ledger
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
    await billing.attempted(b_refund["id"])  # deferred: B is not credited yet
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
    broken = resources_with(billing.resources, unreachable)
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


# --- dispute outcomes ----------------------------------------------------------------------


async def _entries(billing: Billing, org_id: uuid.UUID) -> list[tuple[str, int, int, str]]:
    """(kind, amount, balance_after, key) of the org's ledger, oldest first."""
    found = await rows(
        billing.resources,
        "SELECT kind, amount_micros, balance_after_micros, idempotency_key FROM ledger_entries"
        " WHERE org_id = :o ORDER BY id",
        o=org_id,
    )
    return [
        (r["kind"], r["amount_micros"], r["balance_after_micros"], r["idempotency_key"])
        for r in found
    ]


async def _payment(billing: Billing, payment_id: uuid.UUID) -> dict[str, object]:
    (row,) = await rows(
        billing.resources,
        "SELECT status, reversed_micros, uncollected_micros, disputes FROM payments WHERE id = :p",
        p=payment_id,
    )
    return dict(row)


async def _apply(billing: Billing, event: dict[str, object]) -> str:
    resp = await billing.deliver(event)
    assert resp.status_code == 200, resp.text
    return (await billing.processed(str(event["id"]))).outcome.result


def _dispute_id(event: dict[str, object]) -> str:
    data = event["data"]
    assert isinstance(data, dict)
    return str(data["object"]["id"])


async def _bought(billing: Billing, package_id: str) -> tuple[uuid.UUID, uuid.UUID, str]:
    """A paid purchase: (org id, payment id, PaymentIntent id)."""
    user = await signup(billing.client)
    out = await billing.buy(user, package_id)
    intent = billing.fake.session(out["payment"]["checkout_session_id"])["payment_intent"]
    return user.org_id, uuid.UUID(out["payment"]["id"]), intent


async def test_a_won_dispute_gives_back_exactly_what_it_took(billing: Billing) -> None:
    org, payment_id, intent = await _bought(billing, "pro_50")  # 55,000 credits for $50
    dispute = billing.fake.disputed(intent, 2_000)  # 2/5 of the charge: 22,000 credits
    dp = _dispute_id(dispute)
    assert await _apply(billing, dispute) == "reversed"
    assert await balance(billing.resources, org) == (33_000 * MICROS, 33_000 * MICROS)
    assert (await _payment(billing, payment_id))["status"] == "disputed"

    won = billing.fake.dispute_closed(dispute, "won")
    assert await _apply(billing, won) == "reinstated"
    assert await balance(billing.resources, org) == (55_000 * MICROS, 55_000 * MICROS)
    assert (await _entries(billing, org))[1:] == [
        ("reversal", -22_000 * MICROS, 33_000 * MICROS, f"stripe:dispute:{dp}"),
        ("reversal", 22_000 * MICROS, 55_000 * MICROS, f"stripe:dispute:{dp}:reinstated"),
    ]
    payment = await _payment(billing, payment_id)
    assert (payment["status"], payment["reversed_micros"], payment["uncollected_micros"]) == (
        "paid",
        0,
        0,
    )
    disputes = payment["disputes"]
    assert isinstance(disputes, dict)
    assert disputes[dp]["outcome"] == "won"
    assert disputes[dp]["taken_micros"] == disputes[dp]["reinstated_micros"] == 22_000 * MICROS
    audits = await rows(
        billing.resources,
        "SELECT after FROM audit_events WHERE org_id = :o AND action = 'payments.dispute_won'",
        o=org,
    )
    assert [a["after"]["reinstated_micros"] for a in audits] == [22_000 * MICROS]

    # Re-deliveries and second events about the same dispute change nothing.
    assert (await billing.deliver(won)).json()["duplicate"] is True
    again = billing.fake.dispute_closed(dispute, "won")
    recreated = billing.fake.event("charge.dispute.created", dispute["data"]["object"])
    assert await _apply(billing, again) == "ignored"
    assert await _apply(billing, recreated) == "ignored"
    assert await balance(billing.resources, org) == (55_000 * MICROS, 55_000 * MICROS)
    assert len(await _entries(billing, org)) == 3
    books = await assert_books_balance(billing.resources.sessions, org)
    assert books.balance == 55_000 * MICROS


async def test_a_won_dispute_that_could_not_collect_everything_gives_back_only_what_it_took(
    billing: Billing,
) -> None:
    org, payment_id, intent = await _bought(billing, "pro_50")
    # 40,000 of the 55,000 credits are held by in-flight requests: the dispute of the whole
    # charge can take only the 15,000 available and leaves 40,000 uncollected.
    hold = await Ledger(billing.resources.sessions).reserve(
        org, 40_000 * MICROS, key=f"inflight:{uuid.uuid4()}", expires_in=timedelta(minutes=5)
    )
    dispute = billing.fake.disputed(intent, 5_000)
    dp = _dispute_id(dispute)
    assert await _apply(billing, dispute) == "reversed"
    assert await balance(billing.resources, org) == (40_000 * MICROS, 0)
    payment = await _payment(billing, payment_id)
    assert (payment["reversed_micros"], payment["uncollected_micros"]) == (
        15_000 * MICROS,
        40_000 * MICROS,
    )

    assert await _apply(billing, billing.fake.dispute_closed(dispute, "won")) == "reinstated"
    assert await balance(billing.resources, org) == (55_000 * MICROS, 15_000 * MICROS)
    assert (await _entries(billing, org))[1:] == [
        ("reversal", -15_000 * MICROS, 40_000 * MICROS, f"stripe:dispute:{dp}"),
        ("reversal", 15_000 * MICROS, 55_000 * MICROS, f"stripe:dispute:{dp}:reinstated"),
    ]
    payment = await _payment(billing, payment_id)
    assert (payment["status"], payment["reversed_micros"], payment["uncollected_micros"]) == (
        "paid",
        0,
        0,
    )

    await Ledger(billing.resources.sessions).void(hold.hold.id)
    assert await balance(billing.resources, org) == (55_000 * MICROS, 55_000 * MICROS)
    await assert_books_balance(billing.resources.sessions, org)


async def test_a_lost_dispute_keeps_its_reversal_in_either_order(billing: Billing) -> None:
    org, payment_id, intent = await _bought(billing, "pro_50")
    dispute = billing.fake.disputed(intent, 5_000)
    assert await _apply(billing, dispute) == "reversed"
    before = await _payment(billing, payment_id)
    assert await _apply(billing, billing.fake.dispute_closed(dispute, "lost")) == "recorded"
    assert await balance(billing.resources, org) == (0, 0)
    after = await _payment(billing, payment_id)
    assert (after["status"], after["reversed_micros"], after["uncollected_micros"]) == (
        "disputed",
        55_000 * MICROS,
        0,
    )
    assert {k: v for k, v in before.items() if k != "disputes"} == {
        k: v for k, v in after.items() if k != "disputes"
    }
    # A contradicting late "won" for the same dispute does not reopen it.
    assert await _apply(billing, billing.fake.dispute_closed(dispute, "won")) == "ignored"
    assert await balance(billing.resources, org) == (0, 0)
    assert [e[0] for e in await _entries(billing, org)] == ["purchase", "reversal"]

    # The loss delivered before its creation: the creation still takes the share.
    org2, payment2, intent2 = await _bought(billing, "starter_10")
    dispute2 = billing.fake.disputed(intent2, 1_000)
    assert await _apply(billing, billing.fake.dispute_closed(dispute2, "lost")) == "recorded"
    assert await balance(billing.resources, org2) == (10_000 * MICROS, 10_000 * MICROS)
    assert await _apply(billing, dispute2) == "reversed"
    assert await balance(billing.resources, org2) == (0, 0)
    paid2 = await _payment(billing, payment2)
    assert (paid2["status"], paid2["reversed_micros"]) == ("disputed", 10_000 * MICROS)
    for o in (org, org2):
        await assert_books_balance(billing.resources.sessions, o)


async def test_a_win_delivered_before_its_dispute_takes_nothing_and_gives_nothing(
    billing: Billing,
) -> None:
    user = await signup(billing.client)
    out = await billing.checkout(user, "pro_50")
    payment_id = uuid.UUID(out["payment"]["id"])
    completed = billing.fake.completed(out["payment"]["checkout_session_id"])
    intent = billing.fake.session(out["payment"]["checkout_session_id"])["payment_intent"]
    dispute = billing.fake.disputed(intent, 5_000)
    won = billing.fake.dispute_closed(dispute, "won")

    # The outcome overtakes both the dispute and the payment's own credit: it waits for the
    # credit (rule 3), then is recorded; the dispute arriving last takes nothing.
    assert (await billing.deliver(won)).status_code == 200
    won_report = billing.processed(won["id"])
    await billing.attempted(won["id"])  # deferred: the payment is not credited yet
    assert await _apply(billing, completed) == "credited"
    report = await won_report
    assert report.outcome.result == "recorded" and report.attempts >= 2
    assert await _apply(billing, dispute) == "recorded"
    for e in (won, dispute):  # re-deliveries
        assert (await billing.deliver(e)).json()["duplicate"] is True
    assert await _apply(billing, billing.fake.dispute_closed(dispute, "won")) == "ignored"
    recreated = billing.fake.event("charge.dispute.created", dispute["data"]["object"])
    assert await _apply(billing, recreated) == "ignored"

    assert await balance(billing.resources, user.org_id) == (55_000 * MICROS, 55_000 * MICROS)
    assert [e[0] for e in await _entries(billing, user.org_id)] == ["purchase"]
    payment = await _payment(billing, payment_id)
    assert (payment["status"], payment["reversed_micros"], payment["uncollected_micros"]) == (
        "paid",
        0,
        0,
    )
    await assert_books_balance(billing.resources.sessions, user.org_id)


async def test_a_refund_after_a_won_dispute_still_takes_the_refunded_share(
    billing: Billing,
) -> None:
    org, payment_id, intent = await _bought(billing, "pro_50")
    dispute = billing.fake.disputed(intent, 2_500)
    assert await _apply(billing, dispute) == "reversed"
    assert await _apply(billing, billing.fake.dispute_closed(dispute, "won")) == "reinstated"
    assert await balance(billing.resources, org) == (55_000 * MICROS, 55_000 * MICROS)

    refund = billing.fake.refunded(intent, 5_000)
    assert await _apply(billing, refund) == "reversed"
    assert await balance(billing.resources, org) == (0, 0)
    payment = await _payment(billing, payment_id)
    assert (payment["status"], payment["reversed_micros"], payment["uncollected_micros"]) == (
        "refunded",
        55_000 * MICROS,
        0,
    )
    assert [(e[1], e[2]) for e in await _entries(billing, org)] == [
        (55_000 * MICROS, 55_000 * MICROS),
        (-27_500 * MICROS, 27_500 * MICROS),
        (27_500 * MICROS, 55_000 * MICROS),
        (-55_000 * MICROS, 0),
    ]
    await assert_books_balance(billing.resources.sessions, org)


async def test_refunds_and_disputes_add_up_in_either_order(billing: Billing) -> None:
    """A refund made before a dispute but delivered after it still takes its share, and the
    dispute's later win gives back only the dispute's part."""
    org, payment_id, intent = await _bought(billing, "pro_50")
    dispute = billing.fake.disputed(intent, 2_500)  # the half that was not refunded
    refund = billing.fake.refunded(intent, 2_500)
    assert await _apply(billing, dispute) == "reversed"
    assert await _apply(billing, refund) == "reversed"
    assert await balance(billing.resources, org) == (0, 0)

    assert await _apply(billing, billing.fake.dispute_closed(dispute, "won")) == "reinstated"
    assert await balance(billing.resources, org) == (27_500 * MICROS, 27_500 * MICROS)
    payment = await _payment(billing, payment_id)
    assert (payment["status"], payment["reversed_micros"], payment["uncollected_micros"]) == (
        "paid",
        27_500 * MICROS,
        0,
    )
    await assert_books_balance(billing.resources.sessions, org)


async def test_an_inquiry_refunded_before_it_closes_gives_nothing_back(billing: Billing) -> None:
    """Refunding settles an inquiry (it closes `warning_closed`): the credits its creation
    took now stand for the refund, so the close must not give them back."""
    org, payment_id, intent = await _bought(billing, "starter_10")  # 10,000 credits for $10
    hold = await Ledger(billing.resources.sessions).reserve(
        org, 4_000 * MICROS, key=f"inflight:{uuid.uuid4()}", expires_in=timedelta(minutes=5)
    )
    inquiry = billing.fake.disputed(intent, 1_000, status="warning_needs_response")
    dp = _dispute_id(inquiry)
    assert await _apply(billing, inquiry) == "reversed"  # takes 6,000, 4,000 uncollected
    refund = billing.fake.refunded(intent, 1_000)
    assert await _apply(billing, refund) == "reversed"
    payment = await _payment(billing, payment_id)
    assert (payment["status"], payment["reversed_micros"], payment["uncollected_micros"]) == (
        "disputed",
        6_000 * MICROS,
        4_000 * MICROS,
    )

    closed = billing.fake.dispute_closed(inquiry, "warning_closed")
    assert await _apply(billing, closed) == "reinstated"
    assert await balance(billing.resources, org) == (4_000 * MICROS, 0)
    payment = await _payment(billing, payment_id)
    assert (payment["status"], payment["reversed_micros"], payment["uncollected_micros"]) == (
        "refunded",
        6_000 * MICROS,
        4_000 * MICROS,
    )
    disputes = payment["disputes"]
    assert isinstance(disputes, dict)
    assert disputes[dp]["to_refunds_micros"] == 10_000 * MICROS
    assert disputes[dp]["reinstated_micros"] == 0
    assert [e[3] for e in await _entries(billing, org)][1:] == [f"stripe:dispute:{dp}"]

    await Ledger(billing.resources.sessions).void(hold.hold.id)
    await assert_books_balance(billing.resources.sessions, org)
