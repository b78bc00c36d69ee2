"""Gemini generateContent: request translation, usage, SSE streaming."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest

from domain.providers import UpstreamError, adapter_for
from domain.providers.gemini import build_payload, finish_reason, usage_from_gemini
from tests.fakes.provider import FakeProvider, Fault
from tests.providers.helpers import KEY, collect, streamed_text, upstream_for

CONVERSATION: dict[str, Any] = {
    "model": "gemini-public",
    "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hello there"},
        {"role": "assistant", "content": "hi"},
        {"role": "user", "content": "how are you"},
    ],
    "max_tokens": 6,
    "temperature": 0.2,
    "top_p": 0.8,
    "stop": ["END", "STOP"],
}


async def test_chat_translates_request_and_usage(
    fake: FakeProvider, http: httpx.AsyncClient
) -> None:
    before = copy.deepcopy(CONVERSATION)
    upstream = upstream_for(fake, "google", model="gemini-2.0-flash")
    result = await adapter_for("google").chat(http, upstream, CONVERSATION, "gemini-public")

    assert before == CONVERSATION
    [call] = fake.calls("/v1beta/models/gemini-2.0-flash:generateContent")
    assert call.headers["x-goog-api-key"] == KEY
    assert "key" not in call.query
    sent = call.json
    assert sent["systemInstruction"] == {"parts": [{"text": "be brief"}]}
    assert [c["role"] for c in sent["contents"]] == ["user", "model", "user"]
    assert sent["contents"][1]["parts"] == [{"text": "hi"}]
    assert sent["generationConfig"] == {
        "maxOutputTokens": 6,
        "temperature": 0.2,
        "topP": 0.8,
        "stopSequences": ["END", "STOP"],
    }
    assert result.body["model"] == "gemini-public"
    assert result.body["choices"][0]["message"]["content"] == "w0 w1 w2 w3 w4 w5"
    assert result.body["choices"][0]["finish_reason"] == "length"
    # system 2 words + contents 2 + 1 + 3 words
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (8, 6)
    assert result.body["usage"]["total_tokens"] == 14
    assert result.diagnostics["x-request-id"] == result.upstream_request_id


async def test_stream_translates_chunks(fake: FakeProvider, http: httpx.AsyncClient) -> None:
    request = {k: v for k, v in CONVERSATION.items() if k != "max_tokens"} | {"stream": True}
    stream = await adapter_for("google").stream(
        http, upstream_for(fake, "google", model="gemini-x"), request, "gemini-public"
    )
    chunks = await collect(stream)

    [call] = fake.calls("/v1beta/models/gemini-x:streamGenerateContent")
    assert call.query == {"alt": "sse"}
    assert "generationConfig" in call.json and "stream" not in call.json
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "w0"}
    assert streamed_text(chunks) == stream.text == "w0 w1 w2 w3 w4 w5 w6 w7"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 8
    assert stream.usage is not None and stream.usage.prompt_tokens == 8
    assert stream.finished is True


async def test_stream_drop_mid_stream(fake: FakeProvider, http: httpx.AsyncClient) -> None:
    fake.add_fault(Fault(kind="drop_mid_stream", path="/v1beta/", after_chunks=3))
    stream = await adapter_for("google").stream(
        http, upstream_for(fake, "google"), {**CONVERSATION, "stream": True}, "p"
    )
    with pytest.raises(UpstreamError) as info:
        await collect(stream)
    assert info.value.kind == "dropped" and info.value.retryable is False
    assert stream.text == "w0 w1 w2"
    assert stream.usage is None and stream.finished is False


async def test_gemini_error_is_classified(fake: FakeProvider, http: httpx.AsyncClient) -> None:
    fake.add_fault(Fault(kind="status", path="/v1beta/", status=400))
    with pytest.raises(UpstreamError) as info:
        await adapter_for("google").chat(http, upstream_for(fake, "google"), CONVERSATION, "p")
    assert info.value.kind == "invalid_request" and info.value.retryable is False
    assert info.value.message == "upstream rejected the request: injected upstream error 400"


async def test_gemini_bad_key_is_the_channels_fault(
    fake: FakeProvider, http: httpx.AsyncClient
) -> None:
    body = {
        "error": {
            "code": 400,
            "message": "API key not valid. Please pass a valid API key.",
            "status": "INVALID_ARGUMENT",
            "details": [{"reason": "API_KEY_INVALID"}],
        }
    }
    fake.add_fault(Fault(kind="status", path="/v1beta/", status=400, body=body))
    with pytest.raises(UpstreamError) as info:
        await adapter_for("google").chat(http, upstream_for(fake, "google"), CONVERSATION, "p")
    assert info.value.kind == "auth" and info.value.retryable is True


def test_images_and_json_mode() -> None:
    request = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "describe"},
                    {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4A=="}},
                ],
            }
        ],
        "response_format": {"type": "json_object"},
    }
    payload = build_payload(request)
    assert payload["contents"][0]["parts"][1] == {
        "inlineData": {"mimeType": "image/jpeg", "data": "/9j/4A=="}
    }
    assert payload["generationConfig"] == {"responseMimeType": "application/json"}
    remote_image = {"type": "image_url", "image_url": {"url": "https://x/y.png"}}
    remote = {"messages": [{"role": "user", "content": [remote_image]}]}
    with pytest.raises(UpstreamError) as info:
        build_payload(remote)
    assert info.value.kind == "invalid_request"


def test_usage_and_finish_mapping() -> None:
    usage = usage_from_gemini(
        {
            "promptTokenCount": 50,
            "candidatesTokenCount": 10,
            "thoughtsTokenCount": 5,
            "cachedContentTokenCount": 40,
        }
    )
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens) == (50, 15, 40)
    assert finish_reason("STOP") == "stop"
    assert finish_reason("MAX_TOKENS") == "length"
    assert finish_reason("SAFETY") == "content_filter"
    assert finish_reason("RECITATION") == "content_filter"
