"""Error classification drives fallback: the request's fault returns, the channel's retries."""

from __future__ import annotations

import pickle
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from domain.providers import Upstream, UpstreamError, adapter_for
from domain.providers.errors import redact
from tests.fakes.provider import FakeProvider, Fault
from tests.providers.helpers import (
    KEY,
    chat_request,
    closed_port_url,
    collect,
    streamed_text,
    upstream_for,
)

PATHS = {"openai": "/v1/chat/completions", "anthropic": "/v1/messages", "google": "/v1beta/"}
Call = Callable[[], Awaitable[Any]]


def assert_no_key(err: UpstreamError, key: str = KEY) -> None:
    for text in (str(err), repr(err), err.message, err.raw_excerpt or "", repr(err.args)):
        assert key not in text


async def call_chat(http: httpx.AsyncClient, fake: FakeProvider, provider: str, **kw: Any) -> Any:
    return await adapter_for(provider).chat(
        http, upstream_for(fake, provider, **kw), chat_request(), "pub"
    )


async def call_stream(http: httpx.AsyncClient, fake: FakeProvider, provider: str, **kw: Any) -> Any:
    return await adapter_for(provider).stream(
        http, upstream_for(fake, provider, **kw), chat_request(stream=True), "pub"
    )


@pytest.mark.parametrize("provider", list(PATHS))
@pytest.mark.parametrize("streaming", [False, True])
@pytest.mark.parametrize(
    ("status", "kind", "retryable"),
    [
        (400, "invalid_request", False),
        (404, "not_found", False),
        (401, "auth", True),
        (403, "auth", True),
        (429, "rate_limited", True),
        (500, "server", True),
        (503, "server", True),
    ],
)
async def test_status_classification(
    fake: FakeProvider,
    http: httpx.AsyncClient,
    provider: str,
    streaming: bool,
    status: int,
    kind: str,
    retryable: bool,
) -> None:
    fake.add_fault(Fault(kind="status", path=PATHS[provider], status=status, retry_after="7"))
    call = call_stream if streaming else call_chat
    with pytest.raises(UpstreamError) as info:
        await call(http, fake, provider)
    err = info.value
    assert (err.status, err.kind, err.retryable) == (status, kind, retryable)
    assert err.retry_after_s == (7 if status == 429 else None)
    assert err.diagnostics["x-request-id"] == err.upstream_request_id
    assert "cf-ray" in err.diagnostics
    assert err.raw_excerpt is not None and "injected upstream error" in err.raw_excerpt
    if kind == "invalid_request":
        assert err.message == f"upstream rejected the request: injected upstream error {status}"
    else:
        assert "injected" not in err.message  # generic text only
    assert_no_key(err)


async def test_wrong_key_is_auth_and_never_echoed(
    fake: FakeProvider, http: httpx.AsyncClient
) -> None:
    with pytest.raises(UpstreamError) as info:
        await call_chat(http, fake, "openai", api_key="sk-wrong-key-0000000000")
    assert (info.value.kind, info.value.retryable, info.value.status) == ("auth", True, 401)
    assert_no_key(info.value, "sk-wrong-key-0000000000")


async def test_invalid_request_message_is_redacted_and_truncated(
    fake: FakeProvider, http: httpx.AsyncClient
) -> None:
    echoed = (
        f"bad value near {KEY} and sk-ant-api03-abcdefghijkl and AIzaSyA1234567890abcdef "
        "with Authorization: Bearer abc.def.ghi " + "x" * 600
    )
    body = {"error": {"message": echoed, "type": "invalid_request_error"}}
    fake.add_fault(Fault(kind="status", path="/v1/", status=400, body=body))
    with pytest.raises(UpstreamError) as info:
        await call_chat(http, fake, "openai")
    err = info.value
    assert err.message.startswith("upstream rejected the request: bad value near [redacted]")
    assert len(err.message) <= len("upstream rejected the request: ") + 300
    for secret in (KEY, "sk-ant-api03", "AIzaSy", "abc.def.ghi"):
        assert secret not in err.message
        assert secret not in (err.raw_excerpt or "")
    assert err.raw_excerpt is not None and len(err.raw_excerpt) <= 2000


def test_redact_catches_key_shapes() -> None:
    text = "k=sk-or-v1-abcdef123456 url=https://x/y?key=AIzaSECRET&alt=sse api_key: 'zzz999'"
    out = redact(text, api_key="custom-secret-no-prefix")
    assert "abcdef123456" not in out and "AIzaSECRET" not in out and "zzz999" not in out
    assert "alt=sse" in out
    assert "custom-secret-no-prefix" not in redact(
        "echo custom-secret-no-prefix", "custom-secret-no-prefix"
    )


@pytest.mark.parametrize("streaming", [False, True])
async def test_connect_refused(http: httpx.AsyncClient, streaming: bool) -> None:
    upstream = Upstream("openai", closed_port_url() + "/v1", KEY, "m", timeout_s=2.0)
    adapter = adapter_for("openai")
    with pytest.raises(UpstreamError) as info:
        if streaming:
            await adapter.stream(http, upstream, chat_request(stream=True), "p")
        else:
            await adapter.chat(http, upstream, chat_request(), "p")
    assert (info.value.kind, info.value.retryable, info.value.status) == ("connect", True, None)
    assert_no_key(info.value)


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize("streaming", [False, True])
async def test_timeout(
    fake: FakeProvider, http: httpx.AsyncClient, provider: str, streaming: bool
) -> None:
    fake.add_fault(Fault(kind="latency", path=PATHS[provider], delay_s=0.3))
    call = call_stream if streaming else call_chat
    with pytest.raises(UpstreamError) as info:
        await call(http, fake, provider, timeout_s=0.05)
    assert (info.value.kind, info.value.retryable) == ("timeout", True)


@pytest.mark.parametrize("provider", list(PATHS))
@pytest.mark.parametrize("streaming", [False, True])
async def test_malformed(
    fake: FakeProvider, http: httpx.AsyncClient, provider: str, streaming: bool
) -> None:
    fake.add_fault(Fault(kind="malformed", path=PATHS[provider]))
    call = call_stream if streaming else call_chat
    with pytest.raises(UpstreamError) as info:
        await call(http, fake, provider)
    err = info.value
    assert (err.kind, err.retryable) == ("malformed", True)
    assert err.raw_excerpt is not None and "broken" in err.raw_excerpt
    assert err.message == "the upstream provider sent a malformed response"


@pytest.mark.parametrize("provider", list(PATHS))
@pytest.mark.parametrize(
    "fault",
    [
        Fault(kind="drop"),  # no response at all
        Fault(kind="drop_mid_stream", after_chunks=0),  # headers, then nothing
    ],
)
async def test_drop_before_first_chunk_is_retryable(
    fake: FakeProvider, http: httpx.AsyncClient, provider: str, fault: Fault
) -> None:
    fault.path = PATHS[provider]
    fake.add_fault(fault)
    with pytest.raises(UpstreamError) as info:
        await call_stream(http, fake, provider)
    assert info.value.retryable is True
    assert info.value.kind == "dropped"


async def test_drop_in_json_body_is_retryable(fake: FakeProvider, http: httpx.AsyncClient) -> None:
    fake.add_fault(Fault(kind="drop_mid_stream", path="/v1/"))  # half the JSON body, then FIN
    with pytest.raises(UpstreamError) as info:
        await call_chat(http, fake, "openai")
    assert (info.value.kind, info.value.retryable) == ("dropped", True)


async def test_drop_mid_stream_raises_from_iteration(
    fake: FakeProvider, http: httpx.AsyncClient
) -> None:
    fake.add_fault(Fault(kind="drop_mid_stream", path="/v1/", after_chunks=3))
    stream = await call_stream(http, fake, "openai")
    got: list[dict[str, Any]] = []
    with pytest.raises(UpstreamError) as info:
        async for chunk in stream:
            got.append(chunk)
    err = info.value
    assert (err.kind, err.retryable, err.status) == ("dropped", False, None)
    assert stream.text == "w0 w1 w2" == streamed_text(got)
    assert stream.usage is None
    assert stream.finished is False
    assert stream.diagnostics["x-request-id"] == err.upstream_request_id
    await stream.aclose()  # idempotent after the failure


async def test_closing_early_releases_the_stream(
    fake: FakeProvider, http: httpx.AsyncClient
) -> None:
    stream = await call_stream(http, fake, "anthropic")
    async for _ in stream:
        break
    await stream.aclose()
    assert stream.finished is False
    assert await collect(stream) == []  # iterating a closed stream ends at once


def test_unknown_provider() -> None:
    with pytest.raises(ValueError, match="unknown provider"):
        adapter_for("carrier-pigeon")


async def test_tools_refused_before_any_call(fake: FakeProvider, http: httpx.AsyncClient) -> None:
    request = chat_request(tools=[{"type": "function", "function": {"name": "f"}}])
    for provider in ("anthropic", "google"):
        with pytest.raises(UpstreamError) as info:
            await adapter_for(provider).chat(http, upstream_for(fake, provider), request, "p")
        assert info.value.kind == "invalid_request" and info.value.retryable is False
        assert info.value.message == f"tools are not supported for {provider} channels yet"
    assert fake.requests == []


def test_upstream_error_survives_pickling() -> None:
    err = UpstreamError(
        "rate_limited",
        "slow down",
        retryable=True,
        status=429,
        retry_after_s=3,
        diagnostics={"cf-ray": "x"},
    )
    copy = pickle.loads(pickle.dumps(err))
    assert (copy.kind, copy.message, copy.status, copy.retry_after_s) == (
        "rate_limited",
        "slow down",
        429,
        3,
    )
    assert copy.diagnostics == {"cf-ray": "x"} and copy.retryable is True
