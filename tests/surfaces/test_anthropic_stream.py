"""The relay's chat chunk stream → Anthropic's Messages event stream."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx2
import pytest
from anthropic.types import RawMessageStreamEvent
from pydantic import TypeAdapter

from domain.providers.base import Usage
from domain.surfaces.anthropic_in import messages_to_chat
from domain.surfaces.anthropic_stream import MessagesStream, messages_events
from domain.surfaces.sse import event_frame
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
from tests.surfaces.sdk import anthropic_client, no_extras, sse_response

EVENT = TypeAdapter(RawMessageStreamEvent)


def _stream(**kwargs: Any) -> MessagesStream:
    return MessagesStream(
        model="claude-sonnet-4-5", input_tokens=kwargs.pop("input_tokens", 400), **kwargs
    )


async def _events(
    chunks: list[dict[str, Any]], stream: MessagesStream | None = None, **kwargs: Any
) -> list[dict[str, Any]]:
    stream = stream or _stream()
    out = [
        e async for e in messages_events(aiter(chunks, kwargs.pop("fail", None)), stream, **kwargs)
    ]
    for event in out:  # every event is one the SDK knows, with no field it does not
        if event["type"] not in ("ping", "error"):
            no_extras(EVENT.validate_python(event))
    return out


def _shape(events: list[dict[str, Any]]) -> list[str]:
    """Event types, with the block type for starts and delta type for deltas."""
    out = []
    for e in events:
        if e["type"] == "content_block_start":
            out.append(f"start:{e['index']}:{e['content_block']['type']}")
        elif e["type"] == "content_block_delta":
            out.append(f"delta:{e['index']}:{e['delta']['type']}")
        elif e["type"] == "content_block_stop":
            out.append(f"stop:{e['index']}")
        else:
            out.append(e["type"])
    return out


def _collapse(shape: list[str]) -> list[str]:
    """Runs of the same delta shown once."""
    out: list[str] = []
    for item in shape:
        if not (out and item == out[-1] and item.startswith("delta:")):
            out.append(item)
    return out


async def test_text_and_parallel_tool_calls_with_usage_only_at_the_end() -> None:
    events = await _events(TOOL_STREAM)
    assert _collapse(_shape(events)) == [
        "message_start",
        "ping",
        "start:0:text",
        "delta:0:text_delta",
        "stop:0",
        "start:1:tool_use",
        "delta:1:input_json_delta",
        "stop:1",
        "start:2:tool_use",
        "delta:2:input_json_delta",
        "stop:2",
        "message_delta",
        "message_stop",
    ]
    start = events[0]["message"]
    assert start["usage"]["input_tokens"] == 400  # the relay's estimate, never 0
    assert start["content"] == [] and start["stop_reason"] is None
    tool_starts = [e["content_block"] for e in events if e["type"] == "content_block_start"][1:]
    assert tool_starts == [
        {"type": "tool_use", "id": "call_W8xK2", "name": "get_weather", "input": {}},
        {"type": "tool_use", "id": "call_T4mQ9", "name": "get_time", "input": {}},
    ]
    args = "".join(
        e["delta"]["partial_json"]
        for e in events
        if e.get("index") == 1 and e["type"] == "content_block_delta"
    )
    assert json.loads(args) == {"location": "Paris, France", "unit": "celsius"}
    final = events[-2]
    assert final["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}
    assert final["usage"] == {
        "input_tokens": 412 - 128,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 128,
        "output_tokens": 61,
    }


async def test_text_after_a_tool_call_opens_a_new_block() -> None:
    chunks = [
        role_chunk(),
        *tool_chunks(0, "call_A", "Read", '{"file_path": "a"}'),
        *text_chunks("Reading a, ", "then b."),
        *tool_chunks(1, "call_B", "Read", '{"file_path": "b"}'),
        finish_chunk("stop"),  # some servers say "stop" after tool calls
        usage_chunk(50, 20),
    ]
    events = await _events(chunks)
    assert _collapse(_shape(events))[2:-2] == [
        "start:0:tool_use",
        "delta:0:input_json_delta",
        "stop:0",
        "start:1:text",
        "delta:1:text_delta",
        "stop:1",
        "start:2:tool_use",
        "delta:2:input_json_delta",
        "stop:2",
    ]
    assert events[-2]["delta"]["stop_reason"] == "tool_use"


async def test_a_server_reusing_index_zero_still_gets_two_calls() -> None:
    chunks = [
        role_chunk(),
        *tool_chunks(0, "call_A", "Read", '{"file_path": "a"}'),
        *tool_chunks(0, "call_B", "Read", '{"file_path": "b"}'),
        finish_chunk("tool_calls"),
    ]
    events = await _events(chunks)
    ids = [e["content_block"]["id"] for e in events if e["type"] == "content_block_start"]
    assert ids == ["call_A", "call_B"]


async def test_a_call_named_late_and_one_without_an_id() -> None:
    chunks = [
        chunk({"tool_calls": [{"index": 0, "id": "call_late", "function": {"arguments": '{"a"'}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"name": "Late", "arguments": ": 1}"}}]}),
        chunk({"tool_calls": [{"index": 1, "function": {"name": "NoId", "arguments": "{}"}}]}),
        finish_chunk("tool_calls"),
    ]
    events = await _events(chunks)
    starts = [e["content_block"] for e in events if e["type"] == "content_block_start"]
    assert (starts[0]["id"], starts[0]["name"]) == ("call_late", "Late")
    assert starts[1]["name"] == "NoId" and starts[1]["id"].startswith("call_")
    first_args = [
        e["delta"]["partial_json"]
        for e in events
        if e.get("index") == 0 and e["type"] == "content_block_delta"
    ]
    assert "".join(first_args) == '{"a": 1}'  # the fragment sent before the name is kept


async def test_max_tokens_and_estimated_usage_when_none_is_reported() -> None:
    events = await _events([role_chunk(), *text_chunks("a" * 40), finish_chunk("length")])
    final = events[-2]
    assert final["delta"]["stop_reason"] == "max_tokens"
    assert final["usage"]["input_tokens"] == 400  # the estimate stands
    assert final["usage"]["output_tokens"] == 10  # 40 bytes / 4, as the relay estimates


async def test_billed_usage_is_what_the_client_sees() -> None:
    chunks = [role_chunk(), *text_chunks("hi"), finish_chunk("stop"), usage_chunk(10, 1)]
    events = await _events(chunks, final_usage=lambda: Usage(900, 33, cached_tokens=300))
    assert events[-2]["usage"]["input_tokens"] == 600
    assert events[-2]["usage"]["cache_read_input_tokens"] == 300
    assert events[-2]["usage"]["output_tokens"] == 33


@pytest.mark.parametrize("key", ["reasoning_content", "reasoning"])
async def test_reasoning_is_a_thinking_block_only_when_asked_for(key: str) -> None:
    chunks = [role_chunk(), chunk({key: "Let me think."}), *text_chunks("42"), finish_chunk("stop")]
    shown = await _events(chunks, _stream(thinking=True))
    assert _collapse(_shape(shown))[2:-2] == [
        "start:0:thinking",
        "delta:0:thinking_delta",
        "stop:0",
        "start:1:text",
        "delta:1:text_delta",
        "stop:1",
    ]
    hidden = await _events(chunks)
    assert _collapse(_shape(hidden))[2:-2] == ["start:0:text", "delta:0:text_delta", "stop:0"]


async def test_an_upstream_failure_ends_with_an_error_event() -> None:
    events = await _events(
        [role_chunk(), *text_chunks("partial")], fail="the upstream connection dropped"
    )
    assert events[-1] == {
        "type": "error",
        "error": {"type": "api_error", "message": "the upstream connection dropped"},
    }
    assert "message_stop" not in _shape(events) and "message_delta" not in _shape(events)


async def test_push_style_calls_are_idempotent_at_the_ends() -> None:
    stream = _stream()
    assert [e["type"] for e in stream.start()] == ["message_start", "ping"]
    assert stream.start() == []
    done = stream.finish()
    assert [e["type"] for e in done] == ["message_delta", "message_stop"]
    assert done[0]["delta"]["stop_reason"] == "end_turn"
    assert stream.finish() == [] and stream.feed(role_chunk()) == [] and stream.fail("x") == []


def test_frames_name_the_event() -> None:
    frame = event_frame({"type": "content_block_stop", "index": 2})
    assert frame == b'event: content_block_stop\ndata: {"type":"content_block_stop","index":2}\n\n'


def _translating_server(
    chunks: list[dict[str, Any]], seen: list[dict[str, Any]], fail: str | None = None
) -> Any:
    async def handler(request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        seen.append({"body": body, "headers": dict(request.headers)})
        translated = messages_to_chat(body)
        stream = MessagesStream.for_request(translated)
        return sse_response(messages_events(aiter(chunks, fail), stream))

    return handler


async def test_the_anthropic_sdk_rebuilds_the_message() -> None:
    seen: list[dict[str, Any]] = []
    client = anthropic_client(_translating_server(TOOL_STREAM, seen))
    async with client.messages.stream(
        model="gpt-4o",
        max_tokens=1024,
        tools=[
            {"name": "get_weather", "input_schema": {"type": "object"}},
            {"name": "get_time", "input_schema": {"type": "object"}},
        ],
        messages=[{"role": "user", "content": "Weather and time in Paris?"}],
    ) as stream:
        texts = [t async for t in stream.text_stream]
        message = await stream.get_final_message()
    assert "".join(texts) == "Let me check both."
    assert [b.type for b in message.content] == ["text", "tool_use", "tool_use"]
    assert message.content[1].input == {"location": "Paris, France", "unit": "celsius"}  # type: ignore[union-attr]
    assert message.content[2].id == "call_T4mQ9"  # type: ignore[union-attr]
    assert message.stop_reason == "tool_use"
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens) == (284, 128)
    assert message.usage.output_tokens == 61
    assert seen[0]["body"]["stream"] is True


async def test_interleaved_fragments_still_add_up_in_the_sdk() -> None:
    """An upstream interleaving two calls' fragments: late pieces land on their own block."""
    chunks = [
        role_chunk(),
        *tool_chunks(0, "call_A", "f", '{"x": '),
        *tool_chunks(1, "call_B", "g", '{"y": '),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
        chunk({"tool_calls": [{"index": 1, "function": {"arguments": "2}"}}]}),
        finish_chunk("tool_calls"),
    ]
    client = anthropic_client(_translating_server(chunks, []))
    async with client.messages.stream(
        model="m", max_tokens=10, messages=[{"role": "user", "content": "go"}]
    ) as stream:
        message = await stream.get_final_message()
    assert [b.input for b in message.content] == [{"x": 1}, {"y": 2}]  # type: ignore[union-attr]


async def test_the_sdk_raises_on_the_error_event() -> None:
    client = anthropic_client(
        _translating_server([role_chunk(), *text_chunks("par")], [], fail="dropped mid-stream")
    )
    with pytest.raises(anthropic.APIStatusError, match="dropped mid-stream"):
        async with client.messages.stream(
            model="m", max_tokens=10, messages=[{"role": "user", "content": "go"}]
        ) as stream:
            await stream.get_final_message()
