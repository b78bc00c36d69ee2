"""Short-lived signed URLs for stored results: `/v1/files/{task id}/{index}?exp=…&sig=…`.

A signed URL opens one stored object without an API key, so browsers (`<img>`, `<video>`)
and the SDKs' download helpers can use it; it stops working at `exp`. The signature is
HMAC-SHA256 over the task id, the index and the expiry, under a key derived from the server
pepper for this one purpose (a leaked URL signature says nothing about API key hashes, and
rotating the pepper invalidates every URL handed out).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from dataclasses import dataclass, field

from domain.errors import PermissionDenied

_PURPOSE = b"oxinf result urls v1"
# An expiry further out than this is not one we could have signed (and would not fit a URL).
MAX_TTL_S = 7 * 24 * 3600


class BadSignature(PermissionDenied):
    """403 `permission_denied`: the URL was not signed by us, was altered, or has expired."""


@dataclass(frozen=True)
class ResultSigner:
    pepper: str = field(repr=False)
    ttl_s: int = 3600

    def __post_init__(self) -> None:
        if not 1 <= self.ttl_s <= MAX_TTL_S:
            raise ValueError(f"signed URL lifetime must be 1..{MAX_TTL_S} seconds")

    @property
    def _key(self) -> bytes:
        return hmac.new(self.pepper.encode(), _PURPOSE, hashlib.sha256).digest()

    def _sig(self, task_id: uuid.UUID, index: int, exp: int) -> str:
        message = f"{task_id}/{index}/{exp}".encode()
        digest = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    def path(self, task_id: uuid.UUID, index: int, *, now: float | None = None) -> str:
        """The signed path from the API root, valid for `ttl_s` from `now`."""
        exp = int(now if now is not None else time.time()) + self.ttl_s
        return f"/v1/files/{task_id}/{index}?exp={exp}&sig={self._sig(task_id, index, exp)}"

    def url(
        self, base_url: str | None, task_id: uuid.UUID, index: int, *, now: float | None = None
    ) -> str:
        path = self.path(task_id, index, now=now)
        return f"{base_url.rstrip('/')}{path}" if base_url else path

    def verify(
        self, task_id: uuid.UUID, index: int, exp: int, sig: str, *, now: float | None = None
    ) -> None:
        """Raises `BadSignature` unless `sig` is ours for exactly this object and expiry,
        and the expiry has not passed."""
        current = now if now is not None else time.time()
        expected = self._sig(task_id, index, exp)
        if not hmac.compare_digest(expected.encode(), sig.encode("utf-8", "replace")):
            raise BadSignature("this file URL's signature is not valid", param="sig")
        if exp <= current:
            raise BadSignature(
                "this file URL has expired; get a fresh one from GET /v1/tasks/{id}",
                param="exp",
            )
