"""Anthropic's Messages API behind the OpenAI chat shape.

Anthropic counts cache reads and cache writes outside `input_tokens`; both are folded back
into `prompt_tokens` so usage means the same thing for every provider (OpenAI's convention:
prompt includes cached), with cache reads reported as `cached_tokens` for cheaper pricing.
"""

from __future__ import annotations

from typing import Any

import httpx

from domain.providers.base import ChatResult, Upstream, Usage
from domain.providers.convert import (
    ImagePart,
    TextPart,
    iter_parts,
    max_output_tokens,
    new_completion_id,
    number,
    reject_unsupported,
    split_system,
    stop_sequences,
)
from domain.providers.errors import invalid_request
from domain.providers.http_chat import HttpChatAdapter, completion, estimated_usage
from domain.providers.transport import (
    JsonReply,
    SseChatStream,
    SseEvent,
    as_int,
    header_id,
)

DEFAULT_BASE_URL = "https://api.anthropic.com"
API_VERSION = "2023-06-01"
# Anthropic requires max_tokens; OpenAI clients usually omit it.
DEFAULT_MAX_TOKENS = 4096
LABEL = "anthropic"

_FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
# Stream `error` events carry a type but no HTTP status; map back so classification is shared.
_ERROR_STATUSES = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}

_request_id = header_id("request-id", "x-request-id")


def usage_from_anthropic(raw: Any) -> Usage | None:
    if not isinstance(raw, dict) or ("input_tokens" not in raw and "output_tokens" not in raw):
        return None
    cache_read = as_int(raw.get("cache_read_input_tokens"))
    cache_write = as_int(raw.get("cache_creation_input_tokens"))
    return Usage(
        prompt_tokens=as_int(raw.get("input_tokens")) + cache_write + cache_read,
        completion_tokens=as_int(raw.get("output_tokens")),
        cached_tokens=cache_read,
    )


def _block(part: TextPart | ImagePart) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    if part.data is not None:
        source = {"type": "base64", "media_type": part.media_type, "data": part.data}
        return {"type": "image", "source": source}
    return {"type": "image", "source": {"type": "url", "url": part.url}}


def build_payload(upstream: Upstream, request: dict[str, Any], stream: bool) -> dict[str, Any]:
    reject_unsupported(request, LABEL)
    system, turns = split_system(request, LABEL)
    messages: list[dict[str, Any]] = []
    for turn in turns:
        blocks = [_block(p) for p in iter_parts(turn.get("content"), LABEL)]
        if not blocks:
            continue  # Anthropic rejects empty content; an empty turn says nothing anyway
        if messages and messages[-1]["role"] == turn["role"]:
            messages[-1]["content"].extend(blocks)  # older API versions demand alternation
        else:
            messages.append({"role": turn["role"], "content": blocks})
    if not messages:
        raise invalid_request("at least one user or assistant message with content is required")
    payload: dict[str, Any] = {
        "model": upstream.model,
        "max_tokens": max_output_tokens(request) or DEFAULT_MAX_TOKENS,
        "messages": messages,
    }
    if system:
        payload["system"] = "\n\n".join(system)
    for ours, theirs in (("temperature", "temperature"), ("top_p", "top_p")):
        value = number(request.get(ours))
        if value is not None:
            payload[theirs] = value
    stops = stop_sequences(request)
    if stops:
        payload["stop_sequences"] = stops
    if isinstance(request.get("user"), str) and request["user"]:
        payload["metadata"] = {"user_id": request["user"]}
    if stream:
        payload["stream"] = True
    return payload


class AnthropicStream(SseChatStream):
    _start_usage: dict[str, Any] | None = None

    def _translate(self, event: SseEvent) -> list[dict[str, Any]]:
        obj = self._json(event)
        if not isinstance(obj, dict):
            raise self._malformed("event is not a JSON object", event.data)
        kind = obj.get("type") or event.event
        if kind == "content_block_delta":
            delta = obj.get("delta")
            if isinstance(delta, dict) and delta.get("type") == "text_delta":
                text = delta.get("text")
                if isinstance(text, str) and text:
                    return [self._chunk({"content": text})]
            return []  # thinking and signature deltas stay upstream
        if kind == "message_start":
            message = obj.get("message")
            if isinstance(message, dict):
                if isinstance(message.get("usage"), dict):
                    self._start_usage = message["usage"]
                if isinstance(message.get("id"), str) and message["id"]:
                    self.chunk_id = message["id"]
                    self.diagnostics["response-id"] = message["id"][:200]
                    self.upstream_request_id = self.upstream_request_id or message["id"]
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            block = obj.get("content_block")
            if isinstance(block, dict) and block.get("type") == "text" and block.get("text"):
                return [self._chunk({"content": str(block["text"])})]
            return []
        if kind == "message_delta":
            usage = obj.get("usage")
            if isinstance(usage, dict):  # cumulative; later API versions repeat input counts
                self.usage = usage_from_anthropic({**(self._start_usage or {}), **usage})
            delta = obj.get("delta")
            reason = delta.get("stop_reason") if isinstance(delta, dict) else None
            if reason:
                return [self._chunk({}, _FINISH_REASONS.get(str(reason), "stop"))]
            return []
        if kind == "message_stop":
            self._terminal = True
            return []
        if kind == "error":
            err = obj.get("error")
            err_type = err.get("type") if isinstance(err, dict) else None
            raise self._error_event(_ERROR_STATUSES.get(str(err_type), 500), obj, event.data)
        return []  # ping, content_block_stop and event types newer than this code


class AnthropicAdapter(HttpChatAdapter):
    request_id = staticmethod(_request_id)
    stream_type = AnthropicStream

    def url(self, upstream: Upstream, stream: bool) -> str:
        return (upstream.base_url or DEFAULT_BASE_URL).rstrip("/") + "/v1/messages"

    def headers(self, upstream: Upstream) -> dict[str, str]:
        headers = httpx.Headers(dict(upstream.extra_headers))
        headers.setdefault("anthropic-version", API_VERSION)  # channels may pin a newer one
        if upstream.api_key:
            headers["x-api-key"] = upstream.api_key
        return dict(headers.items())

    def payload(self, upstream: Upstream, request: dict[str, Any], stream: bool) -> dict[str, Any]:
        return build_payload(upstream, request, stream)

    def result(
        self, reply: JsonReply, upstream: Upstream, request: dict[str, Any], public_model: str
    ) -> ChatResult:
        body = reply.body
        content = body.get("content")
        if not isinstance(content, list):
            raise reply.malformed("message has no content list", upstream)
        text = "".join(
            block["text"]
            for block in content
            if isinstance(block, dict)
            and block.get("type") == "text"
            and isinstance(block.get("text"), str)
        )
        usage = usage_from_anthropic(body.get("usage")) or estimated_usage(request, text)
        raw_id = body.get("id")
        ident = raw_id if isinstance(raw_id, str) else new_completion_id()
        finish = _FINISH_REASONS.get(str(body.get("stop_reason")), "stop")
        out = completion(ident, public_model, text, finish, usage)
        diagnostics = dict(reply.diagnostics)
        if isinstance(body.get("id"), str):
            diagnostics["response-id"] = body["id"][:200]
        rid = reply.upstream_request_id or diagnostics.get("response-id")
        return ChatResult(out, usage, rid, diagnostics, reply.status)
