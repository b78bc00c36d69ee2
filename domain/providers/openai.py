"""OpenAI and every upstream that speaks its chat API (OpenRouter, Ollama's /v1, vLLM, ...).

The client's body already is the wire format, so it passes through untouched apart from the
model name and streaming usage: unknown fields reach the upstream unchanged, which keeps new
OpenAI parameters working without a gateway release.
"""

from __future__ import annotations

from typing import Any

import httpx

from domain.providers.base import ChatResult, Upstream, UpstreamError, Usage
from domain.providers.http_chat import HttpChatAdapter, estimated_usage
from domain.providers.transport import JsonReply, SseChatStream, SseEvent, as_int, header_id

DEFAULT_BASE_URLS = {
    "openai": "https://api.openai.com/v1",
    "openrouter": "https://openrouter.ai/api/v1",
    "ollama": "http://127.0.0.1:11434/v1",
}
OPENROUTER_REFERER = "https://0xinf.dev"
OPENROUTER_TITLE = "0xinf"

_request_id = header_id("x-request-id", "request-id")


def usage_from_openai(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    if "prompt_tokens" not in raw and "completion_tokens" not in raw:
        return None
    details = raw.get("prompt_tokens_details")
    cached = as_int(details.get("cached_tokens")) if isinstance(details, dict) else 0
    return Usage(
        prompt_tokens=as_int(raw.get("prompt_tokens")),
        completion_tokens=as_int(raw.get("completion_tokens")),
        cached_tokens=cached,
    )


class OpenAIStream(SseChatStream):
    def __init__(self, response: httpx.Response, **kwargs: Any) -> None:
        super().__init__(response, **kwargs)
        opts = self._request.get("stream_options")
        self._client_wants_usage = isinstance(opts, dict) and opts.get("include_usage") is True
        self._finish_seen = False
        self._ids_taken = False

    def _complete_at_eof(self) -> bool:
        # Some OpenAI-compatible servers end without [DONE]; a finish_reason is proof enough.
        return self._finish_seen

    def _translate(self, event: SseEvent) -> list[dict[str, Any]]:
        if event.data.strip() == "[DONE]":
            self._terminal = True
            return []
        obj = self._json(event)
        if not isinstance(obj, dict):
            raise self._malformed("chunk is not a JSON object", event.data)
        if "error" in obj:  # OpenRouter and vLLM report mid-stream failures this way
            err = obj["error"]
            code = err.get("code") if isinstance(err, dict) else None
            status = code if isinstance(code, int) and 400 <= code <= 599 else None
            raise self._error_event(status, obj, event.data)
        if not self._ids_taken:  # the usage chunk we append must match the upstream's ids
            self._ids_taken = True
            if isinstance(obj.get("id"), str) and obj["id"]:
                self.chunk_id = obj["id"]
            if isinstance(obj.get("created"), int):
                self.created = obj["created"]
        usage = obj.get("usage")
        reported = usage_from_openai(usage)
        if reported is not None:
            self.usage = reported
            self._usage_body = usage
        choices = obj.get("choices")
        if not isinstance(choices, list) or not choices:
            return []  # usage-only chunk (re-emitted at the end) or a keep-alive object
        chunk = dict(obj)
        chunk["model"] = self.public_model
        if reported is not None or (usage is None and not self._client_wants_usage):
            chunk.pop("usage", None)
        if any(isinstance(c, dict) and c.get("finish_reason") for c in choices):
            self._finish_seen = True
        return [chunk]


class OpenAIAdapter(HttpChatAdapter):
    request_id = staticmethod(_request_id)
    stream_type = OpenAIStream

    def url(self, upstream: Upstream, stream: bool) -> str:
        base = upstream.base_url or DEFAULT_BASE_URLS.get(upstream.provider)
        if not base:
            # A channel without an address is the channel's problem: let the relay move on.
            raise UpstreamError(
                "connect", "the upstream channel has no base URL configured", retryable=True
            )
        return base.rstrip("/") + "/chat/completions"

    def headers(self, upstream: Upstream) -> dict[str, str]:
        """Lower-case names, merged case-insensitively, as `httpx.Headers` would; a plain
        dict does it in 0.3 µs a call instead of 2.6 (timeit, the dev machine)."""
        headers = {name.lower(): value for name, value in upstream.extra_headers.items()}
        if upstream.provider == "openrouter":
            # OpenRouter attributes traffic to an app by these; channels may override them.
            headers.setdefault("http-referer", OPENROUTER_REFERER)
            headers.setdefault("x-title", OPENROUTER_TITLE)
        if upstream.api_key:
            headers["authorization"] = f"Bearer {upstream.api_key}"
        return headers

    def payload(self, upstream: Upstream, request: dict[str, Any], stream: bool) -> dict[str, Any]:
        body = dict(request)  # shallow: only top-level keys are replaced, never nested values
        body["model"] = upstream.model
        if stream:
            body["stream"] = True
            opts = body.get("stream_options")
            body["stream_options"] = {
                **(opts if isinstance(opts, dict) else {}),
                "include_usage": True,
            }
        else:
            body.pop("stream", None)
            body.pop("stream_options", None)  # OpenAI rejects stream_options without stream
        return body

    def result(
        self, reply: JsonReply, upstream: Upstream, request: dict[str, Any], public_model: str
    ) -> ChatResult:
        body = reply.body
        choices = body.get("choices")
        if not isinstance(choices, list) or not choices:
            raise reply.malformed("response has no choices", upstream)
        body["model"] = public_model
        usage = usage_from_openai(body.get("usage"))
        if usage is None:
            text = "".join(
                c["message"]["content"]
                for c in choices
                if isinstance(c, dict)
                and isinstance(c.get("message"), dict)
                and isinstance(c["message"].get("content"), str)
            )
            usage = estimated_usage(request, text)
            body["usage"] = usage.to_openai()
        diagnostics = dict(reply.diagnostics)
        rid = reply.upstream_request_id
        if isinstance(body.get("id"), str):
            diagnostics["response-id"] = body["id"][:200]
            rid = rid or body["id"][:200]
        return ChatResult(body, usage, rid, diagnostics, reply.status)
