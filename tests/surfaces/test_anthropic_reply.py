"""Chat answers → Anthropic Messages, and our errors in Anthropic's shape, as the anthropic
SDK parses them."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx2
import pytest
from anthropic.types import Message
from anthropic.types.beta_error_response import BetaErrorResponse

from domain.providers.base import Usage
from domain.surfaces.anthropic_out import (
    anthropic_error,
    anthropic_error_from_envelope,
    message_from_chat,
)
from tests.surfaces.fixtures import TIME_ARGS, WEATHER_ARGS, completion
from tests.surfaces.sdk import anthropic_client, no_extras


def _message(body: dict[str, Any], **kwargs: Any) -> Message:
    out = message_from_chat(body, model="claude-sonnet-4-5", **kwargs)
    parsed = Message.model_validate(out)
    no_extras(parsed)
    return parsed


def test_text_answer_with_cached_prompt() -> None:
    message = _message(completion("Paris is the capital.", prompt=2048, output=9, cached=1536))
    assert message.id.startswith("msg_")
    assert message.model == "claude-sonnet-4-5" and message.role == "assistant"
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == "Paris is the capital."  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    # Anthropic's input_tokens exclude cache reads; the three add up to the chat prompt.
    assert message.usage.input_tokens == 512
    assert message.usage.cache_read_input_tokens == 1536
    assert message.usage.cache_creation_input_tokens == 0
    assert message.usage.output_tokens == 9


def test_tool_calls_keep_their_ids_and_become_tool_use() -> None:
    body = completion(
        "Checking.",
        tool_calls=[
            ("call_W8xK2", "get_weather", WEATHER_ARGS),
            ("call_T4mQ9", "get_time", TIME_ARGS),
        ],
        finish="tool_calls",
    )
    message = _message(body)
    assert [b.type for b in message.content] == ["text", "tool_use", "tool_use"]
    first, second = message.content[1], message.content[2]
    assert first.type == "tool_use" and second.type == "tool_use"
    assert (first.id, first.name, first.input) == (
        "call_W8xK2",
        "get_weather",
        {"location": "Paris, France", "unit": "celsius"},
    )
    assert (second.id, second.input) == ("call_T4mQ9", {"timezone": "Europe/Paris"})
    assert message.stop_reason == "tool_use"


@pytest.mark.parametrize(
    ("finish", "tools", "expected"),
    [
        ("stop", False, "end_turn"),
        ("stop", True, "tool_use"),  # Ollama and others finish tool turns with "stop"
        ("tool_calls", True, "tool_use"),
        ("tool_calls", False, "end_turn"),  # never claim tool_use without a block to run
        ("function_call", False, "end_turn"),
        ("length", False, "max_tokens"),
        ("length", True, "max_tokens"),  # a tool call cut short is not runnable
        ("content_filter", False, "refusal"),
        ("something_new", False, "end_turn"),
    ],
)
def test_stop_reasons(finish: str, tools: bool, expected: str) -> None:
    calls = [("call_1", "get_time", TIME_ARGS)] if tools else []
    message = _message(completion("x", tool_calls=calls, finish=finish))
    assert message.stop_reason == expected


def test_stop_sequence_is_named_when_the_upstream_says_which() -> None:
    body = completion("Answer")
    body["choices"][0]["stop_reason"] = "END"  # vLLM reports the matched stop string
    assert _message(body, stop_sequences=["END"]).stop_reason == "stop_sequence"
    assert _message(body, stop_sequences=["END"]).stop_sequence == "END"
    assert _message(body, stop_sequences=["OTHER"]).stop_reason == "end_turn"


def test_refusal_and_reasoning() -> None:
    refused = _message(completion(None, refusal="I can't help with that."))
    assert refused.stop_reason == "refusal"
    assert refused.content[0].text == "I can't help with that."  # type: ignore[union-attr]

    thought = completion("42", reasoning_content="Six times seven.", reasoning=12)
    assert [b.type for b in _message(thought).content] == ["text"]
    shown = _message(thought, thinking=True)
    assert [b.type for b in shown.content] == ["thinking", "text"]
    assert shown.content[0].thinking == "Six times seven."  # type: ignore[union-attr]


def test_unparseable_tool_arguments_become_an_empty_input() -> None:
    body = completion(None, tool_calls=[("call_1", "Bash", '{"command": "ls')], finish="length")
    message = _message(body)
    assert message.content[0].input == {}  # type: ignore[union-attr]
    assert message.stop_reason == "max_tokens"


def test_billed_usage_wins_over_the_body() -> None:
    message = _message(
        completion("hi", prompt=10, output=2), usage=Usage(300, 40, cached_tokens=100)
    )
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens) == (200, 100)
    assert message.usage.output_tokens == 40


def test_empty_answer_is_an_empty_content_list() -> None:
    message = _message(completion(""))
    assert message.content == [] and message.stop_reason == "end_turn"


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (402, "billing_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (422, "invalid_request_error"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (502, "api_error"),
        (503, "overloaded_error"),
        (504, "timeout_error"),
        (418, "invalid_request_error"),
        (599, "api_error"),
    ],
)
def test_error_types_by_status(status: int, kind: str) -> None:
    body = anthropic_error(status, "nope", request_id="req_1")
    assert body == {
        "type": "error",
        "error": {"type": kind, "message": "nope"},
        "request_id": "req_1",
    }
    if kind != "request_too_large":  # the SDK's union lacks it; Anthropic sends it on 413
        no_extras(BetaErrorResponse.model_validate(body))


def test_envelope_conversion_keeps_the_field_name() -> None:
    ours = {
        "error": {
            "type": "invalid_request_error",
            "code": "invalid_request",
            "message": "must be a positive integer",
            "request_id": "req_abc",
            "param": "max_tokens",
        }
    }
    assert anthropic_error_from_envelope(400, ours) == {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": "max_tokens: must be a positive integer",
        },
        "request_id": "req_abc",
    }
    ours["error"]["message"] = "`max_tokens` is required"
    assert (
        anthropic_error_from_envelope(400, ours)["error"]["message"] == "`max_tokens` is required"
    )
    assert anthropic_error_from_envelope(500, "garbage")["error"] == {
        "type": "api_error",
        "message": "request failed",
    }


@pytest.mark.parametrize(
    ("status", "exc", "attempts"),
    [
        (402, anthropic.PaymentRequiredError, 1),  # not retried: the client must top up
        (400, anthropic.BadRequestError, 1),
        (401, anthropic.AuthenticationError, 1),
        (429, anthropic.RateLimitError, 3),
        (503, anthropic.ServiceUnavailableError, 3),
    ],
)
async def test_the_sdk_raises_the_right_exception(
    status: int, exc: type[Exception], attempts: int
) -> None:
    calls = 0

    async def handler(request: httpx2.Request) -> httpx2.Response:
        nonlocal calls
        calls += 1
        body = anthropic_error(status, "insufficient credits for this request", request_id="req_9")
        return httpx2.Response(status, json=body, headers={"retry-after-ms": "1"})

    client = anthropic_client(handler, max_retries=2)
    with pytest.raises(exc) as caught:
        await client.messages.create(
            model="m", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
        )
    assert calls == attempts
    assert "insufficient credits" in str(caught.value)
    assert isinstance(caught.value, anthropic.APIStatusError)
    assert caught.value.body["error"]["type"] == anthropic_error(status, "")["error"]["type"]  # type: ignore[index]
