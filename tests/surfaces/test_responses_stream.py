"""The relay's chat chunk stream → the Responses API's typed event stream, as the openai SDK
consumes it (its stream helper checks every event's bookkeeping)."""

from __future__ import annotations

import json
from typing import Any

import httpx2
from openai.types.responses import ResponseStreamEvent
from pydantic import TypeAdapter

from domain.providers.base import Usage
from domain.surfaces.responses_in import responses_to_chat
from domain.surfaces.responses_stream import ResponsesStream, response_events
from tests.surfaces.fixtures import (
    TOOL_STREAM,
    aiter,
    chunk,
    finish_chunk,
    role_chunk,
    text_chunks,
    tool_chunks,
    usage_chunk,
)
from tests.surfaces.sdk import no_extras, openai_client, sse_response

EVENT = TypeAdapter(ResponseStreamEvent)


async def _events(
    chunks: list[dict[str, Any]], fail: str | None = None, **body: Any
) -> list[dict[str, Any]]:
    request = responses_to_chat({"model": "llama-3.3-70b", "input": "hi", "stream": True, **body})
    stream = ResponsesStream(request)
    out = [e async for e in response_events(aiter(chunks, fail), stream)]
    assert [e["sequence_number"] for e in out] == list(range(len(out)))
    for event in out:
        no_extras(EVENT.validate_python(event))
    return out


def _types(events: list[dict[str, Any]]) -> list[str]:
    out: list[str] = []
    for e in events:
        if not (out and e["type"] == out[-1] and e["type"].endswith(".delta")):
            out.append(e["type"])
    return out


async def test_text_then_parallel_function_calls() -> None:
    events = await _events(TOOL_STREAM)
    assert _types(events) == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    created = events[0]["response"]
    assert (
        created["status"] == "in_progress" and created["output"] == [] and created["usage"] is None
    )
    text_done = next(e for e in events if e["type"] == "response.output_text.done")
    assert text_done["text"] == "Let me check both."
    done_args = [e for e in events if e["type"] == "response.function_call_arguments.done"]
    assert [json.loads(e["arguments"]) for e in done_args] == [
        {"location": "Paris, France", "unit": "celsius"},
        {"timezone": "Europe/Paris"},
    ]
    final = events[-1]["response"]
    assert final["status"] == "completed"
    assert [item["type"] for item in final["output"]] == [
        "message",
        "function_call",
        "function_call",
    ]
    assert [item.get("call_id") for item in final["output"]] == [None, "call_W8xK2", "call_T4mQ9"]
    assert final["usage"]["input_tokens"] == 412 and final["usage"]["output_tokens"] == 61
    assert final["usage"]["input_tokens_details"]["cached_tokens"] == 128
    assert [e["output_index"] for e in events if e["type"] == "response.output_item.added"] == [
        0,
        1,
        2,
    ]


async def test_text_after_a_call_is_a_new_message_item() -> None:
    chunks = [
        role_chunk(),
        *tool_chunks(0, "call_A", "f", "{}"),
        *text_chunks("done"),
        finish_chunk("stop"),
    ]
    events = await _events(chunks)
    final = events[-1]["response"]
    assert [item["type"] for item in final["output"]] == ["function_call", "message"]
    assert final["output"][1]["content"][0]["text"] == "done"


async def test_max_output_tokens_ends_incomplete() -> None:
    events = await _events(
        [role_chunk(), *text_chunks("Once upon"), finish_chunk("length"), usage_chunk(9, 2)],
        max_output_tokens=2,
    )
    final = events[-1]
    assert final["type"] == "response.incomplete"
    assert final["response"]["status"] == "incomplete"
    assert final["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert final["response"]["output"][0]["status"] == "incomplete"
    assert final["response"]["max_output_tokens"] == 2


async def test_refusal_streams_as_a_refusal_part() -> None:
    events = await _events(
        [
            role_chunk(),
            chunk({"refusal": "I can't "}),
            chunk({"refusal": "help."}),
            finish_chunk("stop"),
        ]
    )
    assert "response.refusal.delta" in _types(events) and "response.refusal.done" in _types(events)
    part = events[-1]["response"]["output"][0]["content"]
    assert part == [{"type": "refusal", "refusal": "I can't help."}]


async def test_an_upstream_failure_ends_with_response_failed() -> None:
    events = await _events(
        [role_chunk(), *text_chunks("part")], fail="the upstream connection dropped"
    )
    final = events[-1]
    assert final["type"] == "response.failed"
    assert final["response"]["error"] == {
        "code": "server_error",
        "message": "the upstream connection dropped",
    }
    assert final["response"]["output"][0]["content"][0]["text"] == "part"


async def test_no_reported_usage_falls_back_to_estimates_and_billed_usage_wins() -> None:
    request = responses_to_chat({"model": "m", "input": "hi", "stream": True})
    estimated = ResponsesStream(request)
    events = [*estimated.start(), *estimated.feed(text_chunks("abcdefgh")[0]), *estimated.finish()]
    usage = events[-1]["response"]["usage"]
    assert usage["output_tokens"] == 2 and usage["input_tokens"] > 0
    billed = ResponsesStream(request)
    events = [*billed.start(), *billed.finish(Usage(70, 5, cached_tokens=20))]
    assert events[-1]["response"]["usage"]["input_tokens"] == 70
    assert events[-1]["response"]["usage"]["input_tokens_details"]["cached_tokens"] == 20
    assert billed.finish() == [] and billed.fail("x") == []


def _server(chunks: list[dict[str, Any]]) -> Any:
    async def handler(request: httpx2.Request) -> httpx2.Response:
        translated = responses_to_chat(json.loads(request.content))
        return sse_response(response_events(aiter(chunks), ResponsesStream(translated)))

    return handler


async def test_the_sdk_stream_helper_rebuilds_the_response() -> None:
    client = openai_client(_server(TOOL_STREAM))
    async with client.responses.stream(
        model="llama-3.3-70b", input="Weather and time in Paris?"
    ) as stream:
        deltas = [e.delta async for e in stream if e.type == "response.output_text.delta"]
        final = await stream.get_final_response()
    assert "".join(deltas) == "Let me check both."
    assert final.output_text == "Let me check both."
    calls = [item for item in final.output if item.type == "function_call"]
    assert [(c.call_id, c.name) for c in calls] == [
        ("call_W8xK2", "get_weather"),
        ("call_T4mQ9", "get_time"),
    ]
    assert json.loads(calls[0].arguments) == {"location": "Paris, France", "unit": "celsius"}
    assert final.usage is not None and final.usage.total_tokens == 473


async def test_the_sdk_create_stream_yields_typed_events() -> None:
    client = openai_client(
        _server(
            [role_chunk(), *text_chunks("Hi", " there"), finish_chunk("stop"), usage_chunk(5, 2)]
        )
    )
    stream = await client.responses.create(model="m", input="hi", stream=True)
    kinds = [event.type async for event in stream]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert kinds.count("response.output_text.delta") == 2


async def test_the_sdk_stream_helper_accepts_an_incomplete_answer() -> None:
    chunks = [role_chunk(), *text_chunks("Once upon"), finish_chunk("length"), usage_chunk(9, 2)]
    client = openai_client(_server(chunks))
    async with client.responses.stream(model="m", input="story", max_output_tokens=2) as stream:
        events = [event async for event in stream]
    last = events[-1]
    assert last.type == "response.incomplete"
    assert last.response.incomplete_details is not None
    assert last.response.incomplete_details.reason == "max_output_tokens"
    assert last.response.output_text == "Once upon"
