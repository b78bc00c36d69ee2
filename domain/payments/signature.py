"""Stripe webhook signatures, verified by the `stripe` library on the exact bytes received
(before any JSON parsing).

The library checks the HMAC of `f"{t}.{raw body}"` against every `v1` value and refuses a
timestamp older than the tolerance; we add what it leaves out: several secrets (so one can
be rolled without dropping events), a bound on timestamps in the future as well, and one
domain error (a 400) for every way a signature can be wrong.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence

import stripe

from domain.errors import InvalidRequest

DEFAULT_TOLERANCE_S = 300
_TIMESTAMP = re.compile(r"(?:^|,)\s*t=(\d{1,12})\s*(?:,|$)")


class InvalidSignature(InvalidRequest):
    """Raised for a missing, malformed, wrong or stale signature; the edge answers 400."""


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
    found = _TIMESTAMP.search(header)
    if found is None:
        raise InvalidSignature("Stripe-Signature needs a timestamp and a v1 signature")
    timestamp = int(found.group(1))
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        raise InvalidSignature("Stripe-Signature timestamp is outside the tolerance")
    try:
        text = payload.decode("utf-8")  # what the library signs over; bytes it cannot read fail
    except UnicodeDecodeError:
        raise InvalidSignature("Stripe webhook body is not UTF-8") from None
    for secret in secrets:
        try:
            # The age check is ours (above, against `now`); the library's would read the clock.
            stripe.WebhookSignature.verify_header(text, header, secret, tolerance=None)
        except stripe.SignatureVerificationError:
            continue
        return timestamp
    raise InvalidSignature("Stripe-Signature does not match")
