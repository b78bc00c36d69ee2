"""Request body schemas of the translated surfaces, for the OpenAPI document only.

The bodies are read by hand (`domain.surfaces`), so fields these schemas do not name still
pass to the translation, which decides; the schemas say what a client must send and what
the common fields are, so `/docs` can build a request."""

from __future__ import annotations

from typing import Any

from domain.inputs import MODEL_NAME_MAX, NO_NUL

MODEL: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": MODEL_NAME_MAX,
    "pattern": NO_NUL,
}
POSITIVE: dict[str, Any] = {"type": "integer", "minimum": 1}
STREAM_OPTIONS: dict[str, Any] = {
    "type": "object",
    "properties": {"include_usage": {"type": "boolean"}},
}


def json_body(schema: dict[str, Any], example: dict[str, Any]) -> dict[str, Any]:
    return {
        "required": True,
        "content": {"application/json": {"schema": schema, "example": example}},
    }


EMBEDDINGS_BODY = json_body(
    {
        "type": "object",
        "required": ["model", "input"],
        "properties": {
            "model": MODEL,
            "input": {
                "oneOf": [
                    {"type": "string", "minLength": 1},
                    {"type": "array", "minItems": 1, "maxItems": 2048,
                     "items": {"type": "string", "minLength": 1}},
                    {"type": "array", "minItems": 1, "items": {"type": "integer"}},
                    {"type": "array", "minItems": 1,
                     "items": {"type": "array", "minItems": 1, "items": {"type": "integer"}}},
                ]
            },
            "encoding_format": {"type": "string", "enum": ["float", "base64"]},
            "dimensions": {"type": "integer", "minimum": 1, "maximum": 65536},
            "user": {"type": "string"},
        },
    },
    {"model": "demo-embedding", "input": "The food was delicious."},
)  # fmt: skip

COMPLETIONS_BODY = json_body(
    {
        "type": "object",
        "required": ["model", "prompt"],
        "properties": {
            "model": MODEL,
            "prompt": {"oneOf": [{"type": "string"},
                                 {"type": "array", "minItems": 1, "maxItems": 1,
                                  "items": {"type": "string"}}]},
            "max_tokens": POSITIVE,
            "temperature": {"type": "number"},
            "top_p": {"type": "number"},
            "n": POSITIVE,
            "stop": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
            "stream": {"type": "boolean"},
            "stream_options": STREAM_OPTIONS,
        },
    },
    {"model": "demo", "prompt": "Say this is a test", "max_tokens": 16},
)  # fmt: skip

RESPONSES_BODY = json_body(
    {
        "type": "object",
        "required": ["model", "input"],
        "properties": {
            "model": MODEL,
            "input": {"oneOf": [{"type": "string"},
                                {"type": "array", "items": {"type": "object"}}]},
            "instructions": {"type": "string"},
            "max_output_tokens": POSITIVE,
            "tools": {"type": "array", "items": {"type": "object"}},
            "tool_choice": {},
            "temperature": {"type": "number"},
            "top_p": {"type": "number"},
            "text": {"type": "object"},
            "reasoning": {"type": "object"},
            "stream": {"type": "boolean"},
            "store": {"type": "boolean",
                      "description": "`true` only when every channel of the model speaks "
                                     "the Responses API natively (0xinf keeps no responses)"},
            "previous_response_id": {"type": "string",
                                     "description": "as `store: true`: native channels only"},
            "metadata": {"type": "object"},
        },
    },
    {"model": "demo", "input": "Tell me a three sentence bedtime story.", "store": False},
)  # fmt: skip

_ANTHROPIC_MESSAGES: dict[str, Any] = {
    "type": "array",
    "minItems": 1,
    "items": {
        "type": "object",
        "required": ["role", "content"],
        "properties": {
            "role": {"type": "string", "enum": ["user", "assistant"]},
            "content": {"oneOf": [{"type": "string"},
                                  {"type": "array", "items": {"type": "object"}}]},
        },
    },
}  # fmt: skip
_ANTHROPIC_COMMON: dict[str, Any] = {
    "model": MODEL,
    "messages": _ANTHROPIC_MESSAGES,
    "system": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}]},
    "tools": {"type": "array", "items": {"type": "object"}},
    "tool_choice": {"type": "object"},
}

MESSAGES_BODY = json_body(
    {
        "type": "object",
        "required": ["model", "messages", "max_tokens"],
        "properties": {
            **_ANTHROPIC_COMMON,
            "max_tokens": POSITIVE,
            "temperature": {"type": "number"},
            "top_p": {"type": "number"},
            "stop_sequences": {"type": "array", "items": {"type": "string"}},
            "stream": {"type": "boolean"},
            "thinking": {"type": "object"},
            "metadata": {"type": "object"},
        },
    },
    {"model": "demo", "max_tokens": 256, "messages": [{"role": "user", "content": "Hello"}]},
)

COUNT_TOKENS_BODY = json_body(
    {"type": "object", "required": ["model", "messages"], "properties": _ANTHROPIC_COMMON},
    {"model": "demo", "messages": [{"role": "user", "content": "Hello"}]},
)
