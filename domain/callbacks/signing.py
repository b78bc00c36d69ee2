"""Standard Webhooks signatures (https://www.standardwebhooks.com), so receivers can verify
our callbacks with an off-the-shelf library instead of code written against our docs.

The signed content is `{webhook-id}.{webhook-timestamp}.{body}`; the id makes a replayed body
under another id fail, the timestamp lets a receiver refuse stale replays.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping

PREFIX = "whsec_"
SECRET_BYTES = 32
DEFAULT_TOLERANCE_S = 300


class SignatureError(ValueError):
    """A secret that is not `whsec_` + base64."""


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_bytes(secret: str) -> bytes:
    encoded = secret.removeprefix(PREFIX)
    try:
        return base64.b64decode(encoded, validate=True)
    except binascii.Error as exc:
        raise SignatureError("webhook secret must be whsec_ followed by base64") from exc


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value for one send (`v1,<base64 HMAC-SHA256>`)."""
    content = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_bytes(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    *,
    now: int | None = None,
) -> bool:
    """What a receiver does: any one `v1` signature matching within the time window passes.

    `headers` must have lowercase keys (as HTTP libraries usually give them). The header may
    carry several space-separated signatures, which is how a sender signs with an old and a
    new secret during rotation.
    """
    msg_id = headers.get("webhook-id")
    raw_ts = headers.get("webhook-timestamp")
    raw_sigs = headers.get("webhook-signature")
    if not msg_id or not raw_ts or not raw_sigs:
        return False
    try:
        timestamp = int(raw_ts)
    except ValueError:
        return False
    current = int(time.time()) if now is None else now
    if abs(current - timestamp) > tolerance_s:
        return False
    expected = sign(secret, msg_id, timestamp, body).encode()
    for candidate in raw_sigs.split():
        if candidate.startswith("v1,") and hmac.compare_digest(candidate.encode(), expected):
            return True
    return False
