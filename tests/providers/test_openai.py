"""OpenAI-style upstreams: pass-through, model mapping, streaming usage, OpenRouter headers."""

from __future__ import annotations

import copy

import httpx
import pytest

from config.runtime import build_http_client
from domain.providers import Upstream, UpstreamError, adapter_for
from domain.providers.aiohttp_transport import UpstreamClient
from tests.fakes.provider import FakeProvider
from tests.providers.helpers import KEY, chat_request, collect, streamed_text, upstream_for


async def test_chat_maps_model_and_reports_usage(
    fake: FakeProvider, http: httpx.AsyncClient
) -> None:
    upstream = upstream_for(fake, "openai", model="gpt-4o-mini")
    result = await adapter_for("openai").chat(http, upstream, chat_request(), "my-public")

    sent = fake.calls("/v1/chat/completions")[0]
    assert sent.json["model"] == "gpt-4o-mini"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert "stream" not in sent.json and "stream_options" not in sent.json
    assert result.status == 200
    assert result.body["model"] == "my-public"
    assert result.body["object"] == "chat.completion"
    assert result.body["choices"][0]["message"]["content"] == "w0 w1 w2 w3 w4 w5 w6 w7"
    assert result.body["choices"][0]["finish_reason"] == "stop"
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (3, 8)
    assert result.usage.estimated is False
    assert result.body["usage"]["total_tokens"] == 11


async def test_unknown_fields_pass_through_and_request_is_not_mutated(
    fake: FakeProvider, http: httpx.AsyncClient
) -> None:
    request = chat_request(
        max_completion_tokens=3,
        logit_bias={"50256": -100},
        x_vendor_knob={"deep": [1, 2]},
        stream=True,  # chat() must not forward a streaming flag
        stream_options={"include_usage": True},
    )
    before = copy.deepcopy(request)
    result = await adapter_for("openai_compatible").chat(
        http, upstream_for(fake, "openai_compatible"), request, "pub"
    )

    assert request == before
    sent = fake.calls("/v1/chat/completions")[0].json
    assert sent["x_vendor_knob"] == {"deep": [1, 2]}
    assert sent["logit_bias"] == {"50256": -100}
    assert sent["max_completion_tokens"] == 3
    assert "stream" not in sent and "stream_options" not in sent
    assert result.body["choices"][0]["finish_reason"] == "length"
    assert result.usage.completion_tokens == 3


async def test_stream_forces_usage_and_ends_with_usage_chunk(
    fake: FakeProvider, http: httpx.AsyncClient
) -> None:
    request = chat_request(stream=True, stream_options={"continuous_usage_stats": False})
    before = copy.deepcopy(request)
    stream = await adapter_for("openai").stream(http, upstream_for(fake, "openai"), request, "pub")
    chunks = await collect(stream)

    assert request == before
    sent = fake.calls("/v1/chat/completions")[0].json
    assert sent["stream"] is True
    assert sent["stream_options"] == {"continuous_usage_stats": False, "include_usage": True}
    assert all(c["model"] == "pub" for c in chunks)
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    content = [c for c in chunks if c["choices"]]
    # The client did not ask for usage, so the upstream's `usage: null` fields are dropped.
    assert all("usage" not in c for c in content)
    assert content[0]["choices"][0]["delta"]["role"] == "assistant"
    assert content[-1]["choices"][0]["finish_reason"] == "stop"
    last = chunks[-1]
    assert last["choices"] == [] and last["usage"]["completion_tokens"] == 8
    assert last["id"] == content[0]["id"]
    assert streamed_text(chunks) == stream.text == "w0 w1 w2 w3 w4 w5 w6 w7"
    assert stream.usage is not None and stream.usage.prompt_tokens == 3
    assert stream.finished is True
    assert stream.diagnostics["x-request-id"].startswith("req_")
    assert stream.upstream_request_id == stream.diagnostics["x-request-id"]


async def test_stream_keeps_null_usage_when_client_asked_for_it(
    fake: FakeProvider, http: httpx.AsyncClient
) -> None:
    request = chat_request(stream=True, stream_options={"include_usage": True})
    stream = await adapter_for("openai").stream(http, upstream_for(fake, "openai"), request, "p")
    chunks = await collect(stream)
    assert all(c["usage"] is None for c in chunks if c["choices"])
    assert next(c for c in chunks if not c["choices"])["usage"]["prompt_tokens"] == 3


async def test_openrouter_sends_attribution_headers(
    fake: FakeProvider, http: httpx.AsyncClient
) -> None:
    await adapter_for("openrouter").chat(
        http, upstream_for(fake, "openrouter"), chat_request(), "pub"
    )
    headers = fake.calls("/v1/chat/completions")[0].headers
    assert headers["http-referer"] == "https://0xinf.dev"
    assert headers["x-title"] == "0xinf"

    fake.reset()
    custom = upstream_for(
        fake,
        "openrouter",
        extra_headers={"HTTP-Referer": "https://acme.example", "X-Title": "Acme"},
    )
    stream = await adapter_for("openrouter").stream(http, custom, chat_request(stream=True), "pub")
    await collect(stream)
    headers = fake.calls("/v1/chat/completions")[0].headers
    assert headers["http-referer"] == "https://acme.example"
    assert headers["x-title"] == "Acme"
    assert headers["authorization"] == f"Bearer {KEY}"


async def test_ollama_sends_no_auth_header_without_a_key(
    fake: FakeProvider, http: httpx.AsyncClient
) -> None:
    upstream = upstream_for(fake, "ollama", api_key=None)
    # The fake insists on a key (a real Ollama does not), so this ends in a 401.
    with pytest.raises(UpstreamError) as info:
        await adapter_for("ollama").chat(http, upstream, chat_request(), "pub")
    assert info.value.kind == "auth"
    assert "authorization" not in fake.calls("/v1/chat/completions")[0].headers


async def test_diagnostics_and_request_id(fake: FakeProvider, http: httpx.AsyncClient) -> None:
    result = await adapter_for("openai").chat(
        http, upstream_for(fake, "openai"), chat_request(), "pub"
    )
    assert set(result.diagnostics) >= {"x-request-id", "cf-ray", "response-id"}
    assert result.diagnostics["cf-ray"].endswith("-SJC")
    assert result.upstream_request_id == result.diagnostics["x-request-id"]
    assert result.diagnostics["response-id"] == result.body["id"]


def test_upstream_repr_hides_key() -> None:
    upstream = Upstream(
        "openai", "https://x", "sk-secret-value-123", "m", extra_headers={"X-Auth": "hidden"}
    )
    for text in (repr(upstream), str(upstream), f"{upstream}"):
        assert "sk-secret-value-123" not in text
        assert "hidden" not in text
    assert "X-Auth" in repr(upstream)


@pytest.mark.parametrize("content", ["\ud800", float("nan")])
async def test_unencodable_bodies_are_the_clients_fault_on_every_transport(
    fake: FakeProvider, http: httpx.AsyncClient, content: object
) -> None:
    """Never a retryable channel failure: that would trip breakers for everyone."""
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}]}
    with pytest.raises(UpstreamError) as caught:
        await adapter_for("openai").chat(http, upstream_for(fake, "openai"), body, "gpt-4o-mini")
    assert caught.value.kind == "invalid_request" and not caught.value.retryable
    assert fake.calls("/v1/chat/completions") == []


def test_a_proxy_in_the_environment_keeps_plain_httpx(monkeypatch: pytest.MonkeyPatch) -> None:
    """aiohttp's transport would bypass it: with a proxy configured, httpx does the work."""
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    client = build_http_client()
    assert not isinstance(client, UpstreamClient)
    monkeypatch.delenv("HTTPS_PROXY")
    assert isinstance(build_http_client(), UpstreamClient)


def test_headers_merge_case_insensitively_and_the_key_wins() -> None:
    upstream = Upstream(
        "openrouter", "https://x", "sk-real", "m",
        extra_headers={"Authorization": "Bearer stale", "x-TITLE": "Acme", "X-Extra": "1"},
    )  # fmt: skip
    assert adapter_for("openrouter").headers(upstream) == {
        "authorization": "Bearer sk-real",  # one, the channel's key
        "x-title": "Acme",  # the channel's, whatever its case
        "http-referer": "https://0xinf.dev",
        "x-extra": "1",
    }
