"""The fake provider's `POST /v1/responses`: Response objects and typed SSE events shaped as
OpenAI sends them (ids `resp_…`/`msg_…`, `sequence_number` from 0, usage with
`input_tokens_details` and `output_tokens_details`), built from the same deterministic reply
as the fake's chat completions (`w0 w1 …`).

Usage: input tokens = the words of `instructions` and of every input text; output tokens =
the reply's words. With a `prompt_cache_key`, 2 of the input tokens are reported cached.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

Obj = dict[str, Any]


def _words(value: Any) -> int:
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, list):
        total = 0
        for item in value:
            if isinstance(item, dict):
                total += _words(item.get("content")) + _words(item.get("text"))
                total += (
                    _words(item.get("output")) if item.get("type") == "function_call_output" else 0
                )
        return total
    return 0


def input_tokens(body: Obj) -> int:
    return max(1, _words(body.get("instructions")) + _words(body.get("input")))


def usage(body: Obj, output: int) -> Obj:
    prompt = input_tokens(body)
    cached = min(2, prompt) if isinstance(body.get("prompt_cache_key"), str) else 0
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + output,
    }


def _tools(body: Obj) -> list[Obj]:
    tools = body.get("tools")
    return [t for t in tools if isinstance(t, dict)] if isinstance(tools, list) else []


class ResponseBuilder:
    """One Response for one request: `answer()` for JSON, `events()` for the stream."""

    def __init__(self, body: Obj, pieces: list[str], capped: bool) -> None:
        self.body = body
        self.pieces = pieces
        self.capped = capped
        self.id = f"resp_{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.message_id = f"msg_{uuid.uuid4().hex}"
        tools = [t for t in _tools(body) if t.get("type") == "function"]
        # A tool-using request gets a call of its first function tool instead of text.
        self.call = tools[0] if tools and body.get("tool_choice") != "none" else None

    def _shell(self, status: str, output: list[Obj], usage_: Obj | None) -> Obj:
        body = self.body
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created,
            "status": status,
            "background": False,
            "error": None,
            "incomplete_details": {"reason": "max_output_tokens"}
            if status == "incomplete"
            else None,
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "model": body.get("model", ""),
            "output": output,
            "parallel_tool_calls": True,
            "previous_response_id": body.get("previous_response_id"),
            "reasoning": {"effort": None, "summary": None},
            "store": body.get("store", True),
            "temperature": 1.0,
            "text": {"format": {"type": "text"}},
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": _tools(body),
            "top_p": 1.0,
            "truncation": "disabled",
            "usage": usage_,
            "user": None,
            "metadata": body.get("metadata") or {},
        }

    def _message(self, text: str, status: str) -> Obj:
        part = {"type": "output_text", "text": text, "annotations": []}
        return {
            "id": self.message_id, "type": "message", "status": status, "role": "assistant",
            "content": [part] if status == "completed" else [],
        }  # fmt: skip

    def _function_call(self, status: str, arguments: str) -> Obj:
        assert self.call is not None
        return {
            "id": f"fc_{self.message_id[4:]}", "type": "function_call", "status": status,
            "call_id": f"call_{self.message_id[4:28]}", "name": self.call.get("name", "f"),
            "arguments": arguments,
        }  # fmt: skip

    @property
    def status(self) -> str:
        return "incomplete" if self.capped and self.call is None else "completed"

    def _arguments(self) -> str:
        return '{"city": "Paris"}'

    def final(self) -> Obj:
        text = "".join(self.pieces)
        if self.call is not None:
            item = self._function_call("completed", self._arguments())
            out = 6
        else:
            item = self._message(text, "completed")
            out = len(self.pieces)
        return self._shell(self.status, [item], usage(self.body, out))

    def answer(self) -> Obj:
        return self.final()

    def events(self) -> list[tuple[str, Obj]]:
        seq = iter(range(10_000))
        out: list[tuple[str, Obj]] = []

        def add(kind: str, **fields: Any) -> None:
            out.append((kind, {"type": kind, "sequence_number": next(seq), **fields}))

        add("response.created", response=self._shell("in_progress", [], None))
        add("response.in_progress", response=self._shell("in_progress", [], None))
        final = self.final()
        item = final["output"][0]
        if self.call is not None:
            add("response.output_item.added", output_index=0,
                item=self._function_call("in_progress", ""))  # fmt: skip
            args = self._arguments()
            for piece in (args[:8], args[8:]):
                add("response.function_call_arguments.delta", item_id=item["id"],
                    output_index=0, delta=piece)  # fmt: skip
            add("response.function_call_arguments.done", item_id=item["id"], output_index=0,
                arguments=args)  # fmt: skip
        else:
            add("response.output_item.added", output_index=0,
                item=self._message("", "in_progress"))  # fmt: skip
            empty = {"type": "output_text", "text": "", "annotations": []}
            add("response.content_part.added", item_id=self.message_id, output_index=0,
                content_index=0, part=empty)  # fmt: skip
            for piece in self.pieces:
                add("response.output_text.delta", item_id=self.message_id, output_index=0,
                    content_index=0, delta=piece, logprobs=[])  # fmt: skip
            text = "".join(self.pieces)
            add("response.output_text.done", item_id=self.message_id, output_index=0,
                content_index=0, text=text, logprobs=[])  # fmt: skip
            add("response.content_part.done", item_id=self.message_id, output_index=0,
                content_index=0, part=item["content"][0])  # fmt: skip
        add("response.output_item.done", output_index=0, item=item)
        add(f"response.{final['status']}", response=final)
        return out


def not_found_previous(previous: str) -> Obj:
    return {
        "error": {
            "message": f"Previous response with id '{previous}' not found.",
            "type": "invalid_request_error",
            "param": "previous_response_id",
            "code": "previous_response_not_found",
        }
    }
