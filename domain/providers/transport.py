"""HTTP plumbing shared by the adapters: one JSON call, one SSE stream, one error policy.

Keeping this in one place means every provider gets the same timeouts, the same error
classification and, for streams, the same rule about when fallback stops being possible
(the first piece of output).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NoReturn

import httpx
from yarl import URL

from domain import json_exact
from domain.providers.aiohttp_transport import UpstreamClient
from domain.providers.base import Upstream, UpstreamError, Usage
from domain.providers.errors import (
    diagnostics_from,
    error_from_body,
    error_from_response,
    excerpt,
    invalid_request,
    malformed,
    transport_error,
)
from domain.providers.h1 import Reply
from domain.providers.tokens import estimate_prompt_tokens, estimate_text_tokens

CONNECT_TIMEOUT_S = 5.0
ERROR_BODY_LIMIT = 64 * 1024

RequestIdGetter = Callable[[httpx.Headers], str | None]


def timeout_for(upstream: Upstream) -> httpx.Timeout:
    return httpx.Timeout(upstream.timeout_s, connect=CONNECT_TIMEOUT_S)


def as_int(value: Any) -> int:
    """Usage fields from the wire: anything but a non-negative int counts as absent."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return 0


def header_id(*names: str) -> RequestIdGetter:
    def get(headers: httpx.Headers) -> str | None:
        for name in names:
            value: str | None = headers.get(name)
            if value:
                return value[:200]
        return None

    return get


def _build(
    http: httpx.AsyncClient,
    url: str,
    payload: dict[str, Any],
    headers: dict[str, str],
    upstream: Upstream,
) -> httpx.Request:
    try:
        return http.build_request(
            "POST", url, json=payload, headers=headers, timeout=timeout_for(upstream)
        )
    except (TypeError, ValueError):
        # e.g. NaN, which Python's json parser lets into a client body but JSON forbids.
        raise invalid_request("the request body cannot be encoded as JSON") from None
    except httpx.InvalidURL:
        raise UpstreamError(
            "connect", "the upstream channel's base URL is invalid", retryable=True
        ) from None


@lru_cache(maxsize=4096)
def _parsed(url: str) -> URL:
    """A channel's few URLs, parsed once (yarl URLs are immutable)."""
    return URL(url)


async def _post_direct(
    http: UpstreamClient,
    url: str,
    payload: dict[str, Any],
    headers: dict[str, str],
    upstream: Upstream,
) -> Reply:
    """The same call as `_build` + `send`, minus httpx's request and response machinery
    (about 0.2 ms of CPU a call): the body is encoded as httpx would; the reply is (status,
    raw headers, body), already read."""
    try:
        # The standard encoder, not orjson: orjson writes NaN as null where this refuses it,
        # and a lone surrogate fails here too, as a client error, like in httpx.
        body = json.dumps(
            payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False
        ).encode()
    except (TypeError, ValueError):
        raise invalid_request("the request body cannot be encoded as JSON") from None
    try:
        target = _parsed(url)
    except (TypeError, ValueError):
        raise UpstreamError(
            "connect", "the upstream channel's base URL is invalid", retryable=True
        ) from None
    # Not asking for compression: the reply is wrapped as already decoded below.
    sent = {k: v for k, v in http.headers.items() if k != "accept-encoding"}
    sent.update({"content-type": "application/json", **headers})
    try:
        return await http.json.post(target, body, sent, timeout_for(upstream))
    except httpx.HTTPError as exc:
        raise transport_error(exc) from None


@dataclass
class JsonReply:
    body: dict[str, Any]
    status: int
    upstream_request_id: str | None
    diagnostics: dict[str, str]

    def malformed(self, detail: str, upstream: Upstream) -> UpstreamError:
        """A well-formed JSON answer that is not the answer expected."""
        return malformed(
            detail,
            str(self.body),
            api_key=upstream.api_key,
            status=self.status,
            upstream_request_id=self.upstream_request_id,
            diagnostics=self.diagnostics,
        )


async def post_json(
    http: httpx.AsyncClient,
    url: str,
    payload: dict[str, Any],
    headers: dict[str, str],
    upstream: Upstream,
    request_id: RequestIdGetter,
) -> JsonReply:
    response: httpx.Response | None = None
    if isinstance(http, UpstreamClient):
        status, raw, content = await _post_direct(http, url, payload, headers, upstream)
        reply_headers = httpx.Headers(raw)  # an httpx.Response is built only for failures
    else:
        req = _build(http, url, payload, headers, upstream)
        try:
            response = await http.send(req)
        except httpx.HTTPError as exc:
            raise transport_error(exc) from None
        status, reply_headers, content = response.status_code, response.headers, response.content

    def whole() -> httpx.Response:
        return response or httpx.Response(status, headers=reply_headers, content=content)

    rid = request_id(reply_headers)
    diagnostics = diagnostics_from(reply_headers)
    if status >= 300:
        failed = whole()
        raise error_from_response(
            failed, failed.text, api_key=upstream.api_key, upstream_request_id=rid
        )
    try:
        body = json_exact.loads(content)
    except json_exact.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        raise malformed(
            "response is not a JSON object",
            whole().text,
            api_key=upstream.api_key,
            status=status,
            upstream_request_id=rid,
            diagnostics=diagnostics,
        )
    if body.get("error") is not None and not body.get("choices") and not body.get("candidates"):
        # Some gateways (OpenRouter among them) report failures inside a 200. (A Response
        # object always has `error`, null unless it failed.)
        raise error_from_body(
            _error_code(body),
            body,
            whole().text,
            headers=reply_headers,
            api_key=upstream.api_key,
            upstream_request_id=rid,
            diagnostics=diagnostics,
        )
    return JsonReply(body, status, rid, diagnostics)


def _error_code(body: Any) -> int | None:
    err = body.get("error") if isinstance(body, dict) else None
    code = err.get("code") if isinstance(err, dict) else None
    return code if isinstance(code, int) and 400 <= code <= 599 else None


async def _read_capped(response: httpx.Response) -> str:
    data = bytearray()
    try:
        async for piece in response.aiter_bytes():
            data += piece
            if len(data) >= ERROR_BODY_LIMIT:
                break
    except httpx.HTTPError:
        pass  # a partial error body is still worth classifying
    finally:
        await response.aclose()
    return data.decode("utf-8", "replace")


async def open_sse(
    http: httpx.AsyncClient,
    url: str,
    payload: dict[str, Any],
    headers: dict[str, str],
    upstream: Upstream,
    request_id: RequestIdGetter,
) -> httpx.Response:
    """Returns a 2xx streaming response; anything else becomes a (pre-output) UpstreamError."""
    req = _build(http, url, payload, headers, upstream)
    try:
        response = await http.send(req, stream=True)
    except httpx.HTTPError as exc:
        raise transport_error(exc) from None
    rid = request_id(response.headers)
    if response.status_code >= 300:
        raw = await _read_capped(response)
        raise error_from_response(response, raw, api_key=upstream.api_key, upstream_request_id=rid)
    if "json" in response.headers.get("content-type", ""):
        # The upstream ignored `stream` or answered with an error object inside a 200.
        raw = await _read_capped(response)
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = None
        diagnostics = diagnostics_from(response.headers)
        if _error_code(body) is not None or (isinstance(body, dict) and "error" in body):
            raise error_from_body(
                _error_code(body),
                body,
                raw,
                headers=response.headers,
                api_key=upstream.api_key,
                upstream_request_id=rid,
                diagnostics=diagnostics,
            )
        raise malformed(
            "expected an event stream",
            raw,
            api_key=upstream.api_key,
            status=response.status_code,
            upstream_request_id=rid,
            diagnostics=diagnostics,
        )
    return response


@dataclass(slots=True)
class SseEvent:
    event: str
    data: str


async def iter_sse(lines: AsyncIterator[str]) -> AsyncGenerator[SseEvent, None]:
    event = ""
    data: list[str] = []
    async for line in lines:
        if not line:
            if data:
                yield SseEvent(event or "message", "\n".join(data))
            event = ""
            data = []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
    if data:  # tolerate a final event without its blank line
        yield SseEvent(event or "message", "\n".join(data))


def _is_output(chunk: dict[str, Any]) -> bool:
    """A chunk the client would see as progress: anything beyond an empty role announcement."""
    choices = chunk.get("choices")
    if not isinstance(choices, list) or not choices:
        return "usage" in chunk
    for choice in choices:
        if not isinstance(choice, dict):
            continue
        if choice.get("finish_reason") is not None:
            return True
        delta = choice.get("delta")
        if isinstance(delta, dict) and any(v for k, v in delta.items() if k != "role"):
            return True
    return False


class SseChatStream(ABC):
    """Translates an upstream SSE stream into OpenAI chunks; one subclass per wire format.

    Subclasses implement `_translate` (one event in, zero or more chunks out), set
    `_terminal` when the upstream's end marker arrives and set `usage` when reported.
    """

    def __init__(
        self,
        response: httpx.Response,
        *,
        upstream: Upstream,
        request: dict[str, Any],
        public_model: str,
        chunk_id: str,
        request_id: RequestIdGetter,
    ) -> None:
        self.usage: Usage | None = None
        self.finished = False
        self.upstream_request_id = request_id(response.headers)
        self.diagnostics = diagnostics_from(response.headers)
        self.public_model = public_model
        self.chunk_id = chunk_id
        self.created = int(time.time())
        self._usage_body: dict[str, Any] | None = None
        self._terminal = False
        self._response = response
        self._api_key = upstream.api_key
        self._request = request
        self._events: AsyncGenerator[SseEvent, None] = iter_sse(response.aiter_lines())
        self._buffer: deque[dict[str, Any]] = deque()
        self._parts: list[str] = []
        self._output_started = False
        self._ended = False
        self._closed = False

    # -- what subclasses provide -------------------------------------------------------------

    @abstractmethod
    def _translate(self, event: SseEvent) -> list[dict[str, Any]]: ...

    def _complete_at_eof(self) -> bool:
        """Whether a clean end of stream without the terminal marker still means success."""
        return False

    # -- helpers for subclasses ---------------------------------------------------------------

    @property
    def text(self) -> str:
        return "".join(self._parts)

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {
            "id": self.chunk_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.public_model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        }

    def _json(self, event: SseEvent) -> Any:
        try:
            return json_exact.loads(event.data)
        except json_exact.JSONDecodeError:
            raise self._malformed("event data is not JSON", event.data) from None

    def _malformed(self, detail: str, raw: str) -> UpstreamError:
        return malformed(
            detail,
            raw,
            api_key=self._api_key,
            output_started=self._output_started,
            status=self._response.status_code,
            upstream_request_id=self.upstream_request_id,
            diagnostics=self.diagnostics,
        )

    def _error_event(self, status: int | None, body: Any, raw: str) -> UpstreamError:
        err = error_from_body(
            status,
            body,
            raw,
            headers=None,
            api_key=self._api_key,
            upstream_request_id=self.upstream_request_id,
            diagnostics=self.diagnostics,
        )
        if err.raw_excerpt is None:
            err.raw_excerpt = excerpt(raw, self._api_key)
        return err

    # -- the stream ---------------------------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[dict[str, Any]]:
        while True:
            if self._buffer:
                yield self._buffer.popleft()
                continue
            if self._ended:
                return
            await self._guarded_advance()

    async def prime(self) -> None:
        """Reads until the first output so failures before it stay eligible for fallback."""
        while not self._output_started and not self._ended:
            await self._guarded_advance()

    async def _guarded_advance(self) -> None:
        # Cancellation or a translation bug must not leak the upstream connection. Only the
        # read is guarded: a consumer merely pausing between chunks keeps the stream open.
        try:
            await self._advance()
        except (Exception, asyncio.CancelledError):
            self._ended = True
            await self._release()
            raise

    async def _advance(self) -> None:
        try:
            event = await anext(self._events)
        except StopAsyncIteration:
            if self._complete_at_eof():
                await self._complete()
                return
            await self._fail(
                UpstreamError(
                    "dropped",
                    "the upstream stream ended before completing",
                    retryable=not self._output_started,
                    status=self._response.status_code,
                    upstream_request_id=self.upstream_request_id,
                    diagnostics=self.diagnostics,
                )
            )
        except httpx.HTTPError as exc:
            await self._fail(
                transport_error(
                    exc,
                    output_started=self._output_started,
                    upstream_request_id=self.upstream_request_id,
                    diagnostics=self.diagnostics,
                )
            )
        try:
            chunks = self._translate(event)
        except UpstreamError as err:
            if self._output_started:
                err.retryable = False
            await self._fail(err)
        for chunk in chunks:
            if not self._output_started and _is_output(chunk):
                self._output_started = True
            for choice in chunk.get("choices") or ():
                delta = choice.get("delta") if isinstance(choice, dict) else None
                content = delta.get("content") if isinstance(delta, dict) else None
                if isinstance(content, str) and content:
                    self._parts.append(content)
        self._buffer.extend(chunks)
        if self._terminal:
            await self._complete()

    async def _complete(self) -> None:
        self.finished = True
        self._ended = True
        if self.usage is None:
            self.usage = Usage(
                prompt_tokens=estimate_prompt_tokens(self._request),
                completion_tokens=estimate_text_tokens(self.text),
                estimated=True,
            )
        usage_body = self._usage_body if self._usage_body is not None else self.usage.to_openai()
        self._buffer.append(
            {
                "id": self.chunk_id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.public_model,
                "choices": [],
                "usage": usage_body,
            }
        )
        await self._release()

    async def _fail(self, err: UpstreamError) -> NoReturn:
        self._ended = True
        await self._release()
        # `from None`: the transport exception chained as context adds nothing for customers
        # and can carry upstream URLs into logged tracebacks.
        raise err from None

    async def aclose(self) -> None:
        """Stops the stream where it is (client gone, or enough drained); safe to repeat."""
        self._ended = True
        self._buffer.clear()
        await self._release()

    async def _release(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            # A reader in another task (the relay draining after a client hang-up) may be
            # inside the generator right now; closing the response below still ends it.
            with contextlib.suppress(RuntimeError):
                await self._events.aclose()
        finally:
            await self._response.aclose()
