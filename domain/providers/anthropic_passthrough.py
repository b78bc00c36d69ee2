"""Native mode: an Anthropic Messages request sent to an Anthropic channel as the client
wrote it (`domain.surfaces.anthropic_native` says what changes), its answer returned as
Anthropic sent it.

The relay still routes, holds, settles and logs the call as a chat call: the JSON answer
comes back as a `ChatResult` whose body is the Anthropic message, and the stream as a
`ChatStream` whose items are Anthropic's own events (each a dict with its `type`), billed
from Anthropic's usage (`NativeUsage`). Only the edge's Messages route asks for this, and
only for routes whose provider is `anthropic`; every other route gets the translation.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import httpx

from domain.providers.anthropic import _ERROR_STATUSES, AnthropicAdapter, _request_id
from domain.providers.base import ChatResult, ChatStream, Upstream, Usage
from domain.providers.convert import new_completion_id
from domain.providers.tokens import estimate_text_tokens
from domain.providers.transport import SseChatStream, SseEvent, open_sse, post_json
from domain.surfaces.anthropic_native import NativeUsage, native_payload, usage_from_message

_adapter = AnthropicAdapter()


@dataclass(frozen=True)
class NativeRequest:
    """The client's own Messages body and the headers Anthropic may see (version, betas)."""

    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    prompt_estimate: int = 0
    only_native: str | None = None  # every Messages body this mode gets also translates

    def serves(self, provider: str, capabilities: Collection[str]) -> bool:
        return provider == "anthropic"

    async def complete(
        self, http: httpx.AsyncClient, upstream: Upstream, public_model: str,
        max_output: int | None,
    ) -> ChatResult:  # fmt: skip
        return await native_message(http, upstream, self, public_model)

    async def open_stream(
        self, http: httpx.AsyncClient, upstream: Upstream, public_model: str,
        max_output: int | None,
    ) -> ChatStream:  # fmt: skip
        return await open_native_stream(http, upstream, self, public_model)


def _headers(upstream: Upstream, request: NativeRequest) -> dict[str, str]:
    return {**_adapter.headers(upstream), **request.headers}


async def native_message(
    http: httpx.AsyncClient, upstream: Upstream, request: NativeRequest, public_model: str
) -> ChatResult:
    payload = native_payload(request.body, upstream_model=upstream.model)
    reply = await post_json(
        http, _adapter.url(upstream, False), payload, _headers(upstream, request), upstream,
        _request_id,
    )  # fmt: skip
    body = reply.body
    if not isinstance(body.get("content"), list):
        raise reply.malformed("message has no content list", upstream)
    body["model"] = public_model
    usage = usage_from_message(body) or Usage(
        request.prompt_estimate, estimate_text_tokens(str(body["content"])), estimated=True
    )
    rid = reply.upstream_request_id or (body["id"] if isinstance(body.get("id"), str) else None)
    return ChatResult(body, usage, rid, dict(reply.diagnostics), reply.status)


class NativeStream(SseChatStream):
    """Anthropic's events, forwarded as they come (the model renamed to the public one)."""

    prompt_estimate = 0

    def __init__(self, response: httpx.Response, **kwargs: Any) -> None:
        super().__init__(response, **kwargs)
        self.watch = NativeUsage()

    def _translate(self, event: SseEvent) -> list[dict[str, Any]]:
        obj = self._json(event)
        if not isinstance(obj, dict):
            raise self._malformed("event is not a JSON object", event.data)
        kind = obj.get("type") or event.event
        if kind == "error":
            err = obj.get("error")
            err_type = err.get("type") if isinstance(err, dict) else None
            raise self._error_event(_ERROR_STATUSES.get(str(err_type), 500), obj, event.data)
        self.watch.observe(obj)
        if kind == "message_start" and isinstance(obj.get("message"), dict):
            obj["message"] = {**obj["message"], "model": self.public_model}
            if isinstance(obj["message"].get("id"), str):
                self.upstream_request_id = self.upstream_request_id or obj["message"]["id"]
        elif kind == "content_block_delta":
            self._output_started = True  # what a client sees: no fallback past this point
            delta = obj.get("delta")
            for key in ("text", "partial_json", "thinking"):
                if isinstance(delta, dict) and isinstance(delta.get(key), str):
                    self._parts.append(delta[key])
        elif kind == "message_stop":
            self._terminal = True
        if kind in ("message_start", "message_delta", "message_stop"):
            self.usage = self.watch.usage(self.prompt_estimate)
        return [obj]


async def open_native_stream(
    http: httpx.AsyncClient, upstream: Upstream, request: NativeRequest, public_model: str
) -> ChatStream:
    payload = {**native_payload(request.body, upstream_model=upstream.model), "stream": True}
    response = await open_sse(
        http, _adapter.url(upstream, True), payload, _headers(upstream, request), upstream,
        _request_id,
    )  # fmt: skip
    stream = NativeStream(
        response, upstream=upstream, request=request.body, public_model=public_model,
        chunk_id=new_completion_id(), request_id=_request_id,
    )  # fmt: skip
    stream.prompt_estimate = request.prompt_estimate
    await stream.prime()
    return stream
