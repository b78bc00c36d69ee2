"""Downloading a finished job's result with the channel's key, against the fake over HTTP."""

from __future__ import annotations

import httpx
import pytest

from domain.providers import Upstream, UpstreamError
from domain.providers.media import MediaType, media_adapter_for
from tests.fakes.provider import VIDEO_CONTENT_BYTES, FakeProvider, Fault, fake_video_bytes
from tests.providers.helpers import KEY, upstream_for


async def finished_video(http: httpx.AsyncClient, fake: FakeProvider) -> tuple[Upstream, str]:
    fake.job_polls_until_done = 0
    upstream = upstream_for(fake, "openai", model="sora-2")
    adapter = media_adapter_for("openai")
    sub = await adapter.submit(
        http,
        upstream,
        "video",
        "m",
        {"prompt": "waves", "seconds": 4},
        idempotency_key="task-test-1",
    )
    assert sub.upstream_job_id is not None
    done = await adapter.poll(http, upstream, "video", sub.upstream_job_id)
    assert done.status == "succeeded"
    return upstream, sub.upstream_job_id


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_openai_video_content_streams_with_the_channel_key(
    fake: FakeProvider, http: httpx.AsyncClient, chunked: bool
) -> None:
    upstream, job_id = await finished_video(http, fake)
    fake.video_content_chunked = chunked
    adapter = media_adapter_for("openai")
    assert adapter.content_needs_channel("video")

    content = await adapter.content(http, upstream, "video", job_id)
    length = None if chunked else VIDEO_CONTENT_BYTES
    assert (content.content_type, content.content_length) == ("video/mp4", length)
    assert content.upstream_request_id is not None
    body = b"".join([piece async for piece in content.chunks()])
    assert body == fake_video_bytes(job_id)
    await content.aclose()  # idempotent after a full read

    (call,) = fake.calls(f"/v1/videos/{job_id}/content")
    assert call.method == "GET" and call.headers["authorization"] == f"Bearer {KEY}"
    assert KEY not in repr(content)


async def test_openai_video_content_without_the_key_is_refused_upstream(
    fake: FakeProvider, http: httpx.AsyncClient
) -> None:
    """What a customer holding only the upstream URL would get: the fake enforces the key."""
    upstream, job_id = await finished_video(http, fake)
    keyless = Upstream("openai", upstream.base_url, None, "sora-2", timeout_s=5.0)
    with pytest.raises(UpstreamError) as info:
        await media_adapter_for("openai").content(http, keyless, "video", job_id)
    assert (info.value.kind, info.value.status) == ("auth", 401)


async def test_expired_content_is_not_found(fake: FakeProvider, http: httpx.AsyncClient) -> None:
    upstream, job_id = await finished_video(http, fake)
    fake.video_content_expired = True
    with pytest.raises(UpstreamError) as info:
        await media_adapter_for("openai").content(http, upstream, "video", job_id)
    assert (info.value.kind, info.value.status, info.value.retryable) == ("not_found", 404, False)


async def test_upstream_failure_is_classified_and_redacted(
    fake: FakeProvider, http: httpx.AsyncClient
) -> None:
    upstream, job_id = await finished_video(http, fake)
    echo = {"error": {"message": f"boom; your key {KEY} was fine", "type": "server_error"}}
    fake.add_fault(Fault(kind="status", path=f"/v1/videos/{job_id}/content", status=500, body=echo))
    with pytest.raises(UpstreamError) as info:
        await media_adapter_for("openai").content(http, upstream, "video", job_id)
    err = info.value
    assert (err.kind, err.status) == ("server", 500)
    assert KEY not in err.message and KEY not in (err.raw_excerpt or "")
    assert "[redacted]" in (err.raw_excerpt or "")


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_drop_mid_body_fails_the_read_rather_than_ending_it(
    fake: FakeProvider, http: httpx.AsyncClient, chunked: bool
) -> None:
    upstream, job_id = await finished_video(http, fake)
    fake.video_content_chunked = chunked
    fake.add_fault(Fault(kind="drop_mid_stream", path=f"/v1/videos/{job_id}/content"))
    content = await media_adapter_for("openai").content(http, upstream, "video", job_id)
    assert content.content_length == (None if chunked else VIDEO_CONTENT_BYTES)
    received = bytearray()
    with pytest.raises(UpstreamError) as info:
        async for piece in content.chunks():
            received += piece
    assert (info.value.kind, info.value.retryable) == ("dropped", False)
    assert len(received) < VIDEO_CONTENT_BYTES


@pytest.mark.parametrize(
    ("provider", "media_type"),
    [("openai", "image"), ("openai", "audio"), ("jobs", "video"), ("demo", "video")],
)
async def test_other_results_are_not_downloaded_through_the_gateway(
    fake: FakeProvider, http: httpx.AsyncClient, provider: str, media_type: MediaType
) -> None:
    adapter = media_adapter_for(provider)
    assert not adapter.content_needs_channel(media_type)
    with pytest.raises(UpstreamError) as info:
        await adapter.content(http, upstream_for(fake, provider), media_type, "job_1")
    assert (info.value.kind, info.value.retryable) == ("invalid_request", False)
    assert fake.requests == []
