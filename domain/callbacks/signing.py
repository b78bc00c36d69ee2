"""Standard Webhooks signatures (https://www.standardwebhooks.com), so receivers can verify
our callbacks with an off-the-shelf library instead of code written against our docs (the
tests verify every signature with the `standardwebhooks` library, as a receiver would).

The signed content is `{webhook-id}.{webhook-timestamp}.{body}`; the id makes a replayed body
under another id fail, the timestamp lets a receiver refuse stale replays.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

PREFIX = "whsec_"
SECRET_BYTES = 32


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
