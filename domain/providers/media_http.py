"""How media adapters call their upstream: one bounded, classified request (`send`), the
reply read as the adapters need it (`Reply`), cancelling a job, and opening a finished
result for streaming (`open_content`). Every failure is the chat relay's `UpstreamError`.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from domain.providers.base import Upstream, UpstreamError
from domain.providers.errors import (
    diagnostics_from,
    error_from_body,
    error_from_response,
    excerpt,
    malformed,
    transport_error,
)
from domain.providers.media_base import CancelOutcome, MediaOutcome, MediaSubmission
from domain.providers.transport import ERROR_BODY_LIMIT, header_id, timeout_for

# Speech and inline (b64) images arrive whole in one body; this bounds what a misbehaving
# upstream can make a worker buffer.
MAX_RESPONSE_BYTES = 64 * 1024 * 1024

request_id = header_id("x-request-id", "request-id")


# -- calls -----------------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    content: bytes
    content_type: str
    upstream_request_id: str | None
    diagnostics: dict[str, str]

    def json_object(self, upstream: Upstream) -> dict[str, Any]:
        try:
            body = json.loads(self.content)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise self.malformed("response is not a JSON object", upstream)
        return body

    def malformed(
        self, detail: str, upstream: Upstream, *, retryable: bool = True
    ) -> UpstreamError:
        err = malformed(
            detail,
            self.content[:ERROR_BODY_LIMIT].decode("utf-8", "replace"),
            api_key=upstream.api_key,
            status=self.status,
            upstream_request_id=self.upstream_request_id,
            diagnostics=self.diagnostics,
        )
        err.retryable = retryable
        return err

    def submission(self, outcome: MediaOutcome, job_id: str | None = None) -> MediaSubmission:
        """What a submit answered: a terminal outcome, or the job to poll (named in the
        diagnostics operators see)."""
        if job_id is None:
            return MediaSubmission(None, outcome, self.upstream_request_id, self.diagnostics)
        diagnostics = {**self.diagnostics, "upstream-job-id": job_id[:200]}
        return MediaSubmission(job_id, outcome, self.upstream_request_id, diagnostics)

    def job_id(self, body: dict[str, Any], upstream: Upstream, what: str) -> str:
        """The id an async job API answered with, or the error it reported instead."""
        job_id = body.get("id")
        if not isinstance(job_id, str) or not job_id:
            if body.get("error"):
                raise self.error_in_body(body, upstream)
            raise self.malformed(f"{what} response has no id", upstream)
        return job_id

    def error_in_body(self, body: dict[str, Any], upstream: Upstream) -> UpstreamError:
        """Gateways that report a failure inside a 200, classified like a real status."""
        err = body.get("error")
        code = err.get("code") if isinstance(err, dict) else None
        status = code if isinstance(code, int) and 400 <= code <= 599 else None
        return error_from_body(
            status,
            body,
            self.content[:ERROR_BODY_LIMIT].decode("utf-8", "replace"),
            headers=None,
            api_key=upstream.api_key,
            upstream_request_id=self.upstream_request_id,
            diagnostics=self.diagnostics,
        )


def auth_headers(upstream: Upstream) -> dict[str, str]:
    headers = httpx.Headers(dict(upstream.extra_headers))
    if upstream.api_key:
        headers["Authorization"] = f"Bearer {upstream.api_key}"
    return dict(headers.items())


def base_url(upstream: Upstream, default: str | None = None) -> str:
    base = upstream.base_url or default
    if not base:
        # A channel without an address is the channel's problem: another channel may work.
        raise UpstreamError(
            "connect", "the upstream channel has no base URL configured", retryable=True
        )
    return base.rstrip("/")


Method = Literal["GET", "POST", "DELETE"]


async def _open(
    http: httpx.AsyncClient,
    upstream: Upstream,
    method: Method,
    url: str,
    payload: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """Sends with the channel's credentials and returns once the headers are in (the body
    still to read); failures to build or send are the classified `UpstreamError`s."""
    try:
        req = http.build_request(
            method,
            url,
            json=payload,
            headers={**auth_headers(upstream), **(headers or {})},
            timeout=timeout_for(upstream),
        )
    except (TypeError, ValueError):
        # e.g. NaN, which Python's json parser lets into an input but JSON forbids.
        raise UpstreamError(
            "invalid_request", "the request input cannot be encoded as JSON", retryable=False
        ) from None
    except httpx.InvalidURL:
        raise UpstreamError(
            "connect", "the upstream channel's base URL is invalid", retryable=True
        ) from None
    try:
        return await http.send(req, stream=True)
    except httpx.HTTPError as exc:
        raise transport_error(exc) from None


async def _failure(response: httpx.Response, upstream: Upstream) -> UpstreamError:
    """A non-2xx answer as the same classified, redacted `UpstreamError` chat gets; the error
    body is read bounded, and a partial one is still worth classifying."""
    data = bytearray()
    try:
        with contextlib.suppress(httpx.HTTPError):
            async for piece in response.aiter_bytes():
                data += piece
                if len(data) > ERROR_BODY_LIMIT:
                    break
    finally:
        await response.aclose()
    raw = bytes(data[:ERROR_BODY_LIMIT]).decode("utf-8", "replace")
    rid = request_id(response.headers)
    return error_from_response(response, raw, api_key=upstream.api_key, upstream_request_id=rid)


async def send(
    http: httpx.AsyncClient,
    upstream: Upstream,
    method: Method,
    url: str,
    payload: dict[str, Any] | None = None,
    *,
    headers: dict[str, str] | None = None,
) -> Reply:
    """One call, fully read (bounded); non-2xx becomes the same UpstreamError chat gets."""
    response = await _open(http, upstream, method, url, payload, headers)
    if response.status_code >= 300:
        raise await _failure(response, upstream)
    rid = request_id(response.headers)
    diagnostics = diagnostics_from(response.headers)
    limit = MAX_RESPONSE_BYTES
    data = bytearray()
    too_big = False
    try:
        async for piece in response.aiter_bytes():
            data += piece
            if len(data) > limit:
                too_big = True
                break
    except httpx.HTTPError as exc:
        raise transport_error(exc, upstream_request_id=rid, diagnostics=diagnostics) from None
    finally:
        await response.aclose()
    if too_big:
        raise UpstreamError(
            "malformed",
            "the upstream provider's response is too large",
            retryable=False,
            status=response.status_code,
            raw_excerpt=excerpt(f"more than {limit} bytes", upstream.api_key),
            upstream_request_id=rid,
            diagnostics=diagnostics,
        )
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    return Reply(response.status_code, bytes(data), content_type, rid, diagnostics)


async def cancel_job(
    http: httpx.AsyncClient,
    upstream: Upstream,
    method: Method,
    url: str,
    *,
    finished_statuses: tuple[int, ...] = (),
) -> CancelOutcome:
    """Stop a job: a job the provider no longer knows (404) has nothing left running, and
    `finished_statuses` are the provider's way of saying it is too late."""
    try:
        await send(http, upstream, method, url)
    except UpstreamError as err:
        if err.status == 404:
            return "canceled"
        if err.status in finished_statuses:
            return "finished"
        raise
    return "canceled"


# -- downloading a result ----------------------------------------------------------------------

_MIME_RE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+\-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+\-]{0,126}")
OCTET_STREAM = "application/octet-stream"


def clean_content_type(value: str | None) -> str:
    """A bare `type/subtype` safe to send on as a header, else application/octet-stream."""
    bare = (value or "").split(";")[0].strip().lower()
    return bare if _MIME_RE.fullmatch(bare) else OCTET_STREAM


class MediaContent:
    """A result opened upstream: status and headers read, the body not yet.

    The body is streamed, never held whole (videos run to hundreds of megabytes): iterate
    `chunks()` once. `aclose()` releases the upstream connection; it is idempotent and must be
    called whether or not the body was read.
    """

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        headers = response.headers
        self.upstream_request_id = request_id(headers)
        self.content_type = clean_content_type(headers.get("content-type"))
        # `chunks()` yields decoded bytes, so an encoded body's length says nothing about them.
        encoding = headers.get("content-encoding", "identity").strip().lower()
        length = headers.get("content-length", "").strip()
        known = encoding == "identity" and length.isascii() and length.isdigit()
        self.content_length = int(length) if known else None

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives. A failure part way is `dropped` and not retryable: bytes
        have already been handed on, so the caller must abort rather than end cleanly."""
        try:
            async for piece in self._response.aiter_bytes():
                if piece:
                    yield piece
        except httpx.HTTPError as exc:
            raise transport_error(
                exc, output_started=True, upstream_request_id=self.upstream_request_id
            ) from None
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        await self._response.aclose()

    def __repr__(self) -> str:
        return (
            f"MediaContent(content_type={self.content_type!r}, "
            f"content_length={self.content_length!r}, "
            f"upstream_request_id={self.upstream_request_id!r})"
        )


async def open_content(http: httpx.AsyncClient, upstream: Upstream, url: str) -> MediaContent:
    """GET a result with the channel's credentials, returning once the headers are in.

    Non-2xx answers become the usual classified `UpstreamError` (a 404 is `not_found`); the
    error body is read bounded and redacted like any other. Redirects are not followed: the
    request carries the channel's key, which must never travel to another host.
    """
    response = await _open(http, upstream, "GET", url)
    if 200 <= response.status_code < 300:
        return MediaContent(response)
    raise await _failure(response, upstream)
