"""Realistic wire data for the surface tests: OpenAI chat answers and chunk streams as the
relay yields them (OpenAI's own shapes, `usage: null` on every chunk and the counts on a
last, choice-less one), and an Anthropic request shaped like Claude Code's."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Iterable
from typing import Any

from domain.providers.base import UpstreamError

CHAT_ID = "chatcmpl-AbC123xyz"
CREATED = 1731000000
MODEL = "gpt-4o-2024-08-06"


def chunk(delta: dict[str, Any], finish: str | None = None, **choice_extra: Any) -> dict[str, Any]:
    return {
        "id": CHAT_ID,
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": MODEL,
        "system_fingerprint": "fp_f33640a400",
        "choices": [
            {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish, **choice_extra}
        ],
        "usage": None,
    }


def role_chunk() -> dict[str, Any]:
    return chunk({"role": "assistant", "content": "", "refusal": None})


def text_chunks(*pieces: str) -> list[dict[str, Any]]:
    return [chunk({"content": piece}) for piece in pieces]


def tool_chunks(
    index: int, call_id: str | None, name: str | None, *args: str
) -> list[dict[str, Any]]:
    """One tool call as OpenAI streams it: id, type and name first, then argument pieces."""
    first: dict[str, Any] = {"index": index, "type": "function", "function": {"arguments": ""}}
    if call_id is not None:
        first["id"] = call_id
    if name is not None:
        first["function"]["name"] = name
    out = [chunk({"tool_calls": [first]})]
    out += [chunk({"tool_calls": [{"index": index, "function": {"arguments": a}}]}) for a in args]
    return out


def finish_chunk(reason: str, **choice_extra: Any) -> dict[str, Any]:
    return chunk({}, reason, **choice_extra)


def usage_chunk(
    prompt: int, completion: int, *, cached: int = 0, reasoning: int = 0
) -> dict[str, Any]:
    return {
        "id": CHAT_ID,
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": MODEL,
        "system_fingerprint": "fp_f33640a400",
        "choices": [],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": reasoning,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
    }


def completion(
    content: str | None = "",
    *,
    tool_calls: list[tuple[str, str, str]] = (),  # type: ignore[assignment]
    finish: str = "stop",
    prompt: int = 120,
    output: int = 30,
    cached: int = 0,
    reasoning: int = 0,
    **message_extra: Any,
) -> dict[str, Any]:
    """A chat.completion body as the relay returns it."""
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
    if tool_calls:
        message["tool_calls"] = [
            {"id": ident, "type": "function", "function": {"name": name, "arguments": args}}
            for ident, name, args in tool_calls
        ]
    message.update(message_extra)
    return {
        "id": CHAT_ID,
        "object": "chat.completion",
        "created": CREATED,
        "model": MODEL,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": usage_chunk(prompt, output, cached=cached, reasoning=reasoning)["usage"],
        "system_fingerprint": "fp_f33640a400",
    }


async def aiter(
    items: Iterable[dict[str, Any]], fail: str | None = None
) -> AsyncIterator[dict[str, Any]]:
    """Chunks as the relay's stream yields them; `fail` raises an upstream error after."""
    for item in items:
        yield copy.deepcopy(item)
    if fail is not None:
        raise UpstreamError("dropped", fail, retryable=False)


WEATHER_ARGS = '{"location": "Paris, France", "unit": "celsius"}'
TIME_ARGS = '{"timezone": "Europe/Paris"}'

# A stream with interleaved kinds: text, two parallel tool calls, usage only at the end.
TOOL_STREAM: list[dict[str, Any]] = [
    role_chunk(),
    *text_chunks("Let me ", "check both."),
    *tool_chunks(
        0, "call_W8xK2", "get_weather", '{"location": ', '"Paris, France", ', '"unit": "celsius"}'
    ),
    *tool_chunks(1, "call_T4mQ9", "get_time", '{"timezone": ', '"Europe/Paris"}'),
    finish_chunk("tool_calls"),
    usage_chunk(412, 61, cached=128),
]

PNG_B64 = (  # a 1x1 PNG
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6"
    "kgAAAABJRU5ErkJggg=="
)

CLAUDE_CODE_REQUEST: dict[str, Any] = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 32000,
    "temperature": 1,
    "stream": True,
    "metadata": {"user_id": "user_5f2c_account__session_0b6c1d0e-4c31-4a55-9d7c-3e1b2a4c5d6e"},
    "thinking": {"type": "enabled", "budget_tokens": 10000},
    "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
    "output_config": {"effort": "high"},
    "system": [
        {
            "type": "text",
            "text": "x-anthropic-billing-header: cc_version=2.1.117.48f; "
            "cc_entrypoint=cli; cch=71fea;",
        },
        {
            "type": "text",
            "text": "You are Claude Code, Anthropic's official CLI for Claude.",
            "cache_control": {"type": "ephemeral"},
        },
        {
            "type": "text",
            "text": "You are an interactive CLI tool that helps users "
            "with software engineering tasks.",
            "cache_control": {"type": "ephemeral"},
        },
    ],
    "tools": [
        {
            "name": "Bash",
            "description": "Executes a given bash command.",
            "input_schema": {
                "type": "object",
                "properties": {"command": {"type": "string"}, "timeout": {"type": "number"}},
                "required": ["command"],
                "additionalProperties": False,
                "$schema": "http://json-schema.org/draft-07/schema#",
            },
        },
        {
            "name": "Read",
            "description": "Reads a file from the local filesystem.",
            "input_schema": {
                "type": "object",
                "properties": {"file_path": {"type": "string"}},
                "required": ["file_path"],
            },
            "cache_control": {"type": "ephemeral"},
        },
    ],
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "<system-reminder>This is a reminder.</system-reminder>"},
                {"type": "text", "text": "What is in the README and the logo?"},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {
                    "type": "thinking",
                    "thinking": "I should read both.",
                    "signature": "EqQBCkYIBxgCKkB",
                },
                {"type": "text", "text": "I'll read both files."},
                {
                    "type": "tool_use",
                    "id": "toolu_01A09q90qw90lq917835lq9",
                    "name": "Read",
                    "input": {"file_path": "/repo/README.md"},
                },
                {
                    "type": "tool_use",
                    "id": "toolu_01B7xYz",
                    "name": "Read",
                    "input": {"file_path": "/repo/logo.png"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_01A09q90qw90lq917835lq9",
                    "content": "# Project\nA gateway.",
                },
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_01B7xYz",
                    "content": [
                        {"type": "text", "text": "Read image (1x1)"},
                        {
                            "type": "image",
                            "source": {
                                "type": "base64",
                                "media_type": "image/png",
                                "data": PNG_B64,
                            },
                        },
                    ],
                },
                {
                    "type": "text",
                    "text": "Summarize please.",
                    "cache_control": {"type": "ephemeral"},
                },
            ],
        },
    ],
}
