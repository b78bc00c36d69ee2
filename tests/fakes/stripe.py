"""A small fake of the Stripe API over real HTTP on loopback, plus signed webhook events.

It serves only what 0xinf calls (Checkout Sessions and PaymentIntents) in Stripe's wire
format: form-encoded bodies with bracketed keys, Bearer auth, `Idempotency-Key` replay, and
Stripe's error envelope (a declined off-session card is a 402 `card_error`). The real
`stripe` library talks to it through `base_addresses={"api": fake.base_url}`.

Tests drive the rest of the lifecycle with the event builders (`completed`, `refunded`,
`disputed`, `dispute_closed`, ...) which also update the fake's objects, and sign the
payloads exactly as Stripe does.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import stripe

from tests.fakes.stripe_subscriptions import FakeSubscriptions, Obj


@dataclass(frozen=True)
class StripeCall:
    method: str
    path: str
    params: Obj
    idempotency_key: str | None
    replayed: bool


@dataclass
class _State:
    sessions: dict[str, Obj] = field(default_factory=dict)
    intents: dict[str, Obj] = field(default_factory=dict)
    idempotent: dict[str, tuple[str, int, Obj]] = field(default_factory=dict)
    calls: list[StripeCall] = field(default_factory=list)


def _nest(pairs: list[tuple[str, str]]) -> Obj:
    """`a[b][0][c]=v` form keys back into nested dicts and lists."""
    root: Obj = {}
    for key, value in pairs:
        parts = key.replace("]", "").split("[")
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return _lists(root)


def _lists(node: Any) -> Any:
    if isinstance(node, dict):
        fixed = {k: _lists(v) for k, v in node.items()}
        if fixed and all(k.isdigit() for k in fixed):
            return [fixed[k] for k in sorted(fixed, key=int)]
        return fixed
    return node


def _new_id(prefix: str) -> str:
    return f"{prefix}_test_{secrets.token_hex(12)}"


class FakeStripe:
    def __init__(self, *, api_key: str = "sk_test_fake_0xinf") -> None:
        self.api_key = api_key
        self.decline_next: int = 0  # decline this many PaymentIntent creations
        self.intent_status = "succeeded"
        self._state = _State()
        self._lock = threading.Lock()
        self.subscriptions = FakeSubscriptions(self)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakeStripe:
        fake = self

        class Handler(_Handler):
            owner = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeStripe:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start() the fake first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def reset(self) -> None:
        """Forget recorded calls and failure modes (objects stay: events may still name them)."""
        with self._lock:
            self._state.calls.clear()
        self.decline_next = 0
        self.intent_status = "succeeded"

    # --- inspection ------------------------------------------------------------------------

    def calls(self, path_prefix: str = "/v1/") -> list[StripeCall]:
        with self._lock:
            return [c for c in self._state.calls if c.path.startswith(path_prefix)]

    def session(self, session_id: str) -> Obj:
        with self._lock:
            return dict(self._state.sessions[session_id])

    def intent(self, intent_id: str) -> Obj:
        with self._lock:
            return dict(self._state.intents[intent_id])

    # --- the API ---------------------------------------------------------------------------

    def handle(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, Obj]:
        if headers.get("authorization") != f"Bearer {self.api_key}":
            return 401, _error("invalid_request_error", "Invalid API Key provided")
        params = _nest(parse_qsl(body.decode(), keep_blank_values=True)) if body else {}
        key = headers.get("idempotency-key")
        with self._lock:
            if method == "POST" and key:
                seen = self._state.idempotent.get(key)
                fingerprint = json.dumps([path, params], sort_keys=True)
                if seen is not None:
                    self._state.calls.append(StripeCall(method, path, params, key, True))
                    if seen[0] != fingerprint:
                        return 400, _error(
                            "idempotency_error",
                            "idempotency key reused with other parameters",
                        )
                    return seen[1], seen[2]
            self._state.calls.append(StripeCall(method, path, params, key, False))
            status, out = self._route(method, path, params)
            out = {k: v for k, v in out.items() if not k.startswith("_")}
            if method == "POST" and key:
                self._state.idempotent[key] = (
                    json.dumps([path, params], sort_keys=True),
                    status,
                    out,
                )
            return status, out

    def _route(self, method: str, path: str, params: Obj) -> tuple[int, Obj]:
        parts = [p for p in path.split("/") if p]
        if parts[:3] == ["v1", "checkout", "sessions"]:
            if method == "POST" and len(parts) == 3:
                return 200, self._create_session(params)
            if method == "GET" and len(parts) == 4 and parts[3] in self._state.sessions:
                return 200, self._state.sessions[parts[3]]
        if parts == ["v1", "billing_portal", "sessions"] and method == "POST":
            return 200, self.subscriptions.portal_session(params)
        if parts[:2] == ["v1", "payment_intents"]:
            if method == "POST" and len(parts) == 2:
                return self._create_intent(params)
            if method == "GET" and len(parts) == 3 and parts[2] in self._state.intents:
                return 200, self._state.intents[parts[2]]
        return 404, _error("invalid_request_error", f"Unrecognized request URL ({method}: {path})")

    def _create_session(self, params: Obj) -> Obj:
        if params.get("mode") == "subscription":
            return self.subscriptions.create_session(params)
        if params.get("mode") != "payment":
            raise ValueError("the fake only does mode=payment and mode=subscription")
        item = params["line_items"][0]
        amount = int(item["price_data"]["unit_amount"]) * int(item.get("quantity", 1))
        sid = _new_id("cs")
        session = {
            "id": sid,
            "object": "checkout.session",
            "mode": "payment",
            "status": "open",
            "payment_status": "unpaid",
            "amount_total": amount,
            "currency": item["price_data"]["currency"],
            "client_reference_id": params.get("client_reference_id"),
            "metadata": params.get("metadata", {}),
            "customer": params.get("customer"),
            "customer_creation": params.get("customer_creation"),
            "payment_intent": None,
            "success_url": params.get("success_url"),
            "cancel_url": params.get("cancel_url"),
            "url": f"https://checkout.fake.stripe.test/c/pay/{sid}",
            "_intent_data": params.get("payment_intent_data", {}),
        }
        self._state.sessions[sid] = session
        return session

    def _create_intent(self, params: Obj) -> tuple[int, Obj]:
        intent = {
            "id": _new_id("pi"),
            "object": "payment_intent",
            "amount": int(params["amount"]),
            "currency": params["currency"],
            "customer": params.get("customer"),
            "payment_method": params.get("payment_method"),
            "metadata": params.get("metadata", {}),
            "status": self.intent_status,
            "latest_charge": _new_id("ch"),
        }
        if self.decline_next > 0:
            self.decline_next -= 1
            intent["status"] = "requires_payment_method"
            intent["latest_charge"] = None
            self._state.intents[intent["id"]] = intent
            error = _error("card_error", "Your card was declined.")
            error["error"].update(
                {
                    "code": "card_declined",
                    "decline_code": "insufficient_funds",
                    "payment_intent": intent,
                }
            )
            return 402, error
        self._state.intents[intent["id"]] = intent
        return 200, intent

    # --- events ----------------------------------------------------------------------------

    def event(self, event_type: str, obj: Obj) -> Obj:
        public = {k: v for k, v in obj.items() if not k.startswith("_")}
        self._created = max(getattr(self, "_created", 0) + 1, int(time.time()))
        return {
            "id": _new_id("evt"),
            "object": "event",
            "type": event_type,
            # Strictly increasing, as Stripe's are for one object's successive states.
            "created": self._created,
            "livemode": False,
            "data": {"object": public},
        }

    def completed(self, session_id: str, *, paid: bool = True) -> Obj:
        """The customer finished checkout; unpaid means an asynchronous payment method."""
        with self._lock:
            session = self._state.sessions[session_id]
            if session["payment_intent"] is None:
                intent = {
                    "id": _new_id("pi"),
                    "object": "payment_intent",
                    "amount": session["amount_total"],
                    "currency": session["currency"],
                    "metadata": session["_intent_data"].get("metadata", {}),
                    "payment_method": _new_id("pm"),
                    "status": "succeeded" if paid else "processing",
                    "latest_charge": _new_id("ch"),
                }
                self._state.intents[intent["id"]] = intent
                session["payment_intent"] = intent["id"]
            if session["customer"] is None and session["customer_creation"] == "always":
                session["customer"] = _new_id("cus")
            session["status"] = "complete"
            session["payment_status"] = "paid" if paid else "unpaid"
            return self.event("checkout.session.completed", session)

    def async_result(self, session_id: str, *, succeeded: bool) -> Obj:
        with self._lock:
            session = self._state.sessions[session_id]
            session["payment_status"] = "paid" if succeeded else "unpaid"
            kind = "succeeded" if succeeded else "failed"
            return self.event(f"checkout.session.async_payment_{kind}", session)

    def expired(self, session_id: str) -> Obj:
        with self._lock:
            session = self._state.sessions[session_id]
            session["status"] = "expired"
            return self.event("checkout.session.expired", session)

    def intent_succeeded(self, intent_id: str) -> Obj:
        with self._lock:
            intent = self._state.intents[intent_id]
            intent["status"] = "succeeded"
            return self.event("payment_intent.succeeded", intent)

    def _charge(self, intent_id: str) -> Obj:
        intent = self._state.intents[intent_id]
        return {
            "id": intent["latest_charge"],
            "object": "charge",
            "amount": intent["amount"],
            "currency": intent["currency"],
            "payment_intent": intent_id,
            "metadata": {},
            "amount_refunded": 0,
            "refunded": False,
        }

    def refunded(self, intent_id: str, amount_refunded: int) -> Obj:
        """`charge.refunded` with the cumulative refunded amount, as Stripe sends it."""
        with self._lock:
            charge = self._charge(intent_id)
            charge["amount_refunded"] = amount_refunded
            charge["refunded"] = amount_refunded >= charge["amount"]
            return self.event("charge.refunded", charge)

    def disputed(self, intent_id: str, amount: int, *, status: str = "needs_response") -> Obj:
        """`charge.dispute.created`; `status="warning_needs_response"` makes it an inquiry."""
        with self._lock:
            charge = self._charge(intent_id)
            dispute = {
                "id": _new_id("dp"),
                "object": "dispute",
                "amount": amount,
                "currency": charge["currency"],
                "charge": charge["id"],
                "payment_intent": intent_id,
                "reason": "fraudulent",
                "status": status,
                "metadata": {},
            }
            return self.event("charge.dispute.created", dispute)

    def dispute_closed(self, dispute: Obj, status: str) -> Obj:
        """`charge.dispute.closed` for the dispute of a `disputed` event (or the dispute
        object itself), with its final status: won, lost, warning_closed, ..."""
        obj = dispute["data"]["object"] if dispute.get("object") == "event" else dispute
        return self.event("charge.dispute.closed", {**obj, "status": status})


def signed(
    event: Obj, secret: str, *, timestamp: int | None = None
) -> tuple[bytes, dict[str, str]]:
    """The body and headers of a webhook delivery, signed the way Stripe signs them."""
    body = json.dumps(event, separators=(",", ":")).encode()
    return body, {
        "stripe-signature": stripe.WebhookSignature.generate_signature_header(
            body.decode(), secret, timestamp
        ),
        "content-type": "application/json",
    }


def _error(kind: str, message: str) -> Obj:
    return {"error": {"type": kind, "message": message}}


class _Handler(BaseHTTPRequestHandler):
    owner: FakeStripe
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        if method == "GET":
            query = urlsplit(self.path).query
            body = query.encode() if query else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            status, out = self.owner.handle(method, urlsplit(self.path).path, headers, body)
        except (KeyError, ValueError, TypeError) as exc:
            status, out = 400, _error("invalid_request_error", f"fake could not handle: {exc!r}")
        data = json.dumps(out).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("request-id", f"req_{secrets.token_hex(8)}")
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")
