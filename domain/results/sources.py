"""Where a task's result bytes come from, and opening them safely: inline bytes (speech, `data:`
URLs) or a download, which may redirect.

A download is trusted as far as the operator's channel goes and no further. A URL on the
channel's own origin (scheme, host and port of its base URL) is fetched like the channel's API
calls, with the channel's credentials only where the provider's results need them (OpenAI
videos). Any other host, including every redirect hop leaving the channel's origin, is
fetched without credentials through the tenant egress policy's client: public hosts only,
each connection resolved, checked and pinned (`domain.egress`). Size and time are bounded by
the caller's limits; compressed answers are not asked for, so a size read is a size stored.
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import urljoin

import httpx

from domain.egress.pinning import EgressRefused
from domain.providers.media_http import OCTET_STREAM, clean_content_type

REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5
_RETRYABLE_STATUS = frozenset({408, 425, 429})


class CopyError(Exception):
    """A result could not be fetched or stored. `permanent`: retrying cannot help (refused
    by the egress policy, too large, the provider answered 4xx); the message is safe to
    record (no credentials, no resolved addresses)."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.index: int | None = None


@dataclass(frozen=True)
class Inline:
    data: bytes
    content_type: str


@dataclass(frozen=True)
class Remote:
    url: str


ResultSource = Inline | Remote


@dataclass(frozen=True)
class TrustedOrigin:
    """The channel the task ran on. `headers` (its credentials) go to this origin only."""

    origin: tuple[str, str, int]
    headers: dict[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, base_url: str, headers: dict[str, str] | None = None) -> TrustedOrigin | None:
        try:
            return cls(origin_of(httpx.URL(base_url)), dict(headers or {}))
        except (httpx.InvalidURL, ValueError):
            return None


def origin_of(url: httpx.URL) -> tuple[str, str, int]:
    default = 443 if url.scheme == "https" else 80
    return (url.scheme, url.host.lower(), url.port or default)


def decode_data_url(url: str) -> Inline | None:
    """`data:<type>;base64,<payload>`, as providers' inline images arrive; None otherwise."""
    header, sep, payload = url.removeprefix("data:").partition(",")
    if not (url.startswith("data:") and sep and header.endswith(";base64")):
        return None
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        return None
    return Inline(data, clean_content_type(header.removesuffix(";base64")))


def guess_type(url: str, fallback: str) -> str:
    guessed, _ = mimetypes.guess_type(httpx.URL(url).path)
    return clean_content_type(guessed) if guessed else fallback


class Download:
    """An open download: headers read, the body streamed by `chunks(limit)` and closed by
    `aclose()` (idempotent; `chunks` closes it too)."""

    def __init__(self, response: httpx.Response, url: str) -> None:
        self._response = response
        self.url = url
        self.content_type = clean_content_type(response.headers.get("content-type"))
        length = response.headers.get("content-length", "").strip()
        encoded = response.headers.get("content-encoding", "identity").strip().lower()
        known = encoded == "identity" and length.isascii() and length.isdigit()
        self.content_length = int(length) if known else None

    async def chunks(self, limit: int) -> AsyncIterator[bytes]:
        if self.content_length is not None and self.content_length > limit:
            raise too_large(limit)
        seen = 0
        try:
            async for piece in self._response.aiter_bytes():
                seen += len(piece)
                if seen > limit:
                    raise too_large(limit)
                if piece:
                    yield piece
        except httpx.HTTPError as exc:
            raise CopyError(f"the download broke off: {type(exc).__name__}") from None
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        await self._response.aclose()


def too_large(limit: int) -> CopyError:
    return CopyError(f"the result is larger than {limit} bytes", permanent=True)


async def open_download(
    url: str,
    *,
    trusted: TrustedOrigin | None,
    channel_http: httpx.AsyncClient,
    public_http: httpx.AsyncClient,
    read_timeout_s: float,
) -> Download:
    """GET `url`, following up to `MAX_REDIRECTS` redirects, each hop judged on its own."""
    for _ in range(MAX_REDIRECTS + 1):
        try:
            target = httpx.URL(url)
        except httpx.InvalidURL:
            raise CopyError("the result URL is not a valid URL", permanent=True) from None
        if target.scheme not in ("https", "http"):
            raise CopyError("the result URL is not an http(s) URL", permanent=True)
        ours = trusted is not None and origin_of(target) == trusted.origin
        client = channel_http if ours else public_http
        headers = {"Accept-Encoding": "identity"}
        if ours and trusted is not None:
            headers |= trusted.headers
        response = await _send(client, target, headers, read_timeout_s)
        if response.status_code in REDIRECTS:
            location = response.headers.get("location")
            await response.aclose()
            if not location:
                raise CopyError("the provider redirected without a location", permanent=True)
            url = urljoin(str(target), location)
            continue
        if not 200 <= response.status_code < 300:
            await response.aclose()
            status = response.status_code
            permanent = status < 500 and status not in _RETRYABLE_STATUS
            raise CopyError(f"the provider answered {status} for the result", permanent=permanent)
        return Download(response, str(target))
    raise CopyError(f"more than {MAX_REDIRECTS} redirects to the result", permanent=True)


async def _send(
    client: httpx.AsyncClient, url: httpx.URL, headers: dict[str, str], read_timeout_s: float
) -> httpx.Response:
    try:
        limits = httpx.Timeout(read_timeout_s, connect=10.0)
        request = client.build_request("GET", url, headers=headers, timeout=limits)
        return await client.send(request, stream=True)
    except EgressRefused as exc:
        raise CopyError(f"refused by the egress policy: {exc}", permanent=True) from None
    except httpx.HTTPError as exc:
        raise CopyError(f"the result could not be fetched: {type(exc).__name__}") from None


__all__ = [
    "OCTET_STREAM",
    "CopyError",
    "Download",
    "Inline",
    "Remote",
    "ResultSource",
    "TrustedOrigin",
    "decode_data_url",
    "guess_type",
    "open_download",
]
