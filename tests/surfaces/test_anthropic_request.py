"""Anthropic Messages requests → the chat body the relay routes (translation mode)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from domain.errors import InvalidRequest
from domain.providers.tokens import estimate_prompt_tokens
from domain.relay.plan import validate_chat_body
from domain.surfaces.anthropic_in import count_tokens, messages_to_chat
from domain.surfaces.chat_body import for_provider
from tests.surfaces.fixtures import CLAUDE_CODE_REQUEST, PNG_B64


def _body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": "Hello"}],
    }
    body.update(changes)
    return body


def test_claude_code_request_becomes_a_chat_body_the_relay_accepts() -> None:
    before = copy.deepcopy(CLAUDE_CODE_REQUEST)
    request = messages_to_chat(CLAUDE_CODE_REQUEST)
    chat = request.chat

    assert before == CLAUDE_CODE_REQUEST  # the client's body is never modified
    assert validate_chat_body(chat) is chat
    assert request.model == "claude-sonnet-4-5" and request.stream and request.thinking
    assert chat["model"] == "claude-sonnet-4-5"
    assert chat["max_tokens"] == 32000 and chat["temperature"] == 1
    assert chat["stream"] is True and chat["stream_options"] == {"include_usage": True}
    # Anthropic-only tuning is dropped, never refused and never forwarded to chat.
    for dropped in ("metadata", "thinking", "context_management", "output_config", "system"):
        assert dropped not in chat
    assert "cache_control" not in json.dumps(chat)
    assert "x-anthropic-billing-header" not in json.dumps(chat)

    assert chat["messages"] == [
        {
            "role": "system",
            "content": "You are Claude Code, Anthropic's official CLI for Claude.\n\n"
            "You are an interactive CLI tool that helps users with software engineering tasks.",
        },
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "<system-reminder>This is a reminder.</system-reminder>"},
                {"type": "text", "text": "What is in the README and the logo?"},
            ],
        },
        {
            "role": "assistant",
            "content": "I'll read both files.",
            "tool_calls": [
                {
                    "id": "toolu_01A09q90qw90lq917835lq9",
                    "type": "function",
                    "function": {"name": "Read", "arguments": '{"file_path":"/repo/README.md"}'},
                },
                {
                    "id": "toolu_01B7xYz",
                    "type": "function",
                    "function": {"name": "Read", "arguments": '{"file_path":"/repo/logo.png"}'},
                },
            ],
        },
        # Tool answers come right after the call, in order; chat tool messages carry text,
        # so the image a tool returned follows in a user turn with the user's own text.
        {
            "role": "tool",
            "tool_call_id": "toolu_01A09q90qw90lq917835lq9",
            "content": "# Project\nA gateway.",
        },
        {"role": "tool", "tool_call_id": "toolu_01B7xYz", "content": "Read image (1x1)"},
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
                {"type": "text", "text": "Summarize please."},
            ],
        },
    ]
    assert chat["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "Bash",
                "parameters": CLAUDE_CODE_REQUEST["tools"][0]["input_schema"],
                "description": "Executes a given bash command.",
            },
        },
        {
            "type": "function",
            "function": {
                "name": "Read",
                "parameters": CLAUDE_CODE_REQUEST["tools"][1]["input_schema"],
                "description": "Reads a file from the local filesystem.",
            },
        },
    ]
    assert "tool_choice" not in chat and "parallel_tool_calls" not in chat
    # message_start's input count is exactly what the relay holds credits for.
    assert request.input_tokens == estimate_prompt_tokens(chat) > 0


def test_unknown_and_future_fields_are_dropped_not_refused() -> None:
    body = _body(
        top_k=40,
        service_tier="auto",
        container="container_011",
        inference_geo="us",
        speed="fast",
        some_field_from_2027={"anything": True},
        metadata={"user_id": "u1"},
        thinking={"type": "adaptive"},
    )
    request = messages_to_chat(body)
    assert set(request.chat) == {"model", "messages", "max_tokens"}
    assert request.thinking is True  # adaptive counts as enabled


def test_single_text_block_user_turns_stay_plain_strings() -> None:
    body = _body(
        system="x-anthropic-billing-header: cc_version=2.1; cch=1;\nBe terse.",
        messages=[
            {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
            {
                "role": "assistant",
                "content": [{"type": "text", "text": "Hel"}, {"type": "text", "text": "lo"}],
            },
            {"role": "user", "content": "Again"},
        ],
    )
    assert messages_to_chat(body).chat["messages"] == [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},  # pieces of one answer join as written
        {"role": "user", "content": "Again"},
    ]


def test_thinking_only_assistant_turn_and_error_tool_results() -> None:
    body = _body(
        messages=[
            {"role": "user", "content": "Run it"},
            {"role": "assistant", "content": [{"type": "redacted_thinking", "data": "xyz"}]},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "toolu_9", "name": "Bash", "input": {}}],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_9",
                        "is_error": True,
                        "content": "exit 1",
                    },
                ],
            },
        ]
    )
    messages = messages_to_chat(body).chat["messages"]
    assert messages[1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "toolu_9", "type": "function", "function": {"name": "Bash", "arguments": "{}"}}
        ],
    }
    assert messages[2] == {"role": "tool", "tool_call_id": "toolu_9", "content": "Error: exit 1"}
    assert len(messages) == 3


def test_documents_become_chat_file_and_text_parts() -> None:
    content = [
        {
            "type": "document",
            "title": "spec.pdf",
            "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0xLjQ="},
        },
        {
            "type": "document",
            "source": {"type": "text", "media_type": "text/plain", "data": "plain notes"},
        },
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
        {"type": "text", "text": "Compare them."},
    ]
    chat = messages_to_chat(_body(messages=[{"role": "user", "content": content}])).chat
    assert chat["messages"][0]["content"] == [
        {
            "type": "file",
            "file": {
                "filename": "spec.pdf",
                "file_data": "data:application/pdf;base64,JVBERi0xLjQ=",
            },
        },
        {"type": "text", "text": "plain notes"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
        {"type": "text", "text": "Compare them."},
    ]


@pytest.mark.parametrize(
    ("tool_choice", "expected", "parallel"),
    [
        ({"type": "auto"}, "auto", None),
        ({"type": "any"}, "required", None),
        ({"type": "none"}, "none", None),
        (
            {"type": "tool", "name": "Bash"},
            {"type": "function", "function": {"name": "Bash"}},
            None,
        ),
        ({"type": "auto", "disable_parallel_tool_use": True}, "auto", False),
        ({"type": "any", "disable_parallel_tool_use": False}, "required", None),
    ],
)
def test_tool_choice(tool_choice: dict[str, Any], expected: Any, parallel: bool | None) -> None:
    tools = [CLAUDE_CODE_REQUEST["tools"][0]]
    chat = messages_to_chat(_body(tools=tools, tool_choice=tool_choice)).chat
    assert chat["tool_choice"] == expected
    assert chat.get("parallel_tool_calls") == parallel


def test_tool_choice_without_tools_is_left_out() -> None:
    chat = messages_to_chat(_body(tool_choice={"type": "any"}, tools=[])).chat
    assert "tool_choice" not in chat and "tools" not in chat


def test_sampling_stop_sequences_and_structured_output() -> None:
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    chat = messages_to_chat(
        _body(
            temperature=0.2,
            top_p=0.9,
            stop_sequences=["\n\nHuman:", "END"],
            output_config={"format": {"type": "json_schema", "schema": schema}, "effort": "low"},
        )
    ).chat
    assert chat["temperature"] == 0.2 and chat["top_p"] == 0.9
    assert chat["stop"] == ["\n\nHuman:", "END"]
    assert chat["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": schema, "strict": True},
    }


@pytest.mark.parametrize(
    ("changes", "param"),
    [
        ({"max_tokens": None}, "max_tokens"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": True}, "max_tokens"),
        ({"model": ""}, "model"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "system", "content": "x"}]}, "messages"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages"),
        ({"messages": [{"role": "user", "content": [{"text": "no type"}]}]}, "messages"),
        ({"stream": "yes"}, "stream"),
        ({"temperature": "hot"}, "temperature"),
        ({"stop_sequences": "END"}, "stop_sequences"),
        ({"system": [{"type": "image"}]}, "system"),
        (
            {"tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 5}]},
            "tools",
        ),
        ({"tools": [{"type": "bash_20250124", "name": "bash"}]}, "tools"),
        ({"tools": [{"name": "NoSchema"}]}, "tools"),
        ({"tool_choice": {"type": "mystery"}}, "tool_choice"),
        (
            {"mcp_servers": [{"type": "url", "url": "https://mcp.example.com", "name": "x"}]},
            "mcp_servers",
        ),
        ({"output_config": {"format": {"type": "xml"}}}, "output_config"),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image", "source": {"type": "file", "file_id": "file_1"}}
                        ],
                    }
                ]
            },
            "messages",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "search_result", "source": "s", "title": "t", "content": []}
                        ],
                    }
                ]
            },
            "messages",
        ),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "content": [
                            {
                                "type": "server_tool_use",
                                "id": "srvtoolu_1",
                                "name": "web_search",
                                "input": {},
                            }
                        ],
                    }
                ]
            },
            "messages",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "tool_result", "content": "no id"}]}
                ]
            },
            "messages",
        ),
    ],
)
def test_refusals_name_the_anthropic_field(changes: dict[str, Any], param: str) -> None:
    body = _body(**changes)
    if changes.get("max_tokens", 1) is None:
        del body["max_tokens"]
    with pytest.raises(InvalidRequest) as caught:
        messages_to_chat(body)
    assert caught.value.param == param
    assert caught.value.code == "invalid_request"


def test_not_an_object_is_refused() -> None:
    with pytest.raises(InvalidRequest):
        messages_to_chat(["not", "an", "object"])


def test_count_tokens_matches_the_hold_estimate_and_needs_no_max_tokens() -> None:
    body = copy.deepcopy(CLAUDE_CODE_REQUEST)
    held = messages_to_chat(body).input_tokens
    del body["max_tokens"], body["stream"]
    assert count_tokens(body) == held

    short = count_tokens({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    longer = count_tokens({"model": "m", "messages": [{"role": "user", "content": "hi " * 300}]})
    assert 0 < short < longer


def test_count_tokens_still_counts_what_only_anthropic_can_serve() -> None:
    body = {
        "model": "claude-sonnet-4-5",
        "tools": [{"type": "web_search_20250305", "name": "web_search"}],
        "messages": [{"role": "user", "content": "Search the news " * 30}],
    }
    plain = count_tokens({"model": "m", "messages": [{"role": "user", "content": "x"}]})
    assert count_tokens(body) > plain
    with pytest.raises(InvalidRequest) as caught:
        count_tokens({"model": "m", "messages": "hi"})
    assert caught.value.param == "messages"


def test_openai_channels_get_max_completion_tokens() -> None:
    chat = messages_to_chat(_body()).chat
    sent = for_provider(chat, "openai")
    assert sent["max_completion_tokens"] == 1024 and "max_tokens" not in sent
    assert chat["max_tokens"] == 1024  # the routed body is not changed
    for provider in ("openai_compatible", "openrouter", "ollama", "anthropic", "google", "demo"):
        assert for_provider(chat, provider) is chat
