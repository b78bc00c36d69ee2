"""Chat answers and our errors as Anthropic Messages answers (translation mode).

Clients act on `stop_reason`, not on the content: Claude Code and the anthropic SDK run
tools only when it says `tool_use` and continue a cut answer only when it says
`max_tokens`. Many OpenAI-compatible servers finish a tool-calling turn with `stop`, so a
turn that produced tool calls is `tool_use` whatever the upstream said (unless it was cut
short), and `tool_use` is never claimed without a tool_use block to run.

Usage follows Anthropic's split: `input_tokens` excludes cache reads and writes, which get
their own fields; the chat convention counts them inside `prompt_tokens`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from domain.providers.base import Usage
from domain.surfaces.chat_read import ChatAnswer, Tokens, billed_tokens, read_completion

# Our statuses (api/errors.py) → Anthropic error types. Statuses stay ours: the SDK picks
# its exception class by status, and each of these is one it knows.
# 402 keeps its status with `billing_error`, Anthropic's own pairing: the anthropic SDK
# raises PaymentRequiredError and does not retry it, and Claude Code shows the message and
# stops (a 400 would read as a bug in the request, a 403 as a missing permission).
# 503 (no channel could serve) is `overloaded_error`, which Claude Code treats as a
# transient capacity problem; its SDK retries 5xx with backoff.
ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "invalid_request_error",
    413: "request_too_large",
    422: "invalid_request_error",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def error_type_for(status: int) -> str:
    if status in ERROR_TYPES:
        return ERROR_TYPES[status]
    return "invalid_request_error" if 400 <= status < 500 else "api_error"


def anthropic_error(status: int, message: str, *, request_id: str | None = None) -> dict[str, Any]:
    """Anthropic's error body: `{"type":"error","error":{"type","message"},"request_id"}`."""
    body: dict[str, Any] = {
        "type": "error",
        "error": {"type": error_type_for(status), "message": message},
    }
    if request_id:
        body["request_id"] = request_id
    return body


def anthropic_error_from_envelope(status: int, envelope: Any) -> dict[str, Any]:
    """Our `{"error": {type, code, message, request_id, param}}` in Anthropic's shape.

    Anthropic errors have no `param`, so a field name the message does not already mention
    is put in front of it (`max_tokens: ...`)."""
    err = envelope.get("error") if isinstance(envelope, dict) else None
    err = err if isinstance(err, dict) else {}
    message = str(err.get("message") or "request failed")
    param = err.get("param")
    if isinstance(param, str) and param and param not in message:
        message = f"{param}: {message}"
    rid = err.get("request_id")
    return anthropic_error(status, message, request_id=rid if isinstance(rid, str) else None)


def new_message_id() -> str:
    return f"msg_{uuid.uuid4().hex[:24]}"


def stop_reason(
    finish_reason: str | None,
    *,
    has_tool_use: bool,
    refused: bool = False,
    matched_stop: str | None = None,
    stop_sequences: Sequence[str] = (),
) -> tuple[str, str | None]:
    """(stop_reason, stop_sequence) for a chat finish reason."""
    if finish_reason == "length":
        return "max_tokens", None
    if finish_reason == "content_filter" or refused:
        return "refusal", None
    if has_tool_use:
        return "tool_use", None
    if matched_stop is not None and matched_stop in stop_sequences:
        return "stop_sequence", matched_stop
    return "end_turn", None


def usage_fields(tokens: Tokens) -> dict[str, Any]:
    """Anthropic usage from chat-convention tokens (cache reads and writes split out)."""
    cached = min(tokens.cached, tokens.prompt)
    written = min(tokens.cache_write, tokens.prompt - cached)
    return {
        "input_tokens": tokens.prompt - cached - written,
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": cached,
        "cache_creation": {"ephemeral_5m_input_tokens": written, "ephemeral_1h_input_tokens": 0},
        "output_tokens": tokens.completion,
        "service_tier": "standard",
    }


def tool_input(arguments: str) -> dict[str, Any]:
    """A tool call's JSON arguments as the object Anthropic's `input` must be. Arguments
    that are not a JSON object (cut short by max_tokens, or a model's mistake) become `{}`:
    the stop reason already tells the client the call is incomplete."""
    try:
        value = json.loads(arguments) if arguments.strip() else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _content(answer: ChatAnswer, thinking: bool) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if thinking and answer.reasoning:
        blocks.append({"type": "thinking", "thinking": answer.reasoning, "signature": ""})
    text = answer.text + answer.refusal
    if text:
        blocks.append({"type": "text", "text": text})
    for call in answer.tool_calls:
        blocks.append(
            {
                "type": "tool_use",
                "id": call.id,
                "name": call.name,
                "input": tool_input(call.arguments),
            }
        )
    return blocks


def message_from_chat(
    body: dict[str, Any],
    *,
    model: str,
    thinking: bool = False,
    stop_sequences: Sequence[str] = (),
    usage: Usage | None = None,
    message_id: str | None = None,
) -> dict[str, Any]:
    """The relay's chat completion as an Anthropic Message.

    `usage`, when given, is the relay's billed usage and wins over the body's: the client
    then sees exactly what the ledger charged."""
    answer = read_completion(body)
    tokens = billed_tokens(usage, answer.tokens) or answer.tokens
    content = _content(answer, thinking)
    reason, sequence = stop_reason(
        answer.finish_reason,
        has_tool_use=any(b["type"] == "tool_use" for b in content),
        refused=bool(answer.refusal),
        matched_stop=answer.matched_stop,
        stop_sequences=stop_sequences,
    )
    return {
        "id": message_id or new_message_id(),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": reason,
        "stop_sequence": sequence,
        "usage": usage_fields(tokens),
    }
