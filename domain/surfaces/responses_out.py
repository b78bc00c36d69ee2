"""Chat answers as OpenAI Response objects (translation mode).

A Response lists its output as items in the order they were produced: one `message` item
for the text (with a `refusal` part when the model refused) and one `function_call` item
per tool call, whose `call_id` is the chat tool call id unchanged, since the client answers
with `function_call_output` items that name it. Reasoning text from the upstream is not
rendered as `reasoning` items: OpenAI's are opaque to clients and cannot be replayed to
another model, and their token count survives in `output_tokens_details`.

A cut answer is `incomplete` with `incomplete_details.reason` (`max_output_tokens` or
`content_filter`), exactly as OpenAI reports it; its partial output is still returned.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from domain.providers.base import Usage
from domain.surfaces.chat_read import Tokens, ToolCall, billed_tokens, read_completion
from domain.surfaces.responses_in import ResponsesRequest

_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def status_for(finish_reason: str | None) -> tuple[str, dict[str, Any] | None]:
    """(status, incomplete_details) for a chat finish reason."""
    reason = _INCOMPLETE.get(finish_reason or "")
    if reason is None:
        return "completed", None
    return "incomplete", {"reason": reason}


def usage_fields(tokens: Tokens) -> dict[str, Any]:
    return {
        "input_tokens": tokens.prompt,
        "input_tokens_details": {
            "cached_tokens": tokens.cached,
            "cache_write_tokens": tokens.cache_write,
        },
        "output_tokens": tokens.completion,
        "output_tokens_details": {"reasoning_tokens": tokens.reasoning},
        "total_tokens": tokens.total,
    }


def text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def refusal_part(text: str) -> dict[str, Any]:
    return {"type": "refusal", "refusal": text}


def message_item(
    item_id: str, content: list[dict[str, Any]], status: str = "completed"
) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": content,
    }


def call_item(
    item_id: str, call: ToolCall, status: str = "completed", arguments: str | None = None
) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "function_call",
        "status": status,
        "call_id": call.id,
        "name": call.name,
        "arguments": call.arguments if arguments is None else arguments,
    }


def response_object(
    request: ResponsesRequest,
    *,
    response_id: str,
    created_at: int,
    status: str,
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None,
    incomplete_details: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The Response envelope around `output`, echoing the request as OpenAI does."""
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "background": False,
        "error": error,
        "incomplete_details": incomplete_details,
        "model": request.model,
        "output": output,
        "previous_response_id": None,
        "truncation": "disabled",
        "usage": usage,
        **request.echo,
    }


def response_from_chat(
    body: dict[str, Any],
    request: ResponsesRequest,
    *,
    usage: Usage | None = None,
    response_id: str | None = None,
) -> dict[str, Any]:
    """The relay's chat completion as a Response. `usage` (the relay's billed usage) wins
    over the body's when given."""
    answer = read_completion(body)
    tokens = billed_tokens(usage, answer.tokens) or answer.tokens
    status, details = status_for(answer.finish_reason)
    item_status = "incomplete" if status == "incomplete" else "completed"
    output: list[dict[str, Any]] = []
    content: list[dict[str, Any]] = []
    if answer.text or not (answer.tool_calls or answer.refusal):
        content.append(text_part(answer.text))
    if answer.refusal:
        content.append(refusal_part(answer.refusal))
    if content:
        output.append(message_item(new_id("msg"), content, item_status))
    for call in answer.tool_calls:
        output.append(call_item(new_id("fc"), call, item_status))
    return response_object(
        request,
        response_id=response_id or new_id("resp"),
        created_at=answer.created or int(time.time()),
        status=status,
        output=output,
        usage=usage_fields(tokens),
        incomplete_details=details,
    )
