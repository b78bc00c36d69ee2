"""Google's Gemini API (generateContent) behind the OpenAI chat shape.

Gemini has no end-of-stream marker: the last chunk is the one carrying a finishReason, so a
stream only counts as finished when it closed cleanly after one. Thinking tokens are billed
as output by Google, so they are added to `completion_tokens`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from domain.providers.base import ChatResult, Upstream, Usage
from domain.providers.convert import (
    ImagePart,
    TextPart,
    iter_parts,
    max_output_tokens,
    new_completion_id,
    number,
    positive_int,
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

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"
LABEL = "google"

_FINISH_REASONS = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "FINISH_REASON_UNSPECIFIED": "stop",
    "OTHER": "stop",
    "MALFORMED_FUNCTION_CALL": "stop",
}
# Everything else Gemini stops for (SAFETY, RECITATION, BLOCKLIST, PROHIBITED_CONTENT,
# SPII, IMAGE_SAFETY, ...) is a content policy stop.
_FILTERED = "content_filter"

_request_id = header_id("x-request-id")

_CONFIG_NUMBERS = (
    ("temperature", "temperature"),
    ("top_p", "topP"),
    ("presence_penalty", "presencePenalty"),
    ("frequency_penalty", "frequencyPenalty"),
)


def finish_reason(reason: Any) -> str:
    return _FINISH_REASONS.get(str(reason), _FILTERED)


def usage_from_gemini(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    if "promptTokenCount" not in raw and "candidatesTokenCount" not in raw:
        return None
    return Usage(
        prompt_tokens=as_int(raw.get("promptTokenCount")),
        completion_tokens=as_int(raw.get("candidatesTokenCount"))
        + as_int(raw.get("thoughtsTokenCount")),
        cached_tokens=as_int(raw.get("cachedContentTokenCount")),
    )


def _part(part: TextPart | ImagePart) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"text": part.text}
    if part.data is None:
        raise invalid_request("google channels accept images only as base64 data: URLs")
    return {"inlineData": {"mimeType": part.media_type, "data": part.data}}


def build_payload(request: dict[str, Any]) -> dict[str, Any]:
    reject_unsupported(request, LABEL)
    system, turns = split_system(request, LABEL)
    contents: list[dict[str, Any]] = []
    for turn in turns:
        parts = [_part(p) for p in iter_parts(turn.get("content"), LABEL)]
        if not parts:
            continue
        role = "model" if turn["role"] == "assistant" else "user"
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})
    if not contents:
        raise invalid_request("at least one user or assistant message with content is required")
    payload: dict[str, Any] = {"contents": contents}
    if system:
        payload["systemInstruction"] = {"parts": [{"text": "\n\n".join(system)}]}
    config: dict[str, Any] = {}
    cap = max_output_tokens(request)
    if cap is not None:
        config["maxOutputTokens"] = cap
    for ours, theirs in _CONFIG_NUMBERS:
        value = number(request.get(ours))
        if value is not None:
            config[theirs] = value
    stops = stop_sequences(request)
    if stops:
        config["stopSequences"] = stops
    seed = positive_int(request.get("seed"))
    if seed is not None:
        config["seed"] = seed
    fmt = request.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_object":
        config["responseMimeType"] = "application/json"
    if config:
        payload["generationConfig"] = config
    return payload


def _candidate_text(candidate: Any) -> str:
    content = candidate.get("content") if isinstance(candidate, dict) else None
    parts = content.get("parts") if isinstance(content, dict) else None
    if not isinstance(parts, list):
        return ""
    return "".join(
        p["text"]
        for p in parts
        if isinstance(p, dict) and isinstance(p.get("text"), str) and not p.get("thought")
    )


def _blocked(body: dict[str, Any]) -> bool:
    feedback = body.get("promptFeedback")
    return isinstance(feedback, dict) and bool(feedback.get("blockReason"))


class GeminiStream(SseChatStream):
    _finish_seen = False
    _role_sent = False
    _last_usage: Any = None

    def _complete_at_eof(self) -> bool:
        return self._finish_seen

    def _delta(self, delta: dict[str, Any]) -> dict[str, Any]:
        if not self._role_sent:
            self._role_sent = True
            return {"role": "assistant", **delta}
        return delta

    def _translate(self, event: SseEvent) -> list[dict[str, Any]]:
        obj = self._json(event)
        if not isinstance(obj, dict):
            raise self._malformed("chunk is not a JSON object", event.data)
        if "error" in obj:
            err = obj["error"]
            code = err.get("code") if isinstance(err, dict) else None
            status = code if isinstance(code, int) and 400 <= code <= 599 else 500
            raise self._error_event(status, obj, event.data)
        response_id = obj.get("responseId")
        if isinstance(response_id, str) and response_id and "response-id" not in self.diagnostics:
            self.diagnostics["response-id"] = response_id[:200]
            self.upstream_request_id = self.upstream_request_id or response_id
        if "usageMetadata" in obj:
            self._last_usage = obj["usageMetadata"]
        chunks: list[dict[str, Any]] = []
        candidates = obj.get("candidates")
        reason: str | None = None
        if isinstance(candidates, list) and candidates:
            text = _candidate_text(candidates[0])
            if text:
                chunks.append(self._chunk(self._delta({"content": text})))
            raw_reason = (
                candidates[0].get("finishReason") if isinstance(candidates[0], dict) else None
            )
            if raw_reason is not None:
                reason = finish_reason(raw_reason)
        elif _blocked(obj):
            reason = _FILTERED
        if reason is not None and not self._finish_seen:
            self._finish_seen = True
            chunks.append(self._chunk(self._delta({}), reason))
        if self._finish_seen:
            # Intermediate chunks may carry running counts; only the final one is billable.
            self.usage = usage_from_gemini(self._last_usage) or self.usage
        return chunks


class GeminiAdapter(HttpChatAdapter):
    request_id = staticmethod(_request_id)
    stream_type = GeminiStream

    def url(self, upstream: Upstream, stream: bool) -> str:
        base = (upstream.base_url or DEFAULT_BASE_URL).rstrip("/")
        model = quote(upstream.model.removeprefix("models/"), safe="-._")
        if stream:
            return f"{base}/v1beta/models/{model}:streamGenerateContent?alt=sse"
        return f"{base}/v1beta/models/{model}:generateContent"

    def headers(self, upstream: Upstream) -> dict[str, str]:
        # The key goes in a header, never the ?key= query string that ends up in access logs.
        headers = httpx.Headers(dict(upstream.extra_headers))
        if upstream.api_key:
            headers["x-goog-api-key"] = upstream.api_key
        return dict(headers.items())

    def payload(self, upstream: Upstream, request: dict[str, Any], stream: bool) -> dict[str, Any]:
        return build_payload(request)

    def result(
        self, reply: JsonReply, upstream: Upstream, request: dict[str, Any], public_model: str
    ) -> ChatResult:
        body = reply.body
        candidates = body.get("candidates")
        if isinstance(candidates, list) and candidates:
            text = _candidate_text(candidates[0])
            reason = candidates[0].get("finishReason") if isinstance(candidates[0], dict) else None
            finish = finish_reason(reason) if reason is not None else "stop"
        elif _blocked(body):
            text, finish = "", _FILTERED
        else:
            raise reply.malformed("response has no candidates", upstream)
        usage = usage_from_gemini(body.get("usageMetadata")) or estimated_usage(request, text)
        diagnostics = dict(reply.diagnostics)
        response_id = body.get("responseId")
        if isinstance(response_id, str) and response_id:
            diagnostics["response-id"] = response_id[:200]
        out = completion(new_completion_id(), public_model, text, finish, usage)
        rid = reply.upstream_request_id or diagnostics.get("response-id")
        return ChatResult(out, usage, rid, diagnostics, reply.status)
