"""The fake Stripe's subscriptions: Checkout in subscription mode, the customer portal, and
builders for the events a subscription's life sends (paid invoices, plan changes, cancel).

Periods are whole days from a chosen start (30 for monthly prices, 7 for weekly ones), so
tests name the periods they expect. Events come back as lists in the order Stripe would
send them; tests deliver them in any order, twice, or not at all.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.fakes.stripe import FakeStripe

Obj = dict[str, Any]
DAY = 86_400


def new_id(prefix: str) -> str:
    return f"{prefix}_test_{secrets.token_hex(12)}"


class FakeSubscriptions:
    def __init__(self, owner: FakeStripe) -> None:
        self._owner = owner
        self.sessions: dict[str, Obj] = {}
        self.subscriptions: dict[str, Obj] = {}
        self.portals: list[Obj] = []
        # Prices created in the Stripe dashboard, by id: their billing interval.
        self.price_intervals: dict[str, str] = {}

    # --- the API ---------------------------------------------------------------------------

    def create_session(self, params: Obj) -> Obj:
        item = params["line_items"][0]
        if "price" in item:
            price_id = item["price"]
            interval = self.price_intervals.get(price_id, "month")
        else:
            data = item["price_data"]
            price_id = new_id("price")
            interval = data["recurring"]["interval"]
        sid = new_id("cs")
        session = {
            "id": sid,
            "object": "checkout.session",
            "mode": "subscription",
            "status": "open",
            "payment_status": "unpaid",
            "client_reference_id": params.get("client_reference_id"),
            "metadata": params.get("metadata", {}),
            "customer": params.get("customer"),
            "subscription": None,
            "success_url": params.get("success_url"),
            "cancel_url": params.get("cancel_url"),
            "url": f"https://checkout.fake.stripe.test/c/sub/{sid}",
            "_price": price_id,
            "_interval": interval,
            "_sub_metadata": params.get("subscription_data", {}).get("metadata", {}),
        }
        self.sessions[sid] = session
        return session

    def portal_session(self, params: Obj) -> Obj:
        portal = {
            "id": new_id("bps"),
            "object": "billing_portal.session",
            "customer": params["customer"],
            "return_url": params.get("return_url"),
            "url": f"https://billing.fake.stripe.test/p/session/{secrets.token_hex(8)}",
        }
        self.portals.append(portal)
        return portal

    # --- the lifecycle, as events ------------------------------------------------------------

    def subscribe(self, session_id: str, *, start: int) -> tuple[Obj, list[Obj]]:
        """The customer pays the checkout: the subscription, and the events Stripe sends
        (checkout completed, subscription created, first invoice paid)."""
        session = self.sessions[session_id]
        customer = session["customer"] or new_id("cus")
        sub: Obj = {
            "id": new_id("sub"),
            "object": "subscription",
            "customer": customer,
            "status": "active",
            "metadata": session["_sub_metadata"],
            "cancel_at_period_end": False,
            "_interval": session["_interval"],
        }
        self._set_period(sub, start)
        self._set_price(sub, session["_price"])
        self.subscriptions[sub["id"]] = sub
        session.update(
            status="complete", payment_status="paid", customer=customer, subscription=sub["id"]
        )
        events = [
            self._owner.event("checkout.session.completed", _public(session)),
            self._owner.event("customer.subscription.created", _public(sub)),
            self.invoice_paid(sub["id"], "subscription_create"),
        ]
        return sub, events

    def renew(self, sub_id: str) -> list[Obj]:
        """The next period starts and is paid (a pending price change takes effect)."""
        sub = self.subscriptions[sub_id]
        self._set_period(sub, sub["current_period_end"])
        return [
            self._owner.event("customer.subscription.updated", _public(sub)),
            self.invoice_paid(sub_id, "subscription_cycle"),
        ]

    def change_price(self, sub_id: str, price_id: str) -> Obj:
        sub = self.subscriptions[sub_id]
        self._set_price(sub, price_id)
        return self._owner.event("customer.subscription.updated", _public(sub))

    def cancel_at_period_end(self, sub_id: str) -> Obj:
        sub = self.subscriptions[sub_id]
        sub["cancel_at_period_end"] = True
        return self._owner.event("customer.subscription.updated", _public(sub))

    def end(self, sub_id: str) -> Obj:
        sub = self.subscriptions[sub_id]
        sub["status"] = "canceled"
        return self._owner.event("customer.subscription.deleted", _public(sub))

    def invoice_paid(self, sub_id: str, reason: str) -> Obj:
        sub = self.subscriptions[sub_id]
        item = sub["items"]["data"][0]
        invoice = {
            "id": new_id("in"),
            "object": "invoice",
            "customer": sub["customer"],
            "subscription": sub_id,
            "billing_reason": reason,
            "status": "paid",
            "subscription_details": {"metadata": sub["metadata"]},
            "lines": {
                "data": [
                    {
                        "id": new_id("il"),
                        "price": {"id": item["price"]["id"]},
                        "period": {
                            "start": sub["current_period_start"],
                            "end": sub["current_period_end"],
                        },
                    }
                ]
            },
        }
        return self._owner.event("invoice.paid", invoice)

    def _set_period(self, sub: Obj, start: int) -> None:
        days = 7 if sub["_interval"] == "week" else 30
        sub["current_period_start"] = start
        sub["current_period_end"] = start + days * DAY

    def _set_price(self, sub: Obj, price_id: str) -> None:
        sub["items"] = {"data": [{"id": new_id("si"), "price": {"id": price_id}}]}


def _public(obj: Obj) -> Obj:
    return {k: v for k, v in obj.items() if not k.startswith("_")}
