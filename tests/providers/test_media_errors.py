"""Media errors are classified like chat errors: the request's fault stops, the channel's retries.

For the task workflow "retryable" on `poll` means "poll again later", so a 429 or a 5xx in the
middle of a job must never turn into a terminal failure.
"""

from __future__ import annotations

import pickle
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from domain.providers import Upstream, UpstreamError
from domain.providers.media import MediaType, media_adapter_for
from tests.fakes.provider import FakeProvider, Fault
from tests.providers.helpers import KEY, closed_port_url, upstream_for

MODEL = "public-media-model"
Call = Callable[[], Awaitable[Any]]

# (provider, media type, input, path the call hits)
SUBMITS: list[tuple[str, MediaType, dict[str, Any], str]] = [
    ("openai", "image", {"prompt": "p"}, "/v1/images/generations"),
    ("openai", "audio", {"text": "hi"}, "/v1/audio/speech"),
    ("openai", "video", {"prompt": "p"}, "/v1/videos"),
    ("jobs", "image", {"prompt": "p"}, "/jobs"),
]


def assert_no_key(err: UpstreamError, key: str = KEY) -> None:
    for text in (
        str(err),
        repr(err),
        err.message,
        err.raw_excerpt or "",
        repr(err.args),
        repr(err.diagnostics),
    ):
        assert key not in text


def submit_call(
    http: httpx.AsyncClient,
    fake: FakeProvider,
    provider: str,
    media_type: MediaType,
    data: dict[str, Any],
    **kw: Any,
) -> Call:
    upstream = upstream_for(fake, provider, **kw)
    return lambda: media_adapter_for(provider).submit(
        http, upstream, media_type, MODEL, data, idempotency_key="task-test-1"
    )


async def start_job(
    http: httpx.AsyncClient, fake: FakeProvider, provider: str
) -> tuple[Upstream, MediaType, str]:
    media_type: MediaType = "video" if provider == "openai" else "image"
    upstream = upstream_for(fake, provider)
    sub = await media_adapter_for(provider).submit(
        http, upstream, media_type, MODEL, {"prompt": "p"}, idempotency_key="task-test-1"
    )
    assert sub.upstream_job_id is not None
    return upstream, media_type, sub.upstream_job_id


STATUSES = [
    (400, "invalid_request", False),
    (422, "invalid_request", False),
    (401, "auth", True),
    (403, "auth", True),
    (429, "rate_limited", True),
    (500, "server", True),
    (503, "server", True),
]


@pytest.mark.parametrize(("provider", "media_type", "data", "path"), SUBMITS)
@pytest.mark.parametrize(("status", "kind", "retryable"), STATUSES)
async def test_submit_classification(
    fake: FakeProvider,
    http: httpx.AsyncClient,
    provider: str,
    media_type: MediaType,
    data: dict[str, Any],
    path: str,
    status: int,
    kind: str,
    retryable: bool,
) -> None:
    fake.add_fault(Fault(kind="status", path=path, status=status, retry_after="7"))
    with pytest.raises(UpstreamError) as info:
        await submit_call(http, fake, provider, media_type, data)()
    err = info.value
    assert (err.status, err.kind, err.retryable) == (status, kind, retryable)
    assert err.retry_after_s == (7 if status == 429 else None)
    assert err.upstream_request_id is not None
    assert err.diagnostics["x-request-id"] == err.upstream_request_id
    if kind == "invalid_request":
        assert err.message == f"upstream rejected the request: injected upstream error {status}"
    assert_no_key(err)


@pytest.mark.parametrize("provider", ["openai", "jobs"])
@pytest.mark.parametrize("status", [429, 500, 502])
async def test_poll_errors_are_retryable_and_polling_resumes(
    fake: FakeProvider, http: httpx.AsyncClient, provider: str, status: int
) -> None:
    fake.job_polls_until_done = 0
    upstream, media_type, job_id = await start_job(http, fake, provider)
    prefix = "/v1/videos/" if provider == "openai" else "/jobs/"
    fake.add_fault(Fault(kind="status", path=prefix, status=status))
    adapter = media_adapter_for(provider)
    with pytest.raises(UpstreamError) as info:
        await adapter.poll(http, upstream, media_type, job_id)
    assert (info.value.status, info.value.retryable) == (status, True)
    # Retry-as-poll: the next attempt sees the job as if nothing happened.
    assert (await adapter.poll(http, upstream, media_type, job_id)).status == "succeeded"


@pytest.mark.parametrize("provider", ["openai", "jobs"])
async def test_unknown_job_is_not_found_for_good(
    fake: FakeProvider, http: httpx.AsyncClient, provider: str
) -> None:
    media_type: MediaType = "video" if provider == "openai" else "image"
    with pytest.raises(UpstreamError) as info:
        await media_adapter_for(provider).poll(
            http, upstream_for(fake, provider), media_type, "nope_123"
        )
    assert (info.value.kind, info.value.retryable, info.value.status) == ("not_found", False, 404)


@pytest.mark.parametrize("provider", ["openai", "jobs"])
async def test_poll_transport_failures_are_retryable(
    fake: FakeProvider, http: httpx.AsyncClient, provider: str
) -> None:
    upstream, media_type, job_id = await start_job(http, fake, provider)
    prefix = "/v1/videos/" if provider == "openai" else "/jobs/"
    adapter = media_adapter_for(provider)
    for fault, kind in (
        (Fault(kind="drop", path=prefix), "dropped"),
        (Fault(kind="drop_mid_stream", path=prefix), "dropped"),
        (Fault(kind="malformed", path=prefix), "malformed"),
    ):
        fake.add_fault(fault)
        with pytest.raises(UpstreamError) as info:
            await adapter.poll(http, upstream, media_type, job_id)
        assert (info.value.kind, info.value.retryable) == (kind, True)


@pytest.mark.parametrize(("provider", "media_type", "data", "path"), SUBMITS[:2])
async def test_submit_timeout_and_connect_refused(
    fake: FakeProvider,
    http: httpx.AsyncClient,
    provider: str,
    media_type: MediaType,
    data: dict[str, Any],
    path: str,
) -> None:
    fake.add_fault(Fault(kind="latency", path=path, delay_s=0.3))
    with pytest.raises(UpstreamError) as info:
        await submit_call(http, fake, provider, media_type, data, timeout_s=0.05)()
    assert (info.value.kind, info.value.retryable) == ("timeout", True)

    refused = submit_call(http, fake, provider, media_type, data, base_url=closed_port_url())
    with pytest.raises(UpstreamError) as info:
        await refused()
    assert (info.value.kind, info.value.retryable) == ("connect", True)
    assert_no_key(info.value)


async def test_missing_base_url_is_the_channels_fault(http: httpx.AsyncClient) -> None:
    upstream = Upstream("jobs", None, KEY, "m")
    with pytest.raises(UpstreamError) as info:
        await media_adapter_for("jobs").submit(
            http, upstream, "image", MODEL, {"prompt": "p"}, idempotency_key="task-test-1"
        )
    assert (info.value.kind, info.value.retryable) == ("connect", True)


async def test_error_inside_a_200_is_classified(
    fake: FakeProvider, http: httpx.AsyncClient
) -> None:
    body = {"error": {"code": 429, "message": "slow down"}}
    fake.add_fault(Fault(kind="status", path="/v1/images", status=200, body=body))
    with pytest.raises(UpstreamError) as info:
        await submit_call(http, fake, "openai", "image", {"prompt": "p"})()
    assert (info.value.kind, info.value.retryable) == ("rate_limited", True)


async def test_speech_answered_with_json_is_an_error(
    fake: FakeProvider, http: httpx.AsyncClient
) -> None:
    body = {"error": {"message": "voice not found", "code": 400}}
    fake.add_fault(Fault(kind="status", path="/v1/audio/speech", status=200, body=body))
    with pytest.raises(UpstreamError) as info:
        await submit_call(http, fake, "openai", "audio", {"text": "hi"})()
    assert (info.value.kind, info.value.retryable) == ("invalid_request", False)
    assert "voice not found" in info.value.message


async def test_invalid_input_never_reaches_the_upstream(
    fake: FakeProvider, http: httpx.AsyncClient
) -> None:
    for provider in ("openai", "jobs", "demo"):
        with pytest.raises(UpstreamError) as info:
            await submit_call(http, fake, provider, "image", {"prompt": "p", "n": 11})()
        assert (info.value.kind, info.value.retryable) == ("invalid_request", False)
        assert "input.n" in info.value.message
    assert fake.requests == []


def test_unknown_provider() -> None:
    with pytest.raises(ValueError, match="unknown media provider type"):
        media_adapter_for("anthropic")


async def test_errors_survive_pickling(fake: FakeProvider, http: httpx.AsyncClient) -> None:
    fake.add_fault(Fault(kind="status", path="/jobs", status=429))
    with pytest.raises(UpstreamError) as info:
        await submit_call(http, fake, "jobs", "image", {"prompt": "p"})()
    copy = pickle.loads(pickle.dumps(info.value))
    assert (copy.kind, copy.retryable, copy.status) == ("rate_limited", True, 429)


# -- the key never leaks ----------------------------------------------------------------------


async def test_echoed_keys_are_redacted_from_errors(
    fake: FakeProvider, http: httpx.AsyncClient
) -> None:
    custom = "custom-secret-no-prefix-123"
    echoed = f"bad request from {KEY} / {custom} with Authorization: Bearer {KEY}"
    body = {"error": {"message": echoed, "type": "invalid_request_error"}}
    for key in (KEY, custom):
        fake.add_fault(Fault(kind="status", path="/v1/", status=400, body=body))
        with pytest.raises(UpstreamError) as info:
            await submit_call(http, fake, "openai", "image", {"prompt": "p"}, api_key=key)()
        assert info.value.message.startswith("upstream rejected the request: bad request from")
        assert_no_key(info.value, key)


async def test_echoed_keys_are_redacted_from_job_failures(
    fake: FakeProvider, http: httpx.AsyncClient
) -> None:
    error = {"code": "bad key", "message": f"key {KEY} refused\nsee logs\x00"}
    fake.add_fault(
        Fault(
            kind="status",
            path="/jobs/j1",
            status=200,
            body={"id": "j1", "status": "failed", "error": error},
        )
    )
    upstream = upstream_for(fake, "jobs")
    done = await media_adapter_for("jobs").poll(http, upstream, "image", "j1")
    assert done.status == "failed"
    assert done.error_code == "upstream_failed"  # not a code-shaped string: replaced
    assert done.error_message == "key [redacted] refused see logs"
    for text in (repr(done), str(done.to_dict()), repr(upstream), str(upstream)):
        assert KEY not in text


async def test_wrong_key_is_auth_and_never_echoed(
    fake: FakeProvider, http: httpx.AsyncClient
) -> None:
    wrong = "sk-wrong-key-0000000000"
    for provider, media_type, data, _ in SUBMITS:
        with pytest.raises(UpstreamError) as info:
            await submit_call(http, fake, provider, media_type, data, api_key=wrong)()
        assert (info.value.kind, info.value.retryable, info.value.status) == ("auth", True, 401)
        assert_no_key(info.value, wrong)
