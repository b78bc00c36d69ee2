"""OpenAI Responses requests as the chat body the relay routes (translation mode).

Translation serves upstreams that speak chat only. Stored state cannot be translated:
0xinf keeps no responses, so `store: true`, `previous_response_id`, `conversation`,
`background` and item references are refused with a 400 naming the field, and the client
resends its history itself (the usual stateless use of the API). Hosted tools (web search,
file search, code interpreter, MCP, ...) run inside OpenAI and have no chat equivalent;
they are refused too rather than silently dropped.

Fields that only shape what comes back are mapped where chat has them (`text.format`,
`reasoning.effort`, `max_output_tokens`) and dropped where absence is visible and harmless
(`include`, `truncation`, `text.verbosity`, `stream_options`). `top_logprobs` is refused:
the answer would silently lack what was asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from domain.errors import InvalidRequest

_ROLES = frozenset({"user", "assistant", "system", "developer"})
_PASSED_STRINGS = ("user", "safety_identifier", "prompt_cache_key", "service_tier")


def _refuse(message: str, param: str) -> InvalidRequest:
    return InvalidRequest(message, param=param)


@dataclass(frozen=True)
class ResponsesRequest:
    """A translated Responses request: the chat body plus what the Response echoes."""

    chat: dict[str, Any]
    model: str
    stream: bool
    echo: dict[str, Any]  # request fields the Response object repeats back


def _refuse_state(body: dict[str, Any]) -> None:
    if body.get("store") is True:
        raise _refuse(
            "`store` is not supported: 0xinf keeps no responses; send store=false "
            "(or leave it out) and resend the conversation with each request",
            "store",
        )
    for name in ("previous_response_id", "conversation", "prompt"):
        if body.get(name) is not None:
            raise _refuse(
                f"`{name}` is not supported: 0xinf keeps no stored responses, "
                "conversations or prompts; send the full input instead",
                name,
            )
    if body.get("background") is True:
        raise _refuse("`background` responses are not supported", "background")
    top = body.get("top_logprobs")
    if top is not None and top != 0:
        raise _refuse("`top_logprobs` is not supported on this model's channels", "top_logprobs")


def _image(part: dict[str, Any]) -> dict[str, Any]:
    url = part.get("image_url")
    if not isinstance(url, str) or not url:
        raise _refuse("input_image parts need an `image_url` (file_id is not supported)", "input")
    image: dict[str, Any] = {"url": url}
    if part.get("detail") in ("low", "high", "auto"):
        image["detail"] = part["detail"]
    return {"type": "image_url", "image_url": image}


def _file(part: dict[str, Any]) -> dict[str, Any]:
    data = part.get("file_data")
    if not isinstance(data, str) or not data:
        raise _refuse(
            "input_file parts need `file_data` (file_id and file_url are not supported)", "input"
        )
    file: dict[str, Any] = {"file_data": data}
    if isinstance(part.get("filename"), str):
        file["filename"] = part["filename"]
    return {"type": "file", "file": file}


def _parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise _refuse("message content must be a string or an array of parts", "input")
    parts: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text") and isinstance(part, dict):
            text = part.get("text")
            if not isinstance(text, str):
                raise _refuse(f"{kind} parts need a string `text`", "input")
            parts.append({"type": "text", "text": text})
        elif kind == "input_image" and isinstance(part, dict):
            parts.append(_image(part))
        elif kind == "input_file" and isinstance(part, dict):
            parts.append(_file(part))
        elif kind == "refusal":
            continue  # an earlier refusal carries nothing to replay
        else:
            raise _refuse(f"content part type {kind!r} is not supported", "input")
    return parts


def _text_only(parts: list[dict[str, Any]], role: str) -> str:
    if any(p["type"] != "text" for p in parts):
        raise _refuse(f"{role} messages may only contain text", "input")
    return "".join(p["text"] for p in parts)


class _History:
    """Builds chat messages from input items; function calls join the assistant turn."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def message(self, item: dict[str, Any]) -> None:
        role = item.get("role")
        if role not in _ROLES:
            raise _refuse(f"input message role {role!r} is not supported", "input")
        parts = _parts(item.get("content"))
        if role in ("system", "developer"):
            # `system`, which every chat server knows; OpenAI treats both alike.
            self.messages.append({"role": "system", "content": _text_only(parts, str(role))})
        elif role == "assistant":
            self.messages.append({"role": role, "content": _text_only(parts, "assistant")})
        elif len(parts) == 1 and parts[0]["type"] == "text":
            self.messages.append({"role": "user", "content": parts[0]["text"]})
        else:
            self.messages.append({"role": "user", "content": parts})

    def function_call(self, item: dict[str, Any]) -> None:
        call_id, name = item.get("call_id"), item.get("name")
        arguments = item.get("arguments", "")
        if not isinstance(call_id, str) or not call_id or not isinstance(name, str) or not name:
            raise _refuse("function_call items need `call_id` and `name`", "input")
        if not isinstance(arguments, str):
            raise _refuse("function_call `arguments` must be a JSON string", "input")
        call = {
            "id": call_id,
            "type": "function",
            "function": {"name": name, "arguments": arguments},
        }
        last = self.messages[-1] if self.messages else None
        if last is not None and last["role"] == "assistant":
            last.setdefault("tool_calls", []).append(call)
            if last.get("content") == "":
                last["content"] = None
        else:
            self.messages.append({"role": "assistant", "content": None, "tool_calls": [call]})

    def function_output(self, item: dict[str, Any]) -> None:
        call_id = item.get("call_id")
        if not isinstance(call_id, str) or not call_id:
            raise _refuse("function_call_output items need a `call_id`", "input")
        output = item.get("output")
        if isinstance(output, str):
            self.messages.append({"role": "tool", "tool_call_id": call_id, "content": output})
            return
        parts = _parts(output if output is not None else "")
        texts = "".join(p["text"] for p in parts if p["type"] == "text")
        self.messages.append({"role": "tool", "tool_call_id": call_id, "content": texts})
        others = [p for p in parts if p["type"] != "text"]
        if others:  # chat tool messages carry text only: show the rest in a user turn
            self.messages.append({"role": "user", "content": others})


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    history = _History()
    instructions = body.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, str):
            raise _refuse("`instructions` must be a string", "instructions")
        if instructions:
            history.messages.append({"role": "system", "content": instructions})
    raw = body.get("input")
    if isinstance(raw, str):
        raw = [{"role": "user", "content": raw}]
    if not isinstance(raw, list) or not raw:
        raise _refuse("`input` must be a string or a non-empty array of items", "input")
    for item in raw:
        if not isinstance(item, dict):
            raise _refuse("each input item must be an object", "input")
        kind = item.get("type", "message")
        if kind == "message":
            history.message(item)
        elif kind == "function_call":
            history.function_call(item)
        elif kind == "function_call_output":
            history.function_output(item)
        elif kind == "reasoning":
            continue  # reasoning items only mean something to the model that wrote them
        elif kind == "item_reference":
            raise _refuse(
                "item references need stored responses, which 0xinf keeps none of", "input"
            )
        else:
            raise _refuse(f"input item type {kind!r} is not supported", "input")
    return history.messages


def _tools(raw: Any) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise _refuse("`tools` must be an array", "tools")
    tools: list[dict[str, Any]] = []
    for tool in raw:
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind != "function" or not isinstance(tool, dict):
            raise _refuse(
                f"tool type {kind!r} runs inside OpenAI and is not available here; "
                "only function tools are",
                "tools",
            )
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            raise _refuse("function tools need a `name`", "tools")
        fn: dict[str, Any] = {"name": name}
        for key in ("description", "parameters", "strict"):
            if tool.get(key) is not None:
                fn[key] = tool[key]
        tools.append({"type": "function", "function": fn})
    return tools


def _tool_choice(raw: Any) -> Any:
    if raw is None or raw in ("auto", "none", "required"):
        return raw
    if isinstance(raw, dict) and raw.get("type") == "function":
        name = raw.get("name")
        if isinstance(name, str) and name:
            return {"type": "function", "function": {"name": name}}
        raise _refuse("a function tool_choice needs a `name`", "tool_choice")
    kind = raw.get("type") if isinstance(raw, dict) else raw
    raise _refuse(f"tool_choice {kind!r} is not supported", "tool_choice")


def _response_format(text: Any) -> dict[str, Any] | None:
    if text is None:
        return None
    if not isinstance(text, dict):
        raise _refuse("`text` must be an object", "text")
    fmt = text.get("format")
    if fmt is None:
        return None
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema" and isinstance(fmt, dict):
        name, schema = fmt.get("name"), fmt.get("schema")
        if not isinstance(name, str) or not name or not isinstance(schema, dict):
            raise _refuse("a json_schema format needs a `name` and a `schema`", "text.format")
        spec: dict[str, Any] = {"name": name, "schema": schema}
        for key in ("strict", "description"):
            if fmt.get(key) is not None:
                spec[key] = fmt[key]
        return {"type": "json_schema", "json_schema": spec}
    raise _refuse(f"text.format type {kind!r} is not supported", "text.format")


def _positive(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise _refuse(f"`{name}` must be a positive integer", name)
    return value


def responses_to_chat(body: Any) -> ResponsesRequest:
    """A Responses request as a chat body; refusals are `InvalidRequest` with `param`."""
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise _refuse("`model` is required", "model")
    if "stream" in body and not isinstance(body["stream"], bool):
        raise _refuse("`stream` must be a boolean", "stream")
    _refuse_state(body)
    chat: dict[str, Any] = {"model": model, "messages": _messages(body)}
    cap = _positive(body, "max_output_tokens")
    if cap is not None:
        chat["max_tokens"] = cap
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise _refuse(f"`{name}` must be a number", name)
            chat[name] = value
    tools = _tools(body.get("tools"))
    choice = _tool_choice(body.get("tool_choice"))
    if tools:
        chat["tools"] = tools
        if choice is not None:
            chat["tool_choice"] = choice
        if isinstance(body.get("parallel_tool_calls"), bool):
            chat["parallel_tool_calls"] = body["parallel_tool_calls"]
    fmt = _response_format(body.get("text"))
    if fmt is not None:
        chat["response_format"] = fmt
    reasoning = body.get("reasoning")
    effort = reasoning.get("effort") if isinstance(reasoning, dict) else None
    if isinstance(effort, str) and effort:
        chat["reasoning_effort"] = effort
    for name in _PASSED_STRINGS:
        if isinstance(body.get(name), str):
            chat[name] = body[name]
    stream = body.get("stream") is True
    if stream:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    text: dict[str, Any] = body["text"] if isinstance(body.get("text"), dict) else {}
    echo = {
        "instructions": body.get("instructions"),
        "max_output_tokens": cap,
        "metadata": body.get("metadata") if isinstance(body.get("metadata"), dict) else {},
        "parallel_tool_calls": body.get("parallel_tool_calls", True) is not False,
        "temperature": chat.get("temperature"),
        "top_p": chat.get("top_p"),
        "tool_choice": body.get("tool_choice") or "auto",
        "tools": [t for t in body.get("tools") or []],
        "text": {"format": text.get("format") or {"type": "text"}},
        "reasoning": {"effort": effort, "summary": None},
        "user": body.get("user") if isinstance(body.get("user"), str) else None,
    }
    return ResponsesRequest(chat=chat, model=model, stream=stream, echo=echo)
