"""Native mode for the Responses API: a `POST /v1/responses` request sent to an upstream that
speaks it (`domain.surfaces.responses_native` says what changes), its answer returned as the
upstream sent it.

The relay still routes, holds, settles and logs the call as a chat call: the JSON answer
comes back as a `ChatResult` whose body is the Response object, and the stream as a
`ChatStream` whose items are the upstream's own typed events (each a dict with its `type`),
billed from the Response's usage. Routes that do not speak Responses get the chat
translation (`Plan.body`), so fallback across them keeps working.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import httpx

from domain.providers.base import ChatResult, ChatStream, Upstream, UpstreamError, Usage
from domain.providers.convert import new_completion_id
from domain.providers.openai import DEFAULT_BASE_URLS, OpenAIAdapter, _request_id
from domain.providers.tokens import estimate_text_tokens
from domain.providers.transport import SseChatStream, SseEvent, open_sse, post_json
from domain.surfaces.responses_native import (
    TERMINAL_EVENTS,
    is_output,
    native_payload,
    produced_text,
    usage_from_response,
)

RESPONSES_CAPABILITY = "responses_api"
# Providers whose channels may speak Responses (the OpenAI wire family); `openai` always does.
OPENAI_FAMILY = frozenset({"openai", "openai_compatible", "openrouter", "ollama"})

_adapter = OpenAIAdapter()


def speaks_responses(provider: str, capabilities: Collection[str]) -> bool:
    return provider == "openai" or (
        provider in OPENAI_FAMILY and RESPONSES_CAPABILITY in capabilities
    )


def _url(upstream: Upstream) -> str:
    base = upstream.base_url or DEFAULT_BASE_URLS.get(upstream.provider)
    if not base:
        raise UpstreamError(
            "connect", "the upstream channel has no base URL configured", retryable=True
        )
    return base.rstrip("/") + "/responses"


def _public(obj: dict[str, Any], public_model: str) -> dict[str, Any]:
    return {**obj, "model": public_model} if "model" in obj else obj


@dataclass(frozen=True)
class ResponsesNative:
    """The client's own Responses body, for the routes that speak Responses.

    `only_native` names a field only such routes can serve (`store`, `previous_response_id`):
    the plan is then refused unless every route speaks Responses."""

    body: dict[str, Any]
    prompt_estimate: int = 0
    only_native: str | None = None

    def serves(self, provider: str, capabilities: Collection[str]) -> bool:
        return speaks_responses(provider, capabilities)

    def payload(self, upstream: Upstream, max_output: int | None) -> dict[str, Any]:
        return native_payload(self.body, upstream_model=upstream.model, max_output=max_output)

    async def complete(
        self, http: httpx.AsyncClient, upstream: Upstream, public_model: str,
        max_output: int | None,
    ) -> ChatResult:  # fmt: skip
        payload = self.payload(upstream, max_output)
        payload.pop("stream", None)
        payload.pop("stream_options", None)
        reply = await post_json(
            http, _url(upstream), payload, _adapter.headers(upstream), upstream, _request_id
        )
        body = reply.body
        if not isinstance(body.get("output"), list):
            raise reply.malformed("response has no output list", upstream)
        body["model"] = public_model
        usage = usage_from_response(body) or Usage(
            self.prompt_estimate, estimate_text_tokens(str(body["output"])), estimated=True
        )
        diagnostics = dict(reply.diagnostics)
        rid = reply.upstream_request_id
        if isinstance(body.get("id"), str):
            diagnostics["response-id"] = body["id"][:200]
            rid = rid or body["id"][:200]
        return ChatResult(body, usage, rid, diagnostics, reply.status)

    async def open_stream(
        self, http: httpx.AsyncClient, upstream: Upstream, public_model: str,
        max_output: int | None,
    ) -> ChatStream:  # fmt: skip
        payload = {**self.payload(upstream, max_output), "stream": True}
        response = await open_sse(
            http, _url(upstream), payload, _adapter.headers(upstream), upstream, _request_id
        )
        stream = NativeResponsesStream(
            response, upstream=upstream, request=self.body, public_model=public_model,
            chunk_id=new_completion_id(), request_id=_request_id,
        )  # fmt: skip
        stream.prompt_estimate = self.prompt_estimate
        await stream.prime()
        return stream


class NativeResponsesStream(SseChatStream):
    """The upstream's Responses events, forwarded as they come (model renamed to the public
    one). `error` and `response.failed` end it as an upstream failure: before any output
    another route may still serve the call."""

    prompt_estimate = 0

    def _translate(self, event: SseEvent) -> list[dict[str, Any]]:
        if event.data.strip() == "[DONE]":
            return []
        obj = self._json(event)
        if not isinstance(obj, dict):
            raise self._malformed("event is not a JSON object", event.data)
        kind = obj.get("type") or event.event
        response = obj.get("response")
        if isinstance(response, dict):
            obj["response"] = response = _public(response, self.public_model)
            if isinstance(response.get("id"), str):
                self.upstream_request_id = self.upstream_request_id or response["id"][:200]
            reported = usage_from_response(response)
            if reported is not None:
                self.usage = reported
        if kind == "error":
            raise self._error_event(None, obj, event.data)
        if kind == "response.failed":
            failure = response if isinstance(response, dict) else obj
            raise self._error_event(None, failure, event.data)
        if not self._output_started and is_output(obj):
            self._output_started = True  # what a client sees: no fallback past this point
        text = produced_text(obj)
        if text:
            self._parts.append(text)
        if kind in TERMINAL_EVENTS:
            self._terminal = True
            if self.usage is None:
                produced = estimate_text_tokens(self.text)
                self.usage = Usage(self.prompt_estimate, produced, estimated=True)
        return [obj]
