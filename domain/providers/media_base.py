"""The contract between the media task workflow and the media adapters, plus their plumbing.

A task crosses Temporal activity boundaries between `submit` and every `poll`, so results are
plain data with an explicit dict form, and every failure is the same pre-classified
`UpstreamError` the chat relay uses: the workflow retries (polls again, or tries another
channel) exactly when the chat relay would.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, get_args
from urllib.parse import quote

import httpx

from domain.providers.base import Upstream, UpstreamError
from domain.providers.errors import (
    MESSAGE_LIMIT,
    diagnostics_from,
    error_from_body,
    error_from_response,
    excerpt,
    malformed,
    redact,
    transport_error,
)
from domain.providers.transport import ERROR_BODY_LIMIT, header_id, timeout_for

MediaType = Literal["image", "video", "audio"]
MediaStatus = Literal["processing", "succeeded", "failed"]
MEDIA_TYPES: tuple[str, ...] = get_args(MediaType)
MEDIA_STATUSES: tuple[str, ...] = get_args(MediaStatus)

# Speech and inline (b64) images arrive whole in one body; this bounds what a misbehaving
# upstream can make a worker buffer.
MAX_RESPONSE_BYTES = 64 * 1024 * 1024

NO_OUTPUT_CODE = "no_output"
UPSTREAM_FAILED_CODE = "upstream_failed"
_FAILED_MESSAGE = "the provider could not produce the result"
_CODE_RE = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]+")
_REPR_URL_LIMIT = 80

request_id = header_id("x-request-id", "request-id")


def _short(url: str) -> str:
    return url if len(url) <= _REPR_URL_LIMIT else f"{url[:_REPR_URL_LIMIT]}...({len(url)} chars)"


@dataclass
class MediaOutcome:
    """Where an upstream job stands; `units` is what billing multiplies, once succeeded.

    `error_message` is already sanitised (redacted, single line, bounded) so the workflow can
    store and show it without knowing which provider produced it.
    """

    status: MediaStatus
    progress: int = 0
    urls: list[str] = field(default_factory=list)
    content_b64: str | None = None
    content_type: str | None = None
    units: int = 0
    error_code: str | None = None
    error_message: str | None = None

    def __post_init__(self) -> None:
        # Outcomes are rebuilt from activity payloads; a corrupt one must fail loudly rather
        # than bill a nonsense unit count.
        if self.status not in MEDIA_STATUSES:
            raise ValueError(f"unknown media status: {self.status!r}")
        for name in ("progress", "units"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a non-negative int, got {value!r}")
        if self.progress > 100:
            raise ValueError(f"progress must be 0..100, got {self.progress!r}")

    @property
    def terminal(self) -> bool:
        return self.status != "processing"

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "progress": self.progress,
            "urls": list(self.urls),
            "content_b64": self.content_b64,
            "content_type": self.content_type,
            "units": self.units,
            "error_code": self.error_code,
            "error_message": self.error_message,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MediaOutcome:
        urls = data.get("urls") or []
        if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
            raise ValueError("urls must be a list of strings")
        return cls(
            status=data["status"],
            progress=data.get("progress", 0),
            urls=list(urls),
            content_b64=_opt_str(data, "content_b64"),
            content_type=_opt_str(data, "content_type"),
            units=data.get("units", 0),
            error_code=_opt_str(data, "error_code"),
            error_message=_opt_str(data, "error_message"),
        )

    def __repr__(self) -> str:
        # Inline results run to megabytes; logs need their shape, not their bytes.
        content = None if self.content_b64 is None else f"<{len(self.content_b64)} b64 chars>"
        return (
            f"MediaOutcome(status={self.status!r}, progress={self.progress!r}, "
            f"urls={[_short(u) for u in self.urls]!r}, content_b64={content}, "
            f"content_type={self.content_type!r}, units={self.units!r}, "
            f"error_code={self.error_code!r}, error_message={self.error_message!r})"
        )


def _opt_str(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{key} must be a string or null")
    return value


@dataclass
class MediaSubmission:
    """The answer to `submit`: a job to poll, or (job id None) an already terminal outcome."""

    upstream_job_id: str | None
    outcome: MediaOutcome
    upstream_request_id: str | None
    diagnostics: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "upstream_job_id": self.upstream_job_id,
            "outcome": self.outcome.to_dict(),
            "upstream_request_id": self.upstream_request_id,
            "diagnostics": dict(self.diagnostics),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MediaSubmission:
        diagnostics = data.get("diagnostics") or {}
        if not isinstance(diagnostics, dict):
            raise ValueError("diagnostics must be an object")
        return cls(
            upstream_job_id=_opt_str(data, "upstream_job_id"),
            outcome=MediaOutcome.from_dict(data["outcome"]),
            upstream_request_id=_opt_str(data, "upstream_request_id"),
            diagnostics={str(k): str(v) for k, v in diagnostics.items()},
        )


CancelOutcome = Literal["canceled", "finished", "unsupported"]


class MediaAdapter(Protocol):
    # Whether `find` can look jobs up by the key they were submitted under.
    finds_by_reference: bool

    async def submit(
        self,
        http: httpx.AsyncClient,
        upstream: Upstream,
        media_type: MediaType,
        model: str,
        input: dict[str, Any],
        *,
        idempotency_key: str,
    ) -> MediaSubmission:
        """Sends `idempotency_key` wherever the provider accepts one (the `Idempotency-Key`
        header, a client reference field), so a resend under the same key, or a lookup by
        it, can reach the job a lost answer described."""
        ...

    async def find(
        self,
        http: httpx.AsyncClient,
        upstream: Upstream,
        media_type: MediaType,
        idempotency_key: str,
    ) -> list[str] | None:
        """The ids of the jobs submitted under `idempotency_key`, oldest first; None when
        the provider offers no such lookup."""
        ...

    async def cancel(
        self,
        http: httpx.AsyncClient,
        upstream: Upstream,
        media_type: MediaType,
        upstream_job_id: str,
    ) -> CancelOutcome:
        """Stops a job nobody will poll. `finished`: too late, it already ran; a job the
        provider no longer knows counts as `canceled`. Other failures raise."""
        ...

    async def poll(
        self,
        http: httpx.AsyncClient,
        upstream: Upstream,
        media_type: MediaType,
        upstream_job_id: str,
    ) -> MediaOutcome: ...

    def content_needs_channel(self, media_type: MediaType) -> bool:
        """Whether a succeeded job's result can only be fetched with the channel's own
        credentials: its URLs must then never reach a customer, who downloads it through
        `content` instead (`GET /v1/tasks/{id}/content`)."""
        ...

    async def content(
        self,
        http: httpx.AsyncClient,
        upstream: Upstream,
        media_type: MediaType,
        upstream_job_id: str,
    ) -> MediaContent:
        """Opens a succeeded job's result for streaming; only where `content_needs_channel`."""
        ...


def content_not_served(provider: str, media_type: MediaType) -> UpstreamError:
    """For adapters whose results are public URLs or inline bytes: nothing to download."""
    return UpstreamError(
        "invalid_request",
        f"{provider} {media_type} results are not downloaded through the gateway",
        retryable=False,
    )


class NoLookup:
    """The `find`/`cancel` half of `MediaAdapter` for providers with neither: a retried submit
    relies on the resent idempotency key alone."""

    finds_by_reference = False

    async def find(
        self,
        http: httpx.AsyncClient,
        upstream: Upstream,
        media_type: MediaType,
        idempotency_key: str,
    ) -> list[str] | None:
        return None

    async def cancel(
        self,
        http: httpx.AsyncClient,
        upstream: Upstream,
        media_type: MediaType,
        upstream_job_id: str,
    ) -> CancelOutcome:
        return "unsupported"


def idempotency_headers(key: str) -> dict[str, str]:
    return {"Idempotency-Key": key}


class NoHeldContent:
    """The `content` half of `MediaAdapter` for providers whose results are URLs anyone may
    open, or bytes stored inline on the task: nothing is ever fetched with the channel's key."""

    def content_needs_channel(self, media_type: MediaType) -> bool:
        return False

    async def content(
        self,
        http: httpx.AsyncClient,
        upstream: Upstream,
        media_type: MediaType,
        upstream_job_id: str,
    ) -> MediaContent:
        raise content_not_served(upstream.provider, media_type)


# -- outcome helpers --------------------------------------------------------------------------


def wire_model(upstream: Upstream, model: str) -> str:
    """The channel's (possibly mapped) model name wins, as in the chat adapters."""
    return upstream.model or model


def progress_from(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    if isinstance(value, float) and not math.isfinite(value):
        return 0
    return max(0, min(100, int(value)))


def sanitize_message(text: str, api_key: str | None) -> str:
    # Redact before cutting so a key split by the cut cannot survive as a prefix.
    flat = _CONTROL_RE.sub(" ", redact(text[: MESSAGE_LIMIT * 2], api_key)).strip()
    return flat[:MESSAGE_LIMIT] or _FAILED_MESSAGE


def failed_outcome(error: Any, api_key: str | None) -> MediaOutcome:
    """A provider-reported failure (content policy, ...): terminal, nothing to bill."""
    code: str | None = None
    message: str | None = None
    if isinstance(error, dict):
        raw_code = error.get("code", error.get("type"))
        if isinstance(raw_code, int) and not isinstance(raw_code, bool):
            raw_code = str(raw_code)
        if isinstance(raw_code, str) and _CODE_RE.fullmatch(raw_code):
            code = raw_code
        if isinstance(error.get("message"), str):
            message = error["message"]
    elif isinstance(error, str):
        message = error
    return MediaOutcome(
        status="failed",
        progress=100,
        error_code=code or UPSTREAM_FAILED_CODE,
        error_message=sanitize_message(message or _FAILED_MESSAGE, api_key),
    )


def no_output(what: str) -> MediaOutcome:
    """A success without a result is a failure for the customer: refund, never bill."""
    return MediaOutcome(
        status="failed",
        progress=100,
        error_code=NO_OUTPUT_CODE,
        error_message=f"the provider returned no {what}",
    )


def reported_units(*values: Any) -> int | None:
    for value in values:
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return None


def job_path(upstream_job_id: str) -> str:
    """Job ids come back from the upstream; quoting keeps one from steering the URL path."""
    if not upstream_job_id:
        raise UpstreamError("not_found", "the upstream job id is empty", retryable=False)
    return quote(upstream_job_id, safe="")


# -- HTTP -------------------------------------------------------------------------------------


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
