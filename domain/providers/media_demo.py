"""The built-in media provider: no network, results a pure function of the request.

Like the chat demo, it lets `make dev` and benchmarks run whole task lifecycles with
predictable units. Video is the one asynchronous type, so it is a job to exercise the
workflow's polling; having no state, the job id encodes everything the poll needs and the
first poll already finds it done.

Its results are real, small media that open anywhere, delivered inline like a provider's
`b64_json` images (`data:` URLs, bytes for speech), so the task workflow copies them into the
result store and customers get 0xinf's own URLs to them: a PNG drawn from the request (same
request, same picture), a 2-second H.264 MP4 clip (`demo_media/clip.mp4`, made once with
`ffmpeg -f lavfi -i testsrc2=size=160x96:rate=8:duration=2 -c:v libx264 -profile:v baseline
-pix_fmt yuv420p -crf 32 -movflags +faststart -map_metadata -1 -fflags +bitexact`), and a
quarter second of a 440 Hz tone as WAV.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import math
import re
import struct
import wave
import zlib
from functools import cache
from importlib import resources
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

# A quarter second of 8 kHz 8-bit mono: a valid, tiny, byte-identical WAV every time.
_WAV_RATE = 8000
_WAV_FRAMES = _WAV_RATE // 4
_TONE_HZ = 440
_PNG_SIZE = 128
_VIDEO_JOB_RE = re.compile(r"demo-video-(\d{1,3})-([0-9a-f]{16})")


def _digest(media_type: str, model: str, cleaned: dict[str, Any]) -> str:
    canonical = json.dumps([media_type, model, cleaned], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@cache
def tone_wav() -> bytes:
    """440 Hz, faded in and out so it does not click; 8-bit WAV is unsigned around 0x80."""
    frames = bytearray()
    fade = _WAV_FRAMES // 10
    for i in range(_WAV_FRAMES):
        level = min(1.0, i / fade, (_WAV_FRAMES - 1 - i) / fade)
        frames.append(128 + round(60 * level * math.sin(2 * math.pi * _TONE_HZ * i / _WAV_RATE)))
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(1)
        out.setframerate(_WAV_RATE)
        out.writeframes(bytes(frames))
    return buffer.getvalue()


def demo_png(seed: bytes) -> bytes:
    """A 128x128 RGB gradient whose colours come from `seed`: a valid PNG, no imaging library."""
    r, g, b = seed[0], seed[1], seed[2]
    rows = bytearray()
    for y in range(_PNG_SIZE):
        # Filter type 1 (Sub): each byte is stored minus the byte one pixel to its left, so a
        # gradient compresses to almost nothing.
        rows.append(1)
        left = (0, 0, 0)
        for x in range(_PNG_SIZE):
            pixel = ((r + 2 * x) % 256, (g + 2 * y) % 256, (b + x + y) % 256)
            rows += bytes((p - q) % 256 for p, q in zip(pixel, left, strict=True))
            left = pixel

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", _PNG_SIZE, _PNG_SIZE, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(rows), 9))
        + chunk(b"IEND", b"")
    )


@cache
def demo_mp4() -> bytes:
    return resources.files("domain.providers").joinpath("demo_media/clip.mp4").read_bytes()


def data_url(content_type: str, data: bytes) -> str:
    return f"data:{content_type};base64,{base64.b64encode(data).decode('ascii')}"


class DemoMediaAdapter(NoLookup, NoHeldContent):  # everything inline
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
            seed = bytes.fromhex(digest)
            urls = [data_url("image/png", demo_png(seed[i % 8 :] + seed)) for i in range(n)]
            outcome = MediaOutcome(status="succeeded", progress=100, urls=urls, units=n)
            return MediaSubmission(None, outcome, rid, {})
        if media_type == "audio":
            outcome = MediaOutcome(
                status="succeeded",
                progress=100,
                content_b64=base64.b64encode(tone_wav()).decode("ascii"),
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
        url = data_url("video/mp4", demo_mp4())
        return MediaOutcome(status="succeeded", progress=100, urls=[url], units=seconds)
