"""Native mode: what an Anthropic channel receives, and how its usage is read for billing."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from domain.errors import InvalidRequest
from domain.providers.base import Usage
from domain.surfaces.anthropic_native import (
    NativeUsage,
    native_headers,
    native_payload,
    server_tool_uses,
    usage_from_message,
)
from tests.surfaces.fixtures import CLAUDE_CODE_REQUEST


def test_headers_forward_version_and_every_beta_only() -> None:
    client = [
        ("Host", "gateway.test"),
        ("Authorization", "Bearer sk-0xinf-secret"),
        ("x-api-key", "sk-0xinf-secret"),
        ("Cookie", "session=1"),
        ("anthropic-version", "2023-06-01"),
        ("anthropic-beta", "claude-code-20250219, interleaved-thinking-2025-05-14"),
        ("Anthropic-Beta", "fine-grained-tool-streaming-2025-05-14,claude-code-20250219"),
        ("anthropic-beta", "context-1m-2025-08-07,not a flag,\r\nX-Evil: 1"),
        ("X-Claude-Code-Session-Id", "abc"),
    ]
    assert native_headers(client) == {
        "anthropic-version": "2023-06-01",
        "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14,"
        "fine-grained-tool-streaming-2025-05-14,context-1m-2025-08-07",
    }


@pytest.mark.parametrize(
    ("sent", "expected"),
    [
        ([], "2023-06-01"),
        ([("anthropic-version", "garbage")], "2023-06-01"),
        ([("anthropic-version", "2024-10-22")], "2024-10-22"),
    ],
)
def test_version_defaults_when_missing_or_malformed(
    sent: list[tuple[str, str]], expected: str
) -> None:
    assert native_headers(sent) == {"anthropic-version": expected}


def test_payload_is_the_clients_body_with_only_the_gateways_changes() -> None:
    before = copy.deepcopy(CLAUDE_CODE_REQUEST)
    body = {**CLAUDE_CODE_REQUEST, "service_tier": "auto", "speed": "fast", "future_field": 1}
    payload = native_payload(body, upstream_model="claude-sonnet-4-5-20250929")
    assert before == CLAUDE_CODE_REQUEST
    assert payload["model"] == "claude-sonnet-4-5-20250929"
    assert payload["service_tier"] == "standard_only"
    assert "speed" not in payload
    for kept in (
        "thinking",
        "metadata",
        "context_management",
        "output_config",
        "system",
        "tools",
        "messages",
        "future_field",
    ):
        assert payload[kept] == body[kept]  # billing header, signatures, cache_control intact


def test_per_use_server_tools_need_a_price() -> None:
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "news?"}],
        "tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 3}],
    }
    with pytest.raises(InvalidRequest) as caught:
        native_payload(body, upstream_model="x")
    assert caught.value.param == "tools"
    assert (
        native_payload(body, upstream_model="x", per_use_tools_priced=True)["tools"]
        == body["tools"]
    )

    free = {
        **body,
        "tools": [
            {"type": "bash_20250124", "name": "bash"},
            {"type": "web_fetch_20250910", "name": "web_fetch"},
        ],
    }
    assert native_payload(free, upstream_model="x")["tools"] == free["tools"]


def test_count_tokens_payload_needs_no_max_tokens() -> None:
    body = {
        "model": "claude-sonnet-4-5",
        "messages": [{"role": "user", "content": "hi"}],
        "service_tier": "auto",
    }
    payload = native_payload(body, upstream_model="x", max_tokens_required=False)
    assert "service_tier" not in payload and "max_tokens" not in payload
    with pytest.raises(InvalidRequest) as caught:
        native_payload(body, upstream_model="x")
    assert caught.value.param == "max_tokens"


def _native_events() -> list[dict[str, Any]]:
    """A real Anthropic stream's events (abridged), cache reads and writes included."""
    return [
        {
            "type": "message_start",
            "message": {
                "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
                "type": "message",
                "role": "assistant",
                "content": [],
                "model": "claude-sonnet-4-5-20250929",
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {
                    "input_tokens": 12,
                    "cache_creation_input_tokens": 1800,
                    "cache_read_input_tokens": 19000,
                    "output_tokens": 1,
                },
            },
        },
        {"type": "ping"},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": "Hello there, friend."},
        },
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {
                "input_tokens": 12,
                "cache_creation_input_tokens": 1800,
                "cache_read_input_tokens": 19000,
                "output_tokens": 25,
                "server_tool_use": None,
            },
        },
        {"type": "message_stop"},
    ]


def test_native_stream_usage_is_the_upstreams() -> None:
    watch = NativeUsage()
    for event in _native_events():
        watch.observe(event)
    assert watch.finished and watch.stop_reason == "end_turn"
    assert watch.message_id == "msg_01XFDUDYJgAACzvnptvVoYEL"
    assert watch.usage(prompt_estimate=5) == Usage(12 + 1800 + 19000, 25, cached_tokens=19000)


def test_a_broken_native_stream_bills_what_was_forwarded() -> None:
    watch = NativeUsage()
    for event in _native_events()[:4]:  # the upstream died after the first text
        watch.observe(event)
    usage = watch.usage(prompt_estimate=5)
    assert not watch.finished
    assert usage == Usage(20812, 5, 19000, estimated=True)  # 20 bytes / 4

    nothing = NativeUsage()
    nothing.observe("not an event")
    assert nothing.usage(prompt_estimate=77) == Usage(77, 0, estimated=True)


def test_json_answer_usage_and_server_tool_counts() -> None:
    body = {
        "usage": {
            "input_tokens": 30,
            "cache_read_input_tokens": 10,
            "output_tokens": 7,
            "server_tool_use": {"web_search_requests": 2, "web_fetch_requests": 0},
        }
    }
    assert usage_from_message(body) == Usage(40, 7, cached_tokens=10)
    assert usage_from_message(None) is None
    assert server_tool_uses(body["usage"]) == {"web_search_requests": 2}
    assert server_tool_uses({}) == {}
