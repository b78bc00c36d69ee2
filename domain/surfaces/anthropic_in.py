"""Anthropic Messages requests as the chat body the relay routes (translation mode).

Used when the chosen channel does not speak Anthropic (anthropic_native.py covers the ones
that do). Two rules decide every field:

- What changes the answer and cannot be expressed in chat is refused with a 400 naming the
  Anthropic field (`param`): a server tool, a Files API reference or an MCP server dropped
  silently would hand the client a well-formed answer to a different question.
- What only tunes how Anthropic serves the request (cache_control, thinking, top_k,
  metadata, service_tier, context management, betas) is dropped. Claude Code sends these
  on every call and adds new ones with each release; failing on them would break it for
  every non-Anthropic model.

Claude Code's first system block is a per-request billing header (`x-anthropic-billing-
header: ...; cch=<nonce>`); it is meaningless to other models and, as the first bytes of
the prompt, defeats their prefix caching, so it is removed here (and kept in native mode).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from domain.errors import InvalidRequest
from domain.providers.tokens import (
    IMAGE_TOKENS,
    PER_MESSAGE_TOKENS,
    REPLY_PRIMING_TOKENS,
    estimate_prompt_tokens,
)

BILLING_HEADER_PREFIX = "x-anthropic-billing-header:"

# Tools Anthropic defines itself: server tools it runs (web search, code execution, ...)
# and client tools whose schema only Anthropic's models know (bash, text editor, computer,
# memory). Neither has an `input_schema` another model could be given.
_CUSTOM_TOOL_TYPES = frozenset({"custom"})


def _refuse(message: str, param: str) -> InvalidRequest:
    return InvalidRequest(message, param=param)


@dataclass(frozen=True)
class MessagesRequest:
    """A translated Messages request: the chat body plus what the way back needs."""

    chat: dict[str, Any]
    model: str
    stream: bool
    # The client enabled extended thinking: upstream reasoning text is rendered as
    # thinking blocks (otherwise it is left out, as Anthropic would).
    thinking: bool
    stop_sequences: tuple[str, ...]
    # Our estimate of the prompt (the relay's hold estimate), for `message_start`.
    input_tokens: int


def _number(value: Any, param: str) -> int | float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _refuse(f"`{param}` must be a number", param)
    return value


def check_envelope(body: Any, *, max_tokens_required: bool = True) -> dict[str, Any]:
    """What both modes need before routing: model, max_tokens, messages, stream."""
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise _refuse("`model` is required", "model")
    if max_tokens_required or "max_tokens" in body:
        cap = body.get("max_tokens")
        if not isinstance(cap, int) or isinstance(cap, bool) or cap < 1:
            raise _refuse("`max_tokens` is required and must be a positive integer", "max_tokens")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _refuse("`messages` must be a non-empty array", "messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise _refuse(f"messages[{i}].role must be 'user' or 'assistant'", "messages")
        content = message.get("content")
        if not isinstance(content, str | list):
            raise _refuse(f"messages[{i}].content must be a string or an array", "messages")
        if isinstance(content, list) and not all(
            isinstance(b, dict) and isinstance(b.get("type"), str) for b in content
        ):
            raise _refuse(f"messages[{i}].content blocks need a `type`", "messages")
    if "stream" in body and not isinstance(body["stream"], bool):
        raise _refuse("`stream` must be a boolean", "stream")
    return body


def _system_text(system: Any) -> str | None:
    if system is None:
        return None
    if isinstance(system, str):
        if system.startswith(BILLING_HEADER_PREFIX):
            system = system.partition("\n")[2]
        return system or None
    if not isinstance(system, list):
        raise _refuse("`system` must be a string or an array of text blocks", "system")
    texts: list[str] = []
    for block in system:
        if not isinstance(block, dict) or block.get("type") != "text":
            raise _refuse("`system` blocks must be text blocks", "system")
        text = block.get("text")
        if not isinstance(text, str):
            raise _refuse("`system` text blocks need a string `text`", "system")
        if text and not text.startswith(BILLING_HEADER_PREFIX):
            texts.append(text)
    return "\n\n".join(texts) or None


def _image_part(block: dict[str, Any]) -> dict[str, Any]:
    source = block.get("source")
    kind = source.get("type") if isinstance(source, dict) else None
    if kind == "base64" and isinstance(source, dict):
        media, data = source.get("media_type"), source.get("data")
        if not isinstance(media, str) or not isinstance(data, str) or not data:
            raise _refuse("base64 image sources need `media_type` and `data`", "messages")
        return {"type": "image_url", "image_url": {"url": f"data:{media};base64,{data}"}}
    if kind == "url" and isinstance(source, dict) and isinstance(source.get("url"), str):
        return {"type": "image_url", "image_url": {"url": source["url"]}}
    raise _refuse(
        f"image source {kind!r} is only available on Anthropic channels (send base64 or url)",
        "messages",
    )


def _document_parts(block: dict[str, Any]) -> list[dict[str, Any]]:
    source = block.get("source")
    kind = source.get("type") if isinstance(source, dict) else None
    if not isinstance(source, dict):
        raise _refuse("document blocks need a `source`", "messages")
    if kind == "text" and isinstance(source.get("data"), str):
        return [{"type": "text", "text": source["data"]}]
    if kind == "content" and isinstance(source.get("content"), str | list):
        return _user_parts(source["content"], where="document content")
    if kind == "base64" and source.get("media_type") == "application/pdf":
        data = source.get("data")
        if not isinstance(data, str) or not data:
            raise _refuse("base64 document sources need `data`", "messages")
        title = block.get("title")
        name = title if isinstance(title, str) and title else "document.pdf"
        file = {"filename": name, "file_data": f"data:application/pdf;base64,{data}"}
        return [{"type": "file", "file": file}]
    raise _refuse(
        f"document source {kind!r} is only available on Anthropic channels "
        "(send base64 PDF, text or content)",
        "messages",
    )


def _user_parts(content: Any, *, where: str = "message") -> list[dict[str, Any]]:
    """Text, image and document blocks as chat content parts."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    parts: list[dict[str, Any]] = []
    for block in content if isinstance(content, list) else ():
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text" and isinstance(block, dict):
            text = block.get("text")
            if not isinstance(text, str):
                raise _refuse("text blocks need a string `text`", "messages")
            if text:
                parts.append({"type": "text", "text": text})
        elif kind == "image" and isinstance(block, dict):
            parts.append(_image_part(block))
        elif kind == "document" and isinstance(block, dict):
            parts.extend(_document_parts(block))
        elif kind in ("thinking", "redacted_thinking"):
            continue  # only meaningful to the model that produced it
        else:
            raise _refuse(
                f"content block type {kind!r} in a {where} is only available on Anthropic channels",
                "messages",
            )
    return parts


def _tool_result(block: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One tool_result as a chat tool message, plus images to show in a user turn after it
    (chat tool messages carry text only)."""
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str) or not call_id:
        raise _refuse("tool_result blocks need a `tool_use_id`", "messages")
    parts = _user_parts(block.get("content") or "", where="tool_result")
    texts = [p["text"] for p in parts if p["type"] == "text"]
    others = [p for p in parts if p["type"] != "text"]
    text = "\n".join(texts)
    if block.get("is_error") is True:
        text = f"Error: {text}" if text else "Error"
    return {"role": "tool", "tool_call_id": call_id, "content": text}, others


def _arguments(value: Any) -> str:
    return json.dumps(value if value is not None else {}, ensure_ascii=False, separators=(",", ":"))


def _assistant_turn(content: Any) -> dict[str, Any] | None:
    if isinstance(content, str):
        return {"role": "assistant", "content": content} if content else None
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in content:
        kind = block.get("type")
        if kind == "text":
            text = block.get("text")
            if not isinstance(text, str):
                raise _refuse("text blocks need a string `text`", "messages")
            texts.append(text)
        elif kind == "tool_use":
            ident, name = block.get("id"), block.get("name")
            if not isinstance(ident, str) or not ident or not isinstance(name, str) or not name:
                raise _refuse("tool_use blocks need an `id` and a `name`", "messages")
            fn = {"name": name, "arguments": _arguments(block.get("input"))}
            calls.append({"id": ident, "type": "function", "function": fn})
        elif kind in ("thinking", "redacted_thinking"):
            continue
        else:
            raise _refuse(
                f"assistant content block type {kind!r} is only available on Anthropic channels",
                "messages",
            )
    text = "".join(texts)
    if not text and not calls:
        return None
    turn: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        turn["tool_calls"] = calls
    return turn


def _user_turns(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    results: list[dict[str, Any]] = []
    attachments: list[dict[str, Any]] = []
    rest: list[dict[str, Any]] = []
    for block in content:
        if block.get("type") == "tool_result":
            message, extra = _tool_result(block)
            results.append(message)
            attachments.extend(extra)
        else:
            rest.append(block)
    parts = attachments + _user_parts(rest)
    turns = list(results)  # tool answers first: chat wants them right after the call
    if len(parts) == 1 and parts[0]["type"] == "text":
        turns.append({"role": "user", "content": parts[0]["text"]})
    elif parts:
        turns.append({"role": "user", "content": parts})
    return turns


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    system = _system_text(body.get("system"))
    if system:
        out.append({"role": "system", "content": system})
    for message in body["messages"]:
        if message["role"] == "assistant":
            turn = _assistant_turn(message["content"])
            if turn is not None:
                out.append(turn)
        else:
            out.extend(_user_turns(message["content"]))
    return out


def _tools(raw: Any) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise _refuse("`tools` must be an array", "tools")
    tools: list[dict[str, Any]] = []
    for tool in raw:
        if not isinstance(tool, dict):
            raise _refuse("each tool must be an object", "tools")
        kind = tool.get("type")
        schema = tool.get("input_schema")
        if kind is not None and kind not in _CUSTOM_TOOL_TYPES and schema is None:
            raise _refuse(
                f"tool type {kind!r} is defined and run by Anthropic; it is only available "
                "on Anthropic channels",
                "tools",
            )
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            raise _refuse("each tool needs a `name`", "tools")
        if not isinstance(schema, dict):
            raise _refuse(f"tool {name!r} needs an `input_schema` object", "tools")
        fn: dict[str, Any] = {"name": name, "parameters": schema}
        if isinstance(tool.get("description"), str):
            fn["description"] = tool["description"]
        if tool.get("strict") is True:
            fn["strict"] = True
        tools.append({"type": "function", "function": fn})
    return tools


def _tool_choice(raw: Any) -> tuple[Any, bool]:
    """(chat tool_choice or None, parallel calls allowed)."""
    if raw is None:
        return None, True
    if not isinstance(raw, dict):
        raise _refuse("`tool_choice` must be an object", "tool_choice")
    parallel = raw.get("disable_parallel_tool_use") is not True
    kind = raw.get("type")
    if kind == "auto":
        return "auto", parallel
    if kind == "any":
        return "required", parallel
    if kind == "none":
        return "none", parallel
    if kind == "tool":
        name = raw.get("name")
        if not isinstance(name, str) or not name:
            raise _refuse("tool_choice of type 'tool' needs a `name`", "tool_choice")
        return {"type": "function", "function": {"name": name}}, parallel
    raise _refuse(f"tool_choice type {kind!r} is not supported", "tool_choice")


def _response_format(body: dict[str, Any]) -> dict[str, Any] | None:
    config = body.get("output_config")
    fmt = config.get("format") if isinstance(config, dict) else None
    if fmt is None:
        return None
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        raise _refuse("output_config.format must be of type 'json_schema'", "output_config")
    schema = fmt.get("schema")
    if not isinstance(schema, dict):
        raise _refuse("output_config.format needs a `schema` object", "output_config")
    return {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": schema, "strict": True},
    }


def _stop_sequences(raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(s, str) for s in raw):
        raise _refuse("`stop_sequences` must be an array of strings", "stop_sequences")
    return tuple(s for s in raw if s)


def thinking_enabled(body: dict[str, Any]) -> bool:
    thinking = body.get("thinking")
    return isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")


def messages_to_chat(body: Any) -> MessagesRequest:
    """A Messages request as a chat body; refusals are `InvalidRequest` with `param`."""
    body = check_envelope(body)
    if body.get("mcp_servers"):
        raise _refuse("MCP servers are only available on Anthropic channels", "mcp_servers")
    chat: dict[str, Any] = {
        "model": body["model"],
        "messages": _messages(body),
        "max_tokens": body["max_tokens"],
    }
    for name in ("temperature", "top_p"):
        value = _number(body.get(name), name)
        if value is not None:
            chat[name] = value
    stops = _stop_sequences(body.get("stop_sequences"))
    if stops:
        chat["stop"] = list(stops)
    tools = _tools(body.get("tools"))
    choice, parallel = _tool_choice(body.get("tool_choice"))
    if tools:
        chat["tools"] = tools
        if choice is not None:
            chat["tool_choice"] = choice
        if not parallel and choice != "none":
            chat["parallel_tool_calls"] = False
    fmt = _response_format(body)
    if fmt is not None:
        chat["response_format"] = fmt
    stream = body.get("stream") is True
    if stream:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return MessagesRequest(
        chat=chat,
        model=body["model"],
        stream=stream,
        thinking=thinking_enabled(body),
        stop_sequences=stops,
        input_tokens=estimate_prompt_tokens(chat),
    )


def _raw_estimate(body: dict[str, Any]) -> int:
    """For bodies only an Anthropic channel can serve: the same ratios as tokens.py over
    the JSON the model reads, images at their flat price."""
    size = 0
    images = 0
    stack: list[Any] = [body.get("system"), body.get("tools"), body["messages"]]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            size += len(node.encode("utf-8", "surrogatepass"))
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            if node.get("type") == "image":
                images += 1
                continue
            stack.extend(v for k, v in node.items() if k not in ("cache_control", "type"))
    return (
        -(-size // 3)
        + PER_MESSAGE_TOKENS * len(body["messages"])
        + REPLY_PRIMING_TOKENS
        + IMAGE_TOKENS * images
    )


def count_tokens(body: Any) -> int:
    """`/v1/messages/count_tokens`: the prompt estimate the relay holds credits for.

    The translated chat body is counted exactly as the relay will count it; a body that only
    an Anthropic channel could serve (server tools, Files API sources) is still counted, on
    its raw JSON, rather than refused: counting is not serving.
    """
    body = check_envelope(body, max_tokens_required=False)
    try:
        probe = {**body, "max_tokens": 1, "stream": False}
        return messages_to_chat(probe).input_tokens
    except InvalidRequest:
        return _raw_estimate(body)
