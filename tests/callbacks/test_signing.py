"""Standard Webhooks signatures: the published vector, round trips, tampering, staleness,
each judged by the `standardwebhooks` library as a receiver would judge it."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook

from domain.callbacks.signing import SignatureError, new_secret, secret_bytes, sign
from tests.callbacks.receiver import receiver_accepts as verify

# The Standard Webhooks / Svix reference test vector: reproducing it is what shows an
# off-the-shelf receiver library will accept our signatures (a round trip would not).
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TS = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIG = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def _headers(msg_id: str, ts: int, signature: str) -> dict[str, str]:
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": signature}


def test_the_published_vector_reproduces() -> None:
    assert sign(VECTOR_SECRET, VECTOR_ID, VECTOR_TS, VECTOR_BODY) == VECTOR_SIG
    at = datetime.fromtimestamp(VECTOR_TS, UTC)
    assert Webhook(VECTOR_SECRET).sign(VECTOR_ID, at, VECTOR_BODY) == VECTOR_SIG


def test_round_trip_and_multiple_signatures() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_") and len(secret_bytes(secret)) == 32
    body = b'{"a":1}'
    now = int(time.time())
    sig = sign(secret, "msg_1", now, body)
    assert verify(secret, _headers("msg_1", now, sig), body)
    # during a rotation a sender may list an old and a new signature
    other = sign(new_secret(), "msg_1", now, body)
    assert verify(secret, _headers("msg_1", now, f"{other} {sig}"), body)


@pytest.mark.parametrize("part", ["body", "id", "timestamp", "secret", "version"])
def test_any_tampering_fails(part: str) -> None:
    secret = new_secret()
    body = b'{"status":"succeeded"}'
    now = int(time.time())
    sig = sign(secret, "msg_1", now, body)
    headers = _headers("msg_1", now, sig)
    if part == "body":
        body = b'{"status":"failed"}'
    elif part == "id":
        headers["webhook-id"] = "msg_2"
    elif part == "timestamp":
        headers["webhook-timestamp"] = str(now - 1)
    elif part == "secret":
        secret = new_secret()
    else:
        headers["webhook-signature"] = "v2," + sig.removeprefix("v1,")
    assert not verify(secret, headers, body)


def test_stale_or_future_timestamps_fail() -> None:
    secret = new_secret()
    body = b"{}"
    now = int(time.time())
    for ts in (now - 301, now + 301):
        assert not verify(secret, _headers("msg_1", ts, sign(secret, "msg_1", ts, body)), body)
    old = now - 200
    assert verify(secret, _headers("msg_1", old, sign(secret, "msg_1", old, body)), body)


def test_missing_headers_and_bad_secrets() -> None:
    secret = new_secret()
    assert not verify(secret, {}, b"{}")
    assert not verify(secret, _headers("msg_1", 0, "v1,x") | {"webhook-timestamp": "soon"}, b"")
    with pytest.raises(SignatureError):
        sign("whsec_not base64!", "msg", 1, b"")
    raw = base64.b64encode(b"k" * 24).decode()
    assert sign(raw, "m", 1, b"") == sign("whsec_" + raw, "m", 1, b"")
