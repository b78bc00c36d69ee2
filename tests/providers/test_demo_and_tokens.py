"""The no-network demo provider and the token estimates it (and billing fallbacks) rely on."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from domain.providers import Upstream, adapter_for, estimate_prompt_tokens, estimate_text_tokens
from tests.providers.helpers import chat_request, collect, streamed_text

DEMO = Upstream("demo", None, None, "demo-model")


def refuse(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"the demo provider must not touch the network: {request.url}")


@pytest.fixture
async def offline() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as client:
        yield client


async def test_demo_chat_is_deterministic(offline: httpx.AsyncClient) -> None:
    request = chat_request("please tell me a story about a tiny robot")
    first = await adapter_for("demo").chat(offline, DEMO, request, "demo-public")
    second = await adapter_for("demo").chat(offline, DEMO, request, "demo-public")

    content = first.body["choices"][0]["message"]["content"]
    assert content == ("Hello from 0xinf demo. You said: please tell me a story about a tiny robot")
    assert second.body["choices"][0]["message"]["content"] == content
    assert first.body["model"] == "demo-public"
    assert first.body["choices"][0]["finish_reason"] == "stop"
    assert first.usage.prompt_tokens == estimate_prompt_tokens(request)
    assert first.usage.completion_tokens == len(content.split()) == 15
    assert first.body["usage"]["total_tokens"] == first.usage.total_tokens


async def test_demo_echoes_at_most_twenty_words_and_honours_max_tokens(
    offline: httpx.AsyncClient,
) -> None:
    long = " ".join(f"word{i}" for i in range(50))
    result = await adapter_for("demo").chat(offline, DEMO, chat_request(long), "p")
    assert result.usage.completion_tokens == 4 + 2 + 20

    capped = await adapter_for("demo").chat(offline, DEMO, chat_request(long, max_tokens=3), "p")
    assert capped.body["choices"][0]["message"]["content"] == "Hello from 0xinf"
    assert capped.body["choices"][0]["finish_reason"] == "length"
    assert capped.usage.completion_tokens == 3


async def test_demo_stream(offline: httpx.AsyncClient) -> None:
    request = chat_request("hi there", stream=True)
    stream = await adapter_for("demo").stream(offline, DEMO, request, "demo-public")
    assert stream.usage is None and stream.finished is False
    chunks = await collect(stream)

    words = ["Hello", "from", "0xinf", "demo.", "You", "said:", "hi", "there"]
    assert len(chunks) == len(words) + 2  # one per word, the finish chunk, the usage chunk
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "Hello"}
    assert streamed_text(chunks) == stream.text == " ".join(words)
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == len(words)
    assert stream.usage is not None and stream.usage.prompt_tokens == estimate_prompt_tokens(
        request
    )
    assert stream.finished is True
    assert all(c["model"] == "demo-public" for c in chunks)


def test_prompt_estimate_leans_high() -> None:
    request = {
        "messages": [
            {"role": "system", "content": "abc"},  # 3 bytes
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "héllo"},  # 6 bytes
                    {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
                ],
            },
        ]
    }
    # ceil(9 / 3) + 4 per message + 3 priming + 85 per image
    assert estimate_prompt_tokens(request) == 3 + 8 + 3 + 85
    assert estimate_prompt_tokens({}) == 3
    english = "The quick brown fox jumps over the lazy dog. " * 20
    # cl100k counts ~10 tokens per sentence here; the estimate must not undershoot.
    assert estimate_prompt_tokens(chat_request(english)) >= 200


def test_prompt_estimate_counts_tools() -> None:
    bare = chat_request("hi")
    with_tools = chat_request("hi", tools=[{"type": "function", "function": {"name": "f" * 30}}])
    assert estimate_prompt_tokens(with_tools) > estimate_prompt_tokens(bare) + 10


def test_text_estimate() -> None:
    assert estimate_text_tokens("") == 0
    assert estimate_text_tokens("a") == 1
    assert estimate_text_tokens("abcdefgh") == 2
    assert estimate_text_tokens("日本") == 2  # 6 bytes
