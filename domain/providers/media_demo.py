"""The built-in media provider: no network, results a pure function of the request.

Like the chat demo, it lets `make dev` and benchmarks run whole task lifecycles with
predictable units. Video is the one asynchronous type, so it is a job to exercise the
workflow's polling; having no state, the job id encodes everything the poll needs and the
first poll already finds it done.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import wave
from typing import Any

import httpx

from domain.providers.base import Upstream, UpstreamError
from domain.providers.errors import invalid_request
from domain.providers.media_base import (
    MediaOutcome,
    MediaSubmission,
    MediaType,
    NoHeldContent,
    NoLookup,
    wire_model,
)
from domain.providers.media_input import VIDEO_MAX_SECONDS, checked_input, speech_units

DEMO_HOST = "https://demo.0xinf.local"
# A quarter second of 8 kHz 8-bit mono silence: a valid, tiny, byte-identical WAV every time.
_WAV_RATE = 8000
_WAV_FRAMES = _WAV_RATE // 4
_VIDEO_JOB_RE = re.compile(r"demo-video-(\d{1,3})-([0-9a-f]{16})")


def _digest(media_type: str, model: str, cleaned: dict[str, Any]) -> str:
    canonical = json.dumps([media_type, model, cleaned], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def silent_wav() -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(1)
        out.setframerate(_WAV_RATE)
        out.writeframes(b"\x80" * _WAV_FRAMES)  # 8-bit WAV is unsigned: 0x80 is silence
    return buffer.getvalue()


class DemoMediaAdapter(NoLookup, NoHeldContent):  # URLs for show; speech is inline
    """A resubmit is free and gives the same answer, so keys and lookups are not needed."""

    async def submit(
        self,
        http: httpx.AsyncClient,
        upstream: Upstream,
        media_type: MediaType,
        model: str,
        input: dict[str, Any],
        *,
        idempotency_key: str,
    ) -> MediaSubmission:
        cleaned = checked_input(media_type, input)
        digest = _digest(media_type, wire_model(upstream, model), cleaned)
        rid = f"demo-{digest}"
        if media_type == "image":
            n = int(cleaned["n"])
            urls = [f"{DEMO_HOST}/images/{digest}-{i}.png" for i in range(n)]
            outcome = MediaOutcome(status="succeeded", progress=100, urls=urls, units=n)
            return MediaSubmission(None, outcome, rid, {})
        if media_type == "audio":
            outcome = MediaOutcome(
                status="succeeded",
                progress=100,
                content_b64=base64.b64encode(silent_wav()).decode("ascii"),
                content_type="audio/wav",  # whatever format was asked for: the demo has one
                units=speech_units(cleaned["text"]),
            )
            return MediaSubmission(None, outcome, rid, {})
        job_id = f"demo-video-{int(cleaned['seconds'])}-{digest}"
        return MediaSubmission(job_id, MediaOutcome(status="processing"), rid, {})

    async def poll(
        self,
        http: httpx.AsyncClient,
        upstream: Upstream,
        media_type: MediaType,
        upstream_job_id: str,
    ) -> MediaOutcome:
        if media_type != "video":
            raise invalid_request(f"the demo answers {media_type} synchronously; there is no job")
        match = _VIDEO_JOB_RE.fullmatch(upstream_job_id)
        seconds = int(match.group(1)) if match else 0
        if match is None or not 1 <= seconds <= VIDEO_MAX_SECONDS:
            raise UpstreamError("not_found", "no such demo video job", retryable=False)
        url = f"{DEMO_HOST}/videos/{match.group(2)}.mp4"
        return MediaOutcome(status="succeeded", progress=100, urls=[url], units=seconds)
