"""Turning upstream failures into `UpstreamError`s the relay can act on.

Classification answers one question for routing: is this the request's fault (return it to
the client now) or the channel's (try the next channel)? A broken platform credential or an
exhausted platform quota is the channel's fault, so auth failures are retryable.
"""

from __future__ import annotations

import email.utils
import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from domain.egress.pinning import EgressRefused
from domain.providers.base import ErrorKind, UpstreamError

MESSAGE_LIMIT = 300
EXCERPT_LIMIT = 2000
REDACTED = "[redacted]"

_KEY_RE = re.compile(
    r"sk-[A-Za-z0-9_\-*]{6,}"  # OpenAI, OpenRouter (sk-or-...), Anthropic (sk-ant-...)
    r"|AIza[0-9A-Za-z_\-]{10,}"  # Google
    r"|(?i:bearer)\s+[A-Za-z0-9._~+/=\-]+"
)
# key=... in echoed URLs and api_key: "..." in echoed bodies or headers.
_KEY_FIELD_RE = re.compile(
    r"(?i)((?:[?&]key|api[_-]?key|x-goog-api-key|authorization)[\"']?\s*[:=]\s*[\"']?)"
    r"[^\s\"'&,}]+"
)

_DIAGNOSTIC_HEADERS = frozenset({"request-id", "x-request-id", "cf-ray", "openai-processing-ms"})
_DIAGNOSTIC_PREFIXES = ("anthropic-ratelimit-", "x-ratelimit-")

_GENERIC_MESSAGES: dict[str, str] = {
    "connect": "could not connect to the upstream provider",
    "timeout": "the upstream provider timed out",
    "rate_limited": "the upstream provider is rate limiting requests",
    "server": "the upstream provider failed to answer",
    "auth": "the upstream provider refused the gateway's credentials",
    "not_found": "the upstream provider does not serve this model or endpoint",
    "malformed": "the upstream provider sent a malformed response",
    "dropped": "the upstream connection dropped",
}


def redact(text: str, api_key: str | None = None) -> str:
    # Exact match first: a custom key with no recognisable prefix still never leaks.
    if api_key and len(api_key) >= 8:
        text = text.replace(api_key, REDACTED)
    text = _KEY_RE.sub(REDACTED, text)
    return _KEY_FIELD_RE.sub(lambda m: m.group(1) + REDACTED, text)


def excerpt(text: str, api_key: str | None) -> str:
    # Redact before cutting so a key split by the cut cannot survive as a prefix.
    return redact(text[: EXCERPT_LIMIT + 200], api_key)[:EXCERPT_LIMIT]


def diagnostics_from(headers: httpx.Headers) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        if key in _DIAGNOSTIC_HEADERS or key.startswith(_DIAGNOSTIC_PREFIXES):
            out[key] = value[:200]
    return out


def generic_message(kind: ErrorKind) -> str:
    return _GENERIC_MESSAGES.get(kind, "the upstream provider failed")


def classify_status(status: int) -> tuple[ErrorKind, bool]:
    if status in (400, 413, 422):
        return "invalid_request", False
    if status == 404:
        return "not_found", False
    if status in (401, 402, 403):
        return "auth", True
    if status == 408:
        return "timeout", True
    if status == 429:
        return "rate_limited", True
    # 409, 5xx, 529 (Anthropic overloaded) and anything unexpected: another channel may work.
    return "server", True


def _parse_seconds(value: str) -> int | None:
    value = value.strip().removesuffix("s")
    try:
        return max(0, math.ceil(float(value)))
    except ValueError:
        return None


def retry_after_from(headers: httpx.Headers, body: Any) -> int | None:
    value = headers.get("retry-after")
    if value:
        seconds = _parse_seconds(value)
        if seconds is not None:
            return seconds
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            when = None
        if when is not None:
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            return max(0, math.ceil((when - datetime.now(UTC)).total_seconds()))
    value_ms = headers.get("retry-after-ms")
    if value_ms:
        seconds = _parse_seconds(value_ms)
        if seconds is not None:
            return max(0, math.ceil(seconds / 1000))
    # Google puts the delay in a google.rpc.RetryInfo detail ("retryDelay": "7s").
    for detail in _error_field(body, "details") or []:
        if isinstance(detail, dict) and isinstance(detail.get("retryDelay"), str):
            return _parse_seconds(detail["retryDelay"])
    return None


def _error_object(body: Any) -> Any:
    if isinstance(body, list) and body:  # Gemini's non-SSE stream wraps errors in an array
        body = body[0]
    if isinstance(body, dict):
        return body.get("error", body)
    return None


def _error_field(body: Any, name: str) -> Any:
    err = _error_object(body)
    return err.get(name) if isinstance(err, dict) else None


def error_message_from(body: Any) -> str | None:
    """The upstream's own message, from any of the error shapes seen in the wild."""
    err = _error_object(body)
    if isinstance(err, str):
        return err
    if isinstance(err, dict):
        for key in ("message", "detail", "error"):
            if isinstance(err.get(key), str):
                return str(err[key])
    return None


def _refine(kind: ErrorKind, retryable: bool, body: Any) -> tuple[ErrorKind, bool]:
    """Upstream quirks where the status alone blames the wrong party."""
    if kind != "invalid_request":
        return kind, retryable
    text = json.dumps(body)[:4000] if body is not None else ""
    # Google answers a bad key with 400 INVALID_ARGUMENT / reason API_KEY_INVALID.
    if "API_KEY_INVALID" in text or "API key not valid" in text:
        return "auth", True
    # Google: billing or region not enabled on the platform's project.
    if _error_field(body, "status") == "FAILED_PRECONDITION":
        return "server", True
    # Anthropic: the platform's prepaid balance ran out; not the customer's request.
    if "credit balance is too low" in text:
        return "auth", True
    return kind, retryable


def error_from_body(
    status: int | None,
    body: Any,
    raw: str,
    *,
    headers: httpx.Headers | None,
    api_key: str | None,
    upstream_request_id: str | None,
    diagnostics: Mapping[str, str],
    kind_retryable: tuple[ErrorKind, bool] | None = None,
) -> UpstreamError:
    kind, retryable = kind_retryable or classify_status(status or 502)
    kind, retryable = _refine(kind, retryable, body)
    param: str | None = None
    if kind == "invalid_request":
        param = param_from(body, api_key)
        detail = redact(error_message_from(body) or "no details given", api_key)
        message = f"upstream rejected the request: {detail[:MESSAGE_LIMIT]}"
    else:
        message = generic_message(kind)
        if status is not None:
            message = f"{message} (status {status})"
    return UpstreamError(
        kind,
        message,
        retryable=retryable,
        status=status,
        raw_excerpt=excerpt(raw, api_key) if raw else None,
        retry_after_s=retry_after_from(headers or httpx.Headers(), body),
        upstream_request_id=upstream_request_id,
        diagnostics=dict(diagnostics),
        param=param,
    )


_PARAM_RE = re.compile(r"[A-Za-z0-9_.\[\]\-]{1,100}")


def param_from(body: Any, api_key: str | None) -> str | None:
    """The field an upstream blamed (`error.param`), if it looks like a field path: it is
    shown to the client, so anything else (or anything holding a secret) is dropped."""
    value = _error_field(body, "param")
    if not isinstance(value, str) or not _PARAM_RE.fullmatch(value):
        return None
    return value if redact(value, api_key) == value else None


def error_from_response(
    response: httpx.Response,
    raw: str,
    *,
    api_key: str | None,
    upstream_request_id: str | None,
) -> UpstreamError:
    try:
        body: Any = json.loads(raw) if raw else None
    except ValueError:
        body = None
    return error_from_body(
        response.status_code,
        body,
        raw,
        headers=response.headers,
        api_key=api_key,
        upstream_request_id=upstream_request_id,
        diagnostics=diagnostics_from(response.headers),
    )


def transport_error(
    exc: httpx.HTTPError,
    *,
    output_started: bool = False,
    upstream_request_id: str | None = None,
    diagnostics: Mapping[str, str] | None = None,
) -> UpstreamError:
    """Transport failures; once output reached the client nothing can be retried."""
    if isinstance(exc, EgressRefused):
        # The tenant pointed us somewhere we never go: their setting, not a channel fault.
        return UpstreamError(
            "invalid_request", f"refused by the egress policy: {exc}", retryable=False
        )
    kind: ErrorKind
    if output_started:
        kind = "dropped"
    elif isinstance(exc, httpx.TimeoutException):
        kind = "timeout"
    elif isinstance(exc, httpx.ConnectError | httpx.UnsupportedProtocol):
        kind = "connect"
    else:  # the peer hung up or broke the protocol after we connected
        kind = "dropped"
    message = generic_message(kind)
    if kind == "dropped":
        message += " mid-stream" if output_started else " before any output"
    return UpstreamError(
        kind,
        message,
        retryable=not output_started,
        status=None,
        # Exception texts can carry URLs (Gemini keys live in query strings elsewhere).
        raw_excerpt=redact(f"{type(exc).__name__}: {exc}")[:EXCERPT_LIMIT],
        upstream_request_id=upstream_request_id,
        diagnostics=dict(diagnostics or {}),
    )


def malformed(
    detail: str,
    raw: str,
    *,
    api_key: str | None,
    output_started: bool = False,
    status: int | None = None,
    upstream_request_id: str | None = None,
    diagnostics: Mapping[str, str] | None = None,
) -> UpstreamError:
    return UpstreamError(
        "malformed",
        generic_message("malformed"),
        retryable=not output_started,
        status=status,
        raw_excerpt=excerpt(f"{detail}: {raw}", api_key),
        upstream_request_id=upstream_request_id,
        diagnostics=dict(diagnostics or {}),
    )


def invalid_request(message: str) -> UpstreamError:
    """Requests we refuse to translate: the client must change them, no channel will do."""
    return UpstreamError("invalid_request", message, retryable=False)
