"""OpenAI Responses requests → chat, and chat answers → Response objects."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import pytest
from openai.types.responses import Response

from domain.errors import InvalidRequest
from domain.providers.base import Usage
from domain.relay.plan import validate_chat_body
from domain.surfaces.responses_in import responses_to_chat
from domain.surfaces.responses_out import response_from_chat
from tests.surfaces.fixtures import PNG_B64, TIME_ARGS, WEATHER_ARGS, completion
from tests.surfaces.sdk import no_extras, openai_client

WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather.",
    "parameters": {
        "type": "object",
        "properties": {"location": {"type": "string"}},
        "required": ["location"],
    },
    "strict": False,
}


def _body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "llama-3.3-70b", "input": "Hello"}
    body.update(changes)
    return body


def test_string_input_and_instructions() -> None:
    request = responses_to_chat(
        _body(instructions="Be brief.", max_output_tokens=64, temperature=0.3)
    )
    chat = request.chat
    assert validate_chat_body(chat) is chat
    assert chat == {
        "model": "llama-3.3-70b",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hello"},
        ],
        "max_tokens": 64,
        "temperature": 0.3,
    }
    assert not request.stream


def test_item_history_with_function_calls_and_outputs() -> None:
    items = [
        {"role": "developer", "content": "Use tools."},
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_text", "text": "Weather and time in Paris?"},
                {
                    "type": "input_image",
                    "image_url": f"data:image/png;base64,{PNG_B64}",
                    "detail": "low",
                },
            ],
        },
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {
            "type": "message",
            "role": "assistant",
            "id": "msg_1",
            "status": "completed",
            "content": [{"type": "output_text", "text": "Checking.", "annotations": []}],
        },
        {
            "type": "function_call",
            "id": "fc_1",
            "call_id": "call_W8xK2",
            "name": "get_weather",
            "arguments": WEATHER_ARGS,
        },
        {
            "type": "function_call",
            "id": "fc_2",
            "call_id": "call_T4mQ9",
            "name": "get_time",
            "arguments": TIME_ARGS,
        },
        {"type": "function_call_output", "call_id": "call_W8xK2", "output": "18C sunny"},
        {
            "type": "function_call_output",
            "call_id": "call_T4mQ9",
            "output": [{"type": "input_text", "text": "14:05"}],
        },
    ]
    chat = responses_to_chat(
        _body(input=items, tools=[WEATHER_TOOL], tool_choice="auto", stream=True)
    ).chat
    assert chat["messages"] == [
        {"role": "system", "content": "Use tools."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Weather and time in Paris?"},
                {
                    "type": "image_url",
                    "image_url": {"url": f"data:image/png;base64,{PNG_B64}", "detail": "low"},
                },
            ],
        },
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "call_W8xK2",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": WEATHER_ARGS},
                },
                {
                    "id": "call_T4mQ9",
                    "type": "function",
                    "function": {"name": "get_time", "arguments": TIME_ARGS},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_W8xK2", "content": "18C sunny"},
        {"role": "tool", "tool_call_id": "call_T4mQ9", "content": "14:05"},
    ]
    assert chat["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather.",
                "parameters": WEATHER_TOOL["parameters"],
                "strict": False,
            },
        }
    ]
    assert chat["tool_choice"] == "auto"
    assert chat["stream"] is True and chat["stream_options"] == {"include_usage": True}


def test_a_function_call_without_an_assistant_message_starts_one() -> None:
    items = [
        {"role": "user", "content": "time?"},
        {"type": "function_call", "call_id": "call_1", "name": "get_time", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "noon"},
    ]
    messages = responses_to_chat(_body(input=items)).chat["messages"]
    assert messages[1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_time", "arguments": "{}"},
            }
        ],
    }


def test_function_output_images_follow_in_a_user_turn() -> None:
    items = [
        {"type": "function_call", "call_id": "call_1", "name": "screenshot", "arguments": "{}"},
        {
            "type": "function_call_output",
            "call_id": "call_1",
            "output": [
                {"type": "input_text", "text": "Here it is"},
                {"type": "input_image", "image_url": "https://example.com/s.png"},
            ],
        },
    ]
    messages = responses_to_chat(_body(input=items, instructions="")).chat["messages"]
    assert messages[1:] == [
        {"role": "tool", "tool_call_id": "call_1", "content": "Here it is"},
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": "https://example.com/s.png"}}],
        },
    ]
    assert messages[0]["role"] == "assistant"  # an empty instructions adds nothing


def test_output_shaping_fields() -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    }
    chat = responses_to_chat(
        _body(
            text={
                "format": {"type": "json_schema", "name": "city", "schema": schema, "strict": True},
                "verbosity": "low",
            },
            reasoning={"effort": "high", "summary": "auto"},
            tools=[WEATHER_TOOL],
            tool_choice={"type": "function", "name": "get_weather"},
            parallel_tool_calls=False,
            user="u-1",
            prompt_cache_key="k",
            include=["reasoning.encrypted_content"],
            truncation="auto",
            metadata={"run": "7"},
            store=False,
        )
    ).chat
    assert chat["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "city", "schema": schema, "strict": True},
    }
    assert chat["reasoning_effort"] == "high"
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert chat["parallel_tool_calls"] is False
    assert chat["user"] == "u-1" and chat["prompt_cache_key"] == "k"
    for dropped in ("include", "truncation", "metadata", "store", "text", "reasoning", "verbosity"):
        assert dropped not in chat
    assert responses_to_chat(_body(text={"format": {"type": "json_object"}})).chat[
        "response_format"
    ] == {"type": "json_object"}
    assert "response_format" not in responses_to_chat(_body(text={"format": {"type": "text"}})).chat


@pytest.mark.parametrize(
    ("changes", "param"),
    [
        ({"store": True}, "store"),
        ({"previous_response_id": "resp_123"}, "previous_response_id"),
        ({"conversation": "conv_1"}, "conversation"),
        ({"prompt": {"id": "pmpt_1"}}, "prompt"),
        ({"background": True}, "background"),
        ({"top_logprobs": 3}, "top_logprobs"),
        ({"model": None}, "model"),
        ({"input": []}, "input"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input"),
        ({"input": [{"type": "web_search_call", "id": "ws_1"}]}, "input"),
        (
            {
                "input": [
                    {"role": "user", "content": [{"type": "input_image", "file_id": "file-1"}]}
                ]
            },
            "input",
        ),
        (
            {
                "input": [
                    {
                        "role": "user",
                        "content": [{"type": "input_file", "file_url": "https://x/y.pdf"}],
                    }
                ]
            },
            "input",
        ),
        ({"input": [{"role": "critic", "content": "x"}]}, "input"),
        (
            {
                "input": [
                    {
                        "role": "system",
                        "content": [{"type": "input_image", "image_url": "https://x/i.png"}],
                    }
                ]
            },
            "input",
        ),
        ({"tools": [{"type": "web_search"}]}, "tools"),
        ({"tools": [{"type": "file_search", "vector_store_ids": ["vs_1"]}]}, "tools"),
        ({"tool_choice": {"type": "web_search_preview"}}, "tool_choice"),
        ({"text": {"format": {"type": "grammar"}}}, "text.format"),
        ({"text": {"format": {"type": "json_schema", "schema": {}}}}, "text.format"),
        ({"max_output_tokens": 0}, "max_output_tokens"),
        ({"temperature": "warm"}, "temperature"),
        ({"stream": 1}, "stream"),
        ({"instructions": ["not", "a", "string"]}, "instructions"),
    ],
)
def test_refusals_name_the_field(changes: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        responses_to_chat(_body(**changes))
    assert caught.value.param == param


def _response(body: dict[str, Any], **request: Any) -> Response:
    translated = responses_to_chat(_body(**request))
    out = response_from_chat(body, translated)
    parsed = Response.model_validate(out)
    no_extras(parsed)
    return parsed


def test_text_answer_as_a_response() -> None:
    response = _response(
        completion("Hello! How can I help?", prompt=20, output=8, cached=4, reasoning=3),
        instructions="Be nice.",
        max_output_tokens=100,
        metadata={"run": "7"},
    )
    assert response.id.startswith("resp_") and response.object == "response"
    assert response.status == "completed" and response.incomplete_details is None
    assert response.output_text == "Hello! How can I help?"
    assert response.output[0].id.startswith("msg_")  # type: ignore[union-attr]
    assert response.usage is not None
    assert (
        response.usage.input_tokens,
        response.usage.output_tokens,
        response.usage.total_tokens,
    ) == (20, 8, 28)
    assert response.usage.input_tokens_details.cached_tokens == 4
    assert response.usage.output_tokens_details.reasoning_tokens == 3
    assert response.instructions == "Be nice." and response.max_output_tokens == 100
    assert response.metadata == {"run": "7"} and response.model == "llama-3.3-70b"
    assert response.tool_choice == "auto" and response.parallel_tool_calls is True


def test_function_calls_as_items_with_exact_call_ids() -> None:
    body = completion(
        None,
        tool_calls=[
            ("call_W8xK2", "get_weather", WEATHER_ARGS),
            ("call_T4mQ9", "get_time", TIME_ARGS),
        ],
        finish="tool_calls",
    )
    response = _response(body, tools=[WEATHER_TOOL])
    assert [item.type for item in response.output] == ["function_call", "function_call"]
    first, second = response.output
    assert first.type == "function_call" and second.type == "function_call"
    assert (first.call_id, first.name, first.arguments) == (
        "call_W8xK2",
        "get_weather",
        WEATHER_ARGS,
    )
    assert first.id is not None and first.id.startswith("fc_") and second.call_id == "call_T4mQ9"
    assert response.tools[0].name == "get_weather"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("finish", "reason"), [("length", "max_output_tokens"), ("content_filter", "content_filter")]
)
def test_a_cut_answer_is_incomplete(finish: str, reason: str) -> None:
    response = _response(completion("Once upon a", finish=finish), max_output_tokens=3)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None and response.incomplete_details.reason == reason
    assert response.output[0].status == "incomplete"  # type: ignore[union-attr]
    assert response.output_text == "Once upon a"


def test_refusal_part_and_billed_usage() -> None:
    translated = responses_to_chat(_body())
    out = response_from_chat(
        completion(None, refusal="I can't help with that."), translated, usage=Usage(50, 6)
    )
    response = Response.model_validate(out)
    assert response.output[0].content[0].type == "refusal"  # type: ignore[union-attr]
    assert response.usage is not None and (
        response.usage.input_tokens,
        response.usage.output_tokens,
    ) == (50, 6)


async def test_the_openai_sdk_round_trip() -> None:
    chats: list[dict[str, Any]] = []
    answers = [
        completion(
            None, tool_calls=[("call_W8xK2", "get_weather", WEATHER_ARGS)], finish="tool_calls"
        ),
        completion("18°C and sunny.", prompt=90, output=7),
    ]

    async def handler(request: httpx2.Request) -> httpx2.Response:
        translated = responses_to_chat(json.loads(request.content))
        chats.append(translated.chat)
        return httpx2.Response(200, json=response_from_chat(answers.pop(0), translated))

    client = openai_client(handler)
    first = await client.responses.create(
        model="llama-3.3-70b", input="Weather in Paris?", tools=[WEATHER_TOOL]
    )  # type: ignore[list-item]
    call = first.output[0]
    assert call.type == "function_call" and call.call_id == "call_W8xK2"
    second = await client.responses.create(
        model="llama-3.3-70b",
        input=[
            {"role": "user", "content": "Weather in Paris?"},
            *[item.model_dump(exclude_none=True) for item in first.output],  # type: ignore[misc]
            {"type": "function_call_output", "call_id": call.call_id, "output": "18C sunny"},
        ],
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
    )
    assert second.output_text == "18°C and sunny."
    replayed = chats[1]["messages"]
    assert replayed[1]["tool_calls"][0]["id"] == "call_W8xK2"
    assert replayed[2] == {"role": "tool", "tool_call_id": "call_W8xK2", "content": "18C sunny"}
