"""Media adapters against the fake upstream over real HTTP: submit, poll to terminal, units."""

from __future__ import annotations

import base64
import copy
import io
import wave
from typing import Any

import httpx
import pytest

from domain.providers import Upstream, UpstreamError
from domain.providers.media import (
    MediaOutcome,
    MediaSubmission,
    MediaType,
    media_adapter_for,
)
from domain.results.sources import decode_data_url
from tests.fakes.provider import FakeProvider, Fault
from tests.providers.helpers import KEY, upstream_for

MODEL = "public-media-model"


async def submit(
    http: httpx.AsyncClient,
    fake: FakeProvider,
    provider: str,
    media_type: MediaType,
    data: dict[str, Any],
    **kw: Any,
) -> MediaSubmission:
    upstream = upstream_for(fake, provider, **kw)
    return await media_adapter_for(provider).submit(
        http, upstream, media_type, MODEL, data, idempotency_key="task-test-1"
    )


async def poll_until_done(
    http: httpx.AsyncClient,
    upstream: Upstream,
    provider: str,
    media_type: MediaType,
    job_id: str,
    limit: int = 10,
) -> tuple[list[MediaOutcome], MediaOutcome]:
    """Returns the processing outcomes seen on the way and the terminal one."""
    adapter = media_adapter_for(provider)
    seen: list[MediaOutcome] = []
    for _ in range(limit):
        outcome = await adapter.poll(http, upstream, media_type, job_id)
        if outcome.terminal:
            return seen, outcome
        seen.append(outcome)
    raise AssertionError("job never finished")


# -- OpenAI-style: images and speech are synchronous -------------------------------------------


@pytest.mark.parametrize("provider", ["openai", "openai_compatible"])
async def test_openai_image_is_synchronous_and_bills_images(
    fake: FakeProvider, http: httpx.AsyncClient, provider: str
) -> None:
    data = {"prompt": "a red fox", "n": 3, "size": "1024x1024", "style": "vivid", "model": "x"}
    before = copy.deepcopy(data)
    sub = await submit(http, fake, provider, "image", data, model="dall-e-3")

    assert data == before
    sent = fake.calls("/v1/images/generations")[0]
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    # The channel's model wins over anything in the input; unknown fields pass through.
    assert sent.json == {
        "prompt": "a red fox",
        "n": 3,
        "size": "1024x1024",
        "style": "vivid",
        "model": "dall-e-3",
    }
    assert sub.upstream_job_id is None
    assert sub.outcome.status == "succeeded" and sub.outcome.progress == 100
    urls = sub.outcome.urls
    assert all(u.startswith(f"{fake.base_url}/files/img/") for u in urls)
    assert [u.rsplit("/", 1)[1] for u in urls] == [f"{i}.png" for i in range(3)]
    assert sub.outcome.units == 3
    assert sub.upstream_request_id is not None
    assert sub.upstream_request_id == sub.diagnostics["x-request-id"]
    assert "cf-ray" in sub.diagnostics


async def test_openai_inline_images_become_data_urls(
    fake: FakeProvider, http: httpx.AsyncClient
) -> None:
    body = {"created": 1, "output_format": "webp", "data": [{"b64_json": "aGk="}] * 2}
    fake.add_fault(Fault(kind="status", path="/v1/images", status=200, body=body))
    sub = await submit(http, fake, "openai", "image", {"prompt": "p", "n": 2})
    assert sub.outcome.urls == ["data:image/webp;base64,aGk="] * 2
    assert sub.outcome.units == 2


async def test_openai_image_without_images_fails_unbilled(
    fake: FakeProvider, http: httpx.AsyncClient
) -> None:
    fake.add_fault(Fault(kind="status", path="/v1/images", status=200, body={"data": []}))
    sub = await submit(http, fake, "openai", "image", {"prompt": "p"})
    assert (sub.outcome.status, sub.outcome.units) == ("failed", 0)
    assert sub.outcome.error_code == "no_output"


async def test_openai_speech_returns_bytes_and_bills_thousands_of_chars(
    fake: FakeProvider, http: httpx.AsyncClient
) -> None:
    text = "x" * 2001
    sub = await submit(
        http, fake, "openai", "audio", {"text": text, "format": "mp3"}, model="tts-1"
    )

    sent = fake.calls("/v1/audio/speech")[0].json
    assert sent == {"model": "tts-1", "input": text, "voice": "alloy", "response_format": "mp3"}
    out = sub.outcome
    assert sub.upstream_job_id is None
    assert out.status == "succeeded" and out.content_type == "audio/mpeg"
    assert out.content_b64 is not None
    audio = base64.b64decode(out.content_b64)
    assert audio.startswith(b"ID3") and len(audio) == 5 + 32 * len(text)
    assert out.units == 3
    assert out.urls == []
    assert str(len(out.content_b64)) in repr(out) and out.content_b64 not in repr(out)


async def test_openai_speech_accepts_openai_spelling(
    fake: FakeProvider, http: httpx.AsyncClient
) -> None:
    sub = await submit(http, fake, "openai", "audio", {"input": "hello", "voice": "nova"})
    assert fake.calls("/v1/audio/speech")[0].json["voice"] == "nova"
    assert sub.outcome.units == 1


# -- OpenAI video: a job ------------------------------------------------------------------------


async def test_openai_video_lifecycle(fake: FakeProvider, http: httpx.AsyncClient) -> None:
    fake.job_polls_until_done = 3
    upstream = upstream_for(fake, "openai", model="sora-2")
    adapter = media_adapter_for("openai")
    sub = await adapter.submit(
        http,
        upstream,
        "video",
        MODEL,
        {"prompt": "waves", "seconds": 8},
        idempotency_key="task-test-1",
    )

    # The real API spells seconds as a string; the fake stores whatever it gets.
    assert fake.calls("/v1/videos")[0].json == {
        "prompt": "waves",
        "seconds": "8",
        "model": "sora-2",
    }
    assert sub.upstream_job_id is not None and sub.upstream_job_id.startswith("video_")
    assert sub.outcome.status == "processing" and sub.outcome.progress == 0
    assert sub.diagnostics["upstream-job-id"] == sub.upstream_job_id

    seen, done = await poll_until_done(http, upstream, "openai", "video", sub.upstream_job_id)
    assert [o.progress for o in seen] == [25, 50, 75]
    assert done.status == "succeeded" and done.units == 8
    assert done.urls == [f"{upstream.base_url}/videos/{sub.upstream_job_id}/content"]
    assert len(fake.calls("/v1/videos/")) == 4


@pytest.mark.parametrize("forced", [False, True])
async def test_openai_video_failure_reports_code_and_message(
    fake: FakeProvider, http: httpx.AsyncClient, forced: bool
) -> None:
    fake.job_polls_until_done = 0
    data: dict[str, Any] = {"prompt": "p"}
    if forced:
        data["fake_outcome"] = "failed"  # an unknown field: passes through to the upstream
    else:
        fake.job_outcome = "failed"
    upstream = upstream_for(fake, "openai")
    sub = await media_adapter_for("openai").submit(
        http, upstream, "video", MODEL, data, idempotency_key="task-test-1"
    )
    assert sub.upstream_job_id is not None
    _, done = await poll_until_done(http, upstream, "openai", "video", sub.upstream_job_id)
    assert done.status == "failed" and done.units == 0
    assert (done.error_code, done.error_message) == ("moderation_blocked", "Fake video job failed.")


async def test_openai_has_no_image_or_speech_jobs(
    fake: FakeProvider, http: httpx.AsyncClient
) -> None:
    with pytest.raises(UpstreamError) as info:
        await media_adapter_for("openai").poll(http, upstream_for(fake, "openai"), "image", "x")
    assert (info.value.kind, info.value.retryable) == ("invalid_request", False)
    assert fake.requests == []


# -- the generic job API --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("media_type", "data", "units", "suffix"),
    [
        ("image", {"prompt": "p", "n": 2}, 2, "png"),
        ("video", {"prompt": "p", "seconds": 6}, 6, "mp4"),
        ("audio", {"input": "y" * 1500}, 2, "mp3"),
    ],
)
async def test_jobs_lifecycle_bills_reported_units(
    fake: FakeProvider,
    http: httpx.AsyncClient,
    media_type: MediaType,
    data: dict[str, Any],
    units: int,
    suffix: str,
) -> None:
    upstream = upstream_for(fake, "jobs", model="upstream-model")
    sub = await media_adapter_for("jobs").submit(
        http, upstream, media_type, MODEL, data, idempotency_key="task-test-1"
    )

    sent = fake.calls("/jobs")[0].json
    assert sent["model"] == "upstream-model" and sent["type"] == media_type
    if media_type == "audio":  # one canonical spelling reaches the provider
        assert sent["input"] == {"text": "y" * 1500, "voice": "alloy"}
    assert sub.upstream_job_id is not None and sub.upstream_job_id.startswith("job_")
    assert sub.outcome.status == "processing"

    seen, done = await poll_until_done(http, upstream, "jobs", media_type, sub.upstream_job_id)
    assert [o.progress for o in seen] == [33, 66]
    assert done.status == "succeeded" and done.units == units
    assert len(done.urls) == (2 if media_type == "image" else 1)
    assert all(u.endswith(f".{suffix}") for u in done.urls)


@pytest.mark.parametrize("forced", [False, True])
async def test_jobs_failure(fake: FakeProvider, http: httpx.AsyncClient, forced: bool) -> None:
    fake.job_polls_until_done = 1
    data: dict[str, Any] = {"prompt": "p"}
    if forced:
        data["fake_outcome"] = "failed"
    else:
        fake.job_outcome = "failed"
    upstream = upstream_for(fake, "jobs")
    sub = await media_adapter_for("jobs").submit(
        http, upstream, "image", MODEL, data, idempotency_key="task-test-1"
    )
    assert sub.upstream_job_id is not None
    seen, done = await poll_until_done(http, upstream, "jobs", "image", sub.upstream_job_id)
    assert len(seen) == 1
    assert done.status == "failed" and done.units == 0 and done.urls == []
    assert done.error_code == "content_policy"
    assert done.error_message == "Fake job rejected by content policy."


async def test_forced_success_overrides_failing_default(
    fake: FakeProvider, http: httpx.AsyncClient
) -> None:
    fake.job_polls_until_done = 0
    fake.job_outcome = "failed"
    upstream = upstream_for(fake, "jobs")
    data = {"prompt": "p", "fake_outcome": "succeeded"}
    sub = await media_adapter_for("jobs").submit(
        http, upstream, "image", MODEL, data, idempotency_key="task-test-1"
    )
    assert sub.upstream_job_id is not None
    _, done = await poll_until_done(http, upstream, "jobs", "image", sub.upstream_job_id)
    assert done.status == "succeeded" and done.units == 1


@pytest.mark.parametrize(
    ("media_type", "expected"),
    [("image", 2), ("video", None), ("audio", None)],
)
async def test_jobs_without_reported_units(
    fake: FakeProvider, http: httpx.AsyncClient, media_type: MediaType, expected: int | None
) -> None:
    body = {"id": "j1", "status": "succeeded", "result": {"urls": ["https://x/1", "https://x/2"]}}
    fake.add_fault(Fault(kind="status", path="/jobs/j1", status=200, body=body))
    poll = media_adapter_for("jobs").poll(http, upstream_for(fake, "jobs"), media_type, "j1")
    if expected is not None:  # images are countable from the URLs
        assert (await poll).units == expected
        return
    # Seconds or characters are not, and guessing could overcharge: fail for good instead.
    with pytest.raises(UpstreamError) as info:
        await poll
    assert (info.value.kind, info.value.retryable) == ("malformed", False)


async def test_jobs_success_without_results_fails_unbilled(
    fake: FakeProvider, http: httpx.AsyncClient
) -> None:
    body = {"id": "j1", "status": "succeeded", "result": {"urls": []}, "units": 3}
    fake.add_fault(Fault(kind="status", path="/jobs/j1", status=200, body=body))
    done = await media_adapter_for("jobs").poll(http, upstream_for(fake, "jobs"), "image", "j1")
    assert (done.status, done.units, done.error_code) == ("failed", 0, "no_output")


async def test_jobs_unknown_status_keeps_polling(
    fake: FakeProvider, http: httpx.AsyncClient
) -> None:
    fake.add_fault(
        Fault(kind="status", path="/jobs/j1", status=200, body={"id": "j1", "status": "warming"})
    )
    with pytest.raises(UpstreamError) as info:
        await media_adapter_for("jobs").poll(http, upstream_for(fake, "jobs"), "image", "j1")
    assert (info.value.kind, info.value.retryable) == ("malformed", True)


async def test_job_ids_cannot_steer_the_url(fake: FakeProvider, http: httpx.AsyncClient) -> None:
    with pytest.raises(UpstreamError) as info:
        await media_adapter_for("jobs").poll(
            http, upstream_for(fake, "jobs"), "image", "../v1/models"
        )
    assert info.value.kind == "not_found"
    assert fake.requests[0].path == "/jobs/..%2Fv1%2Fmodels"


# -- demo: no network ---------------------------------------------------------------------------


async def test_demo_image_is_deterministic_and_offline(
    fake: FakeProvider, http: httpx.AsyncClient
) -> None:
    upstream = Upstream(provider="demo", base_url=None, api_key=None, model="demo-image")
    adapter = media_adapter_for("demo")
    first = await adapter.submit(
        http, upstream, "image", MODEL, {"prompt": "cat", "n": 3}, idempotency_key="task-test-1"
    )
    again = await adapter.submit(
        http, upstream, "image", MODEL, {"prompt": "cat", "n": 3}, idempotency_key="task-test-1"
    )
    other = await adapter.submit(
        http, upstream, "image", MODEL, {"prompt": "dog", "n": 3}, idempotency_key="task-test-1"
    )

    assert first == again and first.outcome.urls != other.outcome.urls
    assert first.upstream_job_id is None
    assert (first.outcome.status, first.outcome.units) == ("succeeded", 3)
    # Real PNGs, inline (the task workflow copies them into the result store).
    images = [decode_data_url(url) for url in first.outcome.urls]
    assert all(i is not None and i.content_type == "image/png" for i in images)
    pngs = [i.data for i in images if i is not None]
    assert all(p.startswith(b"\x89PNG\r\n\x1a\n") and p.endswith(b"IEND\xaeB`\x82") for p in pngs)
    assert len(set(pngs)) == 3  # each of the n images differs
    assert fake.requests == []


async def test_demo_audio_is_a_small_valid_wav(fake: FakeProvider, http: httpx.AsyncClient) -> None:
    upstream = Upstream(provider="demo", base_url=None, api_key=None, model="demo-tts")
    sub = await media_adapter_for("demo").submit(
        http, upstream, "audio", MODEL, {"text": "z" * 3000}, idempotency_key="task-test-1"
    )
    out = sub.outcome
    assert (out.status, out.units, out.content_type) == ("succeeded", 3, "audio/wav")
    assert out.content_b64 is not None
    with wave.open(io.BytesIO(base64.b64decode(out.content_b64))) as wav:
        assert (wav.getnchannels(), wav.getframerate(), wav.getnframes()) == (1, 8000, 2000)
    assert fake.requests == []


async def test_demo_video_is_a_stateless_job(fake: FakeProvider, http: httpx.AsyncClient) -> None:
    upstream = Upstream(provider="demo", base_url=None, api_key=None, model="demo-video")
    adapter = media_adapter_for("demo")
    sub = await adapter.submit(
        http,
        upstream,
        "video",
        MODEL,
        {"prompt": "sea", "seconds": 12},
        idempotency_key="task-test-1",
    )
    assert sub.outcome.status == "processing"
    assert sub.upstream_job_id is not None and sub.upstream_job_id.startswith("demo-video-12-")

    done = await adapter.poll(http, upstream, "video", sub.upstream_job_id)
    assert (done.status, done.units, done.progress) == ("succeeded", 12, 100)
    (video,) = [decode_data_url(url) for url in done.urls]
    assert video is not None and video.content_type == "video/mp4"
    assert video.data[4:12] == b"ftypisom" and b"avc1" in video.data[:64]
    assert await adapter.poll(http, upstream, "video", sub.upstream_job_id) == done

    for bogus in ("demo-video-0-0123456789abcdef", "demo-video-61-0123456789abcdef", "job_1"):
        with pytest.raises(UpstreamError) as info:
            await adapter.poll(http, upstream, "video", bogus)
        assert (info.value.kind, info.value.retryable) == ("not_found", False)
    assert fake.requests == []
