"""Wire shapes the fake provider never sends but real upstreams do, served by MockTransport."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from domain.providers import Upstream, UpstreamError, adapter_for
from tests.providers.helpers import KEY, chat_request, collect


def sse(*events: tuple[str | None, Any]) -> bytes:
    out = b""
    for name, data in events:
        if name:
            out += f"event: {name}\n".encode()
        payload = data if isinstance(data, str) else json.dumps(data)
        out += f"data: {payload}\n\n".encode()
    return out


def client_for(status: int, body: bytes, content_type: str) -> httpx.AsyncClient:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body, headers={"content-type": content_type})

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


@pytest.fixture
def upstreams() -> dict[str, Upstream]:
    return {
        name: Upstream(name, "http://upstream.test/v1", KEY, "m")
        for name in ("openai", "anthropic")
    }


def chunk(content: str | None, finish: str | None = None) -> dict[str, Any]:
    delta = {} if content is None else {"content": content}
    return {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


async def stream_of(
    provider: str, upstream: Upstream, body: bytes
) -> AsyncIterator[dict[str, Any]]:
    async with client_for(200, body, "text/event-stream") as http:
        stream = await adapter_for(provider).stream(http, upstream, chat_request(), "pub")
        async for item in stream:
            yield item


async def test_anthropic_error_event_before_output_is_retryable(
    upstreams: dict[str, Upstream],
) -> None:
    body = sse(
        ("message_start", {"type": "message_start", "message": {"id": "msg_1", "usage": {}}}),
        ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}),
    )
    with pytest.raises(UpstreamError) as info:
        await collect_all("anthropic", upstreams["anthropic"], body)
    assert (info.value.kind, info.value.retryable, info.value.status) == ("server", True, 529)


async def test_anthropic_error_event_after_output_is_final(
    upstreams: dict[str, Upstream],
) -> None:
    delta = {"type": "content_block_delta", "index": 0}
    body = sse(
        ("message_start", {"type": "message_start", "message": {"id": "msg_1", "usage": {}}}),
        ("content_block_delta", {**delta, "delta": {"type": "text_delta", "text": "partial"}}),
        ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}),
    )
    got: list[dict[str, Any]] = []
    with pytest.raises(UpstreamError) as info:
        async for item in stream_of("anthropic", upstreams["anthropic"], body):
            got.append(item)
    assert info.value.retryable is False
    assert got[-1]["choices"][0]["delta"] == {"content": "partial"}


async def test_openai_stream_without_done_or_usage_still_completes(
    upstreams: dict[str, Upstream],
) -> None:
    """Older OpenAI-compatible servers ignore stream_options and omit [DONE]."""
    body = sse((None, chunk("hello world")), (None, chunk(None, "stop")))
    async with client_for(200, body, "text/event-stream") as http:
        stream = await adapter_for("openai").stream(
            http, upstreams["openai"], chat_request(), "pub"
        )
        chunks = await collect(stream)
    assert stream.finished is True
    assert stream.usage is not None and stream.usage.estimated is True
    assert stream.usage.completion_tokens == 3  # ceil(11 bytes / 4)
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 3


async def test_openai_stream_ending_without_finish_is_dropped(
    upstreams: dict[str, Upstream],
) -> None:
    body = sse((None, chunk("hello")))
    with pytest.raises(UpstreamError) as info:
        await collect_all("openai", upstreams["openai"], body)
    assert (info.value.kind, info.value.retryable) == ("dropped", False)


async def test_openai_mid_stream_error_object(upstreams: dict[str, Upstream]) -> None:
    body = sse((None, {"error": {"code": 502, "message": "provider returned error"}}))
    with pytest.raises(UpstreamError) as info:
        await collect_all("openai", upstreams["openai"], body)
    assert (info.value.kind, info.value.retryable, info.value.status) == ("server", True, 502)


async def test_error_inside_a_200_json_body(upstreams: dict[str, Upstream]) -> None:
    body = json.dumps({"error": {"code": 429, "message": "slow down"}}).encode()
    async with client_for(200, body, "application/json") as http:
        with pytest.raises(UpstreamError) as info:
            await adapter_for("openai").chat(http, upstreams["openai"], chat_request(), "p")
    assert (info.value.kind, info.value.retryable) == ("rate_limited", True)


async def test_json_usage_missing_is_estimated(upstreams: dict[str, Upstream]) -> None:
    reply = {
        "id": "x",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "abcd"}}],
    }
    async with client_for(200, json.dumps(reply).encode(), "application/json") as http:
        result = await adapter_for("openai").chat(http, upstreams["openai"], chat_request(), "p")
    assert result.usage.estimated is True and result.usage.completion_tokens == 1
    assert result.body["usage"]["completion_tokens"] == 1


async def collect_all(provider: str, upstream: Upstream, body: bytes) -> list[dict[str, Any]]:
    return [item async for item in stream_of(provider, upstream, body)]
