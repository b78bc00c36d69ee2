"""The contract between the media task workflow and the media adapters, and the outcome
helpers they share (their HTTP calls are `domain.providers.media_http`).

A task crosses Temporal activity boundaries between `submit` and every `poll`, so results are
plain data with an explicit dict form, and every failure is the same pre-classified
`UpstreamError` the chat relay uses: the workflow retries (polls again, or tries another
channel) exactly when the chat relay would.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, get_args
from urllib.parse import quote

import httpx

from domain.providers.base import Upstream, UpstreamError
from domain.providers.errors import (
    MESSAGE_LIMIT,
    redact,
)

if TYPE_CHECKING:
    from domain.providers.media_http import MediaContent

MediaType = Literal["image", "video", "audio"]
MediaStatus = Literal["processing", "succeeded", "failed"]
MEDIA_TYPES: tuple[str, ...] = get_args(MediaType)
MEDIA_STATUSES: tuple[str, ...] = get_args(MediaStatus)

NO_OUTPUT_CODE = "no_output"
UPSTREAM_FAILED_CODE = "upstream_failed"
_FAILED_MESSAGE = "the provider could not produce the result"
_CODE_RE = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]+")
_REPR_URL_LIMIT = 80


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
