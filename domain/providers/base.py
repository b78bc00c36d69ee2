"""The contract between the relay and the provider adapters.

The relay only ever sees OpenAI-shaped bodies and chunks, one `Usage` and one error type,
whatever the upstream speaks; that is what lets it bill, fall back and log uniformly.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, get_args

import httpx

ErrorKind = Literal[
    "connect",
    "timeout",
    "rate_limited",
    "server",
    "auth",
    "invalid_request",
    "not_found",
    "malformed",
    "dropped",
]
ERROR_KINDS: frozenset[str] = frozenset(get_args(ErrorKind))


@dataclass(frozen=True)
class Upstream:
    """One resolved call target; built per request from a channel (or a BYOK key)."""

    provider: str
    base_url: str | None
    api_key: str | None
    model: str
    timeout_s: float = 120.0
    extra_headers: Mapping[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        # Upstreams end up in logs and tracebacks; the secret and header values must not.
        key = "<set>" if self.api_key else None
        headers = sorted(self.extra_headers)
        return (
            f"Upstream(provider={self.provider!r}, base_url={self.base_url!r}, api_key={key}, "
            f"model={self.model!r}, timeout_s={self.timeout_s!r}, extra_headers={headers!r})"
        )

    __str__ = __repr__


@dataclass
class Usage:
    """Token counts in OpenAI's convention: `prompt_tokens` includes `cached_tokens`."""

    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_openai(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }
        if self.cached_tokens:
            out["prompt_tokens_details"] = {"cached_tokens": self.cached_tokens}
        return out


@dataclass
class ChatResult:
    body: dict[str, Any]
    usage: Usage
    upstream_request_id: str | None
    diagnostics: dict[str, str]
    status: int


class UpstreamError(Exception):
    """Everything that can go wrong upstream, pre-classified for fallback and for customers.

    `message` is safe to show a customer; `raw_excerpt` is for operators only. Neither ever
    holds the channel's key: both pass through redaction before they get here.
    """

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        retryable: bool,
        status: int | None = None,
        raw_excerpt: str | None = None,
        retry_after_s: int | None = None,
        upstream_request_id: str | None = None,
        diagnostics: dict[str, str] | None = None,
        param: str | None = None,
    ) -> None:
        if kind not in ERROR_KINDS:
            raise ValueError(f"unknown upstream error kind: {kind!r}")
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.retryable = retryable
        self.status = status
        self.raw_excerpt = raw_excerpt
        self.retry_after_s = retry_after_s
        self.upstream_request_id = upstream_request_id
        self.diagnostics = diagnostics if diagnostics is not None else {}
        # The request field the upstream blamed (OpenAI's `error.param`), already sanitized.
        self.param = param

    @property
    def upstream_refused_request(self) -> bool:
        """The upstream itself refused the request (400/413/422): the client must change
        it, and no other channel, BYOK or platform, would answer differently."""
        return self.kind == "invalid_request" and self.status is not None

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only fields defeat Exception's default pickling (args only), and errors do
        # cross process boundaries (Temporal activities, worker pools).
        state = {
            "retryable": self.retryable,
            "status": self.status,
            "raw_excerpt": self.raw_excerpt,
            "retry_after_s": self.retry_after_s,
            "upstream_request_id": self.upstream_request_id,
            "diagnostics": self.diagnostics,
            "param": self.param,
        }
        return (_restore_upstream_error, (self.kind, self.message, state))

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return (
            f"UpstreamError(kind={self.kind!r}, status={self.status!r}, "
            f"retryable={self.retryable!r}, message={self.message!r})"
        )


def _restore_upstream_error(kind: ErrorKind, message: str, state: dict[str, Any]) -> UpstreamError:
    return UpstreamError(kind, message, **state)


class ChatStream(Protocol):
    """An upstream stream already past its first output, so fallback decisions are done.

    Iterating yields OpenAI chunk dicts; a completed stream ends with a usage-only chunk
    (`choices == []` and a `usage` key) which the relay forwards only if the client asked.
    """

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]: ...

    @property
    def usage(self) -> Usage | None: ...

    @property
    def text(self) -> str: ...

    @property
    def upstream_request_id(self) -> str | None: ...

    @property
    def diagnostics(self) -> dict[str, str]: ...

    @property
    def finished(self) -> bool: ...

    async def aclose(self) -> None: ...


class NativeMode(Protocol):
    """A request in the client's own wire format, sent as written to the routes whose
    upstream speaks it (`serves`); every other route gets the chat translation. The relay
    bills and logs what `complete` and `open_stream` return like any chat call."""

    @property
    def only_native(self) -> str | None:
        """A field only native routes can serve: the plan is refused (400 naming it) unless
        every route is native."""
        ...

    def serves(self, provider: str, capabilities: Collection[str]) -> bool: ...

    async def complete(
        self, http: httpx.AsyncClient, upstream: Upstream, public_model: str,
        max_output: int | None,
    ) -> ChatResult: ...  # fmt: skip

    async def open_stream(
        self, http: httpx.AsyncClient, upstream: Upstream, public_model: str,
        max_output: int | None,
    ) -> ChatStream: ...  # fmt: skip


class ProviderAdapter(Protocol):
    async def chat(
        self,
        http: httpx.AsyncClient,
        upstream: Upstream,
        request: dict[str, Any],
        public_model: str,
    ) -> ChatResult: ...

    async def stream(
        self,
        http: httpx.AsyncClient,
        upstream: Upstream,
        request: dict[str, Any],
        public_model: str,
    ) -> ChatStream: ...
