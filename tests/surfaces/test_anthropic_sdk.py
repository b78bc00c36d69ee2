"""The anthropic SDK end to end over the translations: what it sends is translated to chat,
a chat answer comes back, and what it receives is translated from chat. Tool ids survive
the full round trip (assistant tool_use → our chat tool_calls → the client's tool_result).
"""

from __future__ import annotations

import json
from typing import Any

import httpx2

from domain.surfaces.anthropic_in import count_tokens, messages_to_chat
from domain.surfaces.anthropic_native import native_headers
from domain.surfaces.anthropic_out import message_from_chat
from tests.surfaces.fixtures import WEATHER_ARGS, completion
from tests.surfaces.sdk import anthropic_client

TOOLS: list[Any] = [
    {
        "name": "get_weather",
        "description": "Current weather for a place.",
        "input_schema": {
            "type": "object",
            "properties": {"location": {"type": "string"}, "unit": {"type": "string"}},
            "required": ["location"],
        },
    }
]


class Gateway:
    """Stands where the relay will: translate in, answer from `answers`, translate out."""

    def __init__(self, answers: list[dict[str, Any]]) -> None:
        self.answers = answers
        self.chats: list[dict[str, Any]] = []
        self.headers: list[httpx2.Headers] = []

    async def __call__(self, request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        self.headers.append(request.headers)
        if request.url.path == "/v1/messages/count_tokens":
            return httpx2.Response(200, json={"input_tokens": count_tokens(body)})
        translated = messages_to_chat(body)
        self.chats.append(translated.chat)
        answer = self.answers.pop(0)
        out = message_from_chat(
            answer,
            model=translated.model,
            thinking=translated.thinking,
            stop_sequences=translated.stop_sequences,
        )
        return httpx2.Response(200, json=out)


async def test_tool_use_round_trip_keeps_ids_exact() -> None:
    gateway = Gateway(
        [
            completion(
                None, tool_calls=[("call_W8xK2", "get_weather", WEATHER_ARGS)], finish="tool_calls"
            ),
            completion("It is 18°C and sunny in Paris.", prompt=240, output=12),
        ]
    )
    client = anthropic_client(gateway)
    question = {"role": "user", "content": "Weather in Paris?"}
    first = await client.messages.create(
        model="gpt-4o",
        max_tokens=512,
        system="Answer in one sentence.",
        tools=TOOLS,
        tool_choice={"type": "auto"},
        messages=[question],  # type: ignore[list-item]
    )
    assert first.stop_reason == "tool_use"
    call = first.content[0]
    assert call.type == "tool_use" and call.id == "call_W8xK2"
    assert call.input == {"location": "Paris, France", "unit": "celsius"}

    second = await client.messages.create(
        model="gpt-4o",
        max_tokens=512,
        tools=TOOLS,
        messages=[
            question,  # type: ignore[list-item]
            first.to_param(),
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": call.id, "content": "18°C, sunny"}
                ],
            },
        ],
    )
    assert second.stop_reason == "end_turn"
    assert second.content[0].text == "It is 18°C and sunny in Paris."  # type: ignore[union-attr]
    assert second.usage.input_tokens == 240 and second.usage.output_tokens == 12

    replayed = gateway.chats[1]["messages"]
    assert replayed[1]["tool_calls"][0]["id"] == "call_W8xK2"
    assert json.loads(replayed[1]["tool_calls"][0]["function"]["arguments"]) == call.input
    assert replayed[2] == {"role": "tool", "tool_call_id": "call_W8xK2", "content": "18°C, sunny"}
    assert gateway.chats[0]["tool_choice"] == "auto"
    assert gateway.chats[0]["messages"][0] == {
        "role": "system",
        "content": "Answer in one sentence.",
    }


async def test_count_tokens_through_the_sdk() -> None:
    gateway = Gateway([])
    client = anthropic_client(gateway)
    messages: Any = [{"role": "user", "content": "How many tokens is this sentence?"}]
    counted = await client.messages.count_tokens(model="gpt-4o", messages=messages, tools=TOOLS)
    assert counted.input_tokens == count_tokens(
        {"model": "gpt-4o", "messages": messages, "tools": TOOLS}
    )
    assert counted.input_tokens > 0


async def test_unknown_betas_never_fail_and_reach_native_channels_untouched() -> None:
    gateway = Gateway([completion("ok")])
    client = anthropic_client(gateway)
    betas = ["interleaved-thinking-2025-05-14", "some-future-flag-2099-01-01"]
    reply = await client.beta.messages.create(
        model="gpt-4o",
        max_tokens=16,
        betas=betas,
        messages=[{"role": "user", "content": "hi"}],
    )
    assert reply.content[0].text == "ok"  # type: ignore[union-attr]
    sent = gateway.headers[0]
    assert sent["anthropic-beta"] == ",".join(betas)
    forwarded = native_headers(sent.multi_items())
    assert forwarded == {
        "anthropic-version": sent["anthropic-version"],  # the client's own version
        "anthropic-beta": ",".join(betas),
    }
