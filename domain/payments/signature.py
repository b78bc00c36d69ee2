"""Stripe webhook signatures: `Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256>`.

The HMAC covers `f"{t}.{raw body}"`, so verification must run on the exact bytes received,
before any JSON parsing. The timestamp bound (both directions) stops a captured delivery from
being replayed later; several `v1` values (and several secrets) are accepted so a secret can
be rolled without dropping events.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Sequence

from domain.errors import InvalidRequest

DEFAULT_TOLERANCE_S = 300


class InvalidSignature(InvalidRequest):
    """Raised for a missing, malformed, wrong or stale signature; the edge answers 400."""


def compute_signature(secret: str, timestamp: int, payload: bytes) -> str:
    signed = str(timestamp).encode() + b"." + payload
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def signature_header(secret: str, payload: bytes, timestamp: int | None = None) -> str:
    """What Stripe would send (used by tests and the fake Stripe server)."""
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},v1={compute_signature(secret, t, payload)}"


def _parse(header: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            if not value.isdigit() or len(value) > 12:
                raise InvalidSignature("malformed Stripe-Signature timestamp")
            timestamp = int(value)
        elif key == "v1":
            signatures.append(value)
    if timestamp is None or not signatures:
        raise InvalidSignature("Stripe-Signature needs a timestamp and a v1 signature")
    return timestamp, signatures


def verify(
    payload: bytes,
    header: str | None,
    secrets: Sequence[str],
    *,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> int:
    """Check the header against every configured secret; returns the signed timestamp."""
    if not header:
        raise InvalidSignature("missing Stripe-Signature header")
    timestamp, offered = _parse(header)
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        raise InvalidSignature("Stripe-Signature timestamp is outside the tolerance")
    for secret in secrets:
        expected = compute_signature(secret, timestamp, payload)
        if any(hmac.compare_digest(expected, candidate) for candidate in offered):
            return timestamp
    raise InvalidSignature("Stripe-Signature does not match")
