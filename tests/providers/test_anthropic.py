"""Anthropic Messages API: request translation, usage folding, streaming events."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest

from domain.providers import Upstream, UpstreamError, adapter_for
from domain.providers.anthropic import build_payload, usage_from_anthropic
from tests.fakes.provider import FakeProvider, Fault
from tests.providers.helpers import KEY, collect, streamed_text, upstream_for

STATIC = Upstream("anthropic", None, KEY, "claude-upstream")
CONVERSATION: dict[str, Any] = {
    "model": "claude-public",
    "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "developer", "content": [{"type": "text", "text": "and kind"}]},
        {"role": "user", "content": "hello there"},
        {"role": "assistant", "content": "hi"},
        {"role": "user", "content": [{"type": "text", "text": "how are you"}]},
    ],
    "temperature": 0.5,
    "top_p": 0.9,
    "stop": "END",
    "presence_penalty": 0.1,  # no Anthropic equivalent: dropped, it only nudges sampling
}


async def test_chat_translates_request_and_usage(
    fake: FakeProvider, http: httpx.AsyncClient
) -> None:
    before = copy.deepcopy(CONVERSATION)
    upstream = upstream_for(fake, "anthropic", model="claude-upstream")
    result = await adapter_for("anthropic").chat(http, upstream, CONVERSATION, "claude-public")

    assert before == CONVERSATION
    call = fake.calls("/v1/messages")[0]
    assert call.headers["x-api-key"] == KEY
    assert call.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in call.headers
    sent = call.json
    assert sent["model"] == "claude-upstream"
    assert sent["system"] == "be brief\n\nand kind"
    assert sent["max_tokens"] == 4096
    assert sent["temperature"] == 0.5 and sent["top_p"] == 0.9
    assert sent["stop_sequences"] == ["END"]
    assert "presence_penalty" not in sent and "stream" not in sent
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
    assert sent["messages"][0]["content"] == [{"type": "text", "text": "hello there"}]

    assert result.body["model"] == "claude-public"
    assert result.body["choices"][0]["message"] == {
        "role": "assistant",
        "content": "w0 w1 w2 w3 w4 w5 w6 w7",
        "refusal": None,
    }
    assert result.body["choices"][0]["finish_reason"] == "stop"
    # system (4 words) + messages (2 + 1 + 3 words), as the fake counts them
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (10, 8)
    assert result.upstream_request_id == result.diagnostics["request-id"]
    assert result.body["id"].startswith("msg_")


async def test_max_tokens_maps_and_length_finish(
    fake: FakeProvider, http: httpx.AsyncClient
) -> None:
    request = {**CONVERSATION, "max_completion_tokens": 3}
    result = await adapter_for("anthropic").chat(
        http, upstream_for(fake, "anthropic"), request, "p"
    )
    assert fake.calls("/v1/messages")[0].json["max_tokens"] == 3
    assert result.body["choices"][0]["finish_reason"] == "length"
    assert result.usage.completion_tokens == 3


async def test_stream_translates_events(fake: FakeProvider, http: httpx.AsyncClient) -> None:
    request = {**CONVERSATION, "stream": True, "max_tokens": 5}
    stream = await adapter_for("anthropic").stream(
        http, upstream_for(fake, "anthropic"), request, "claude-public"
    )
    chunks = await collect(stream)

    sent = fake.calls("/v1/messages")[0].json
    assert sent["stream"] is True and sent["max_tokens"] == 5
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(c["model"] == "claude-public" for c in chunks)
    assert streamed_text(chunks) == stream.text == "w0 w1 w2 w3 w4"
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    assert stream.usage is not None and stream.usage.estimated is False
    assert stream.finished is True
    assert stream.upstream_request_id == stream.diagnostics["request-id"]


async def test_stream_drop_mid_stream(fake: FakeProvider, http: httpx.AsyncClient) -> None:
    # message_start, content_block_start, then two text deltas before the connection dies.
    fake.add_fault(Fault(kind="drop_mid_stream", path="/v1/messages", after_chunks=4))
    stream = await adapter_for("anthropic").stream(
        http, upstream_for(fake, "anthropic"), {**CONVERSATION, "stream": True}, "p"
    )
    got: list[dict[str, Any]] = []
    with pytest.raises(UpstreamError) as info:
        async for chunk in stream:
            got.append(chunk)
    assert info.value.kind == "dropped" and info.value.retryable is False
    assert stream.text == "w0 w1" == streamed_text(got)
    assert stream.usage is None and stream.finished is False


def test_usage_folds_cache_tokens_into_prompt() -> None:
    usage = usage_from_anthropic(
        {
            "input_tokens": 10,
            "output_tokens": 7,
            "cache_read_input_tokens": 100,
            "cache_creation_input_tokens": 20,
        }
    )
    assert usage is not None
    assert (usage.prompt_tokens, usage.cached_tokens, usage.completion_tokens) == (130, 100, 7)
    assert usage.to_openai()["prompt_tokens_details"] == {"cached_tokens": 100}


def test_images_become_anthropic_blocks() -> None:
    request = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw=="}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg"}},
                ],
            }
        ]
    }
    blocks = build_payload(STATIC, request, False)["messages"][0]["content"]
    assert blocks[1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw=="},
    }
    assert blocks[2] == {
        "type": "image",
        "source": {"type": "url", "url": "https://example.com/a.jpg"},
    }


@pytest.mark.parametrize(
    "extra",
    [
        {"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]},
        {"messages": [{"role": "tool", "tool_call_id": "c", "content": "x"}]},
        {"n": 2},
        {"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
    ],
)
def test_untranslatable_requests_are_refused(extra: dict[str, Any]) -> None:
    request = {"messages": [{"role": "user", "content": "hi"}], **extra}
    with pytest.raises(UpstreamError) as info:
        build_payload(STATIC, request, False)
    assert info.value.kind == "invalid_request" and info.value.retryable is False
    if "tools" in extra:
        assert info.value.message == "tools are not supported for anthropic channels yet"
