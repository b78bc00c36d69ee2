"""OpenAI's media endpoints, and every upstream that copies them.

Images and speech answer synchronously, so `submit` returns a terminal outcome and there is
nothing to poll; only video is a job. Unknown input fields reach the upstream unchanged, as in
the chat adapter, so new OpenAI parameters work without a gateway release.

Every submit carries the task's `Idempotency-Key`. OpenAI has no lookup by a client
reference, so after a lost answer the same request goes out again under the same key; a
video nobody will poll is stopped by deleting it.
"""

from __future__ import annotations

import base64
from typing import Any

import httpx

from domain.providers.base import Upstream
from domain.providers.errors import invalid_request
from domain.providers.media_base import (
    CancelOutcome,
    MediaOutcome,
    MediaSubmission,
    MediaType,
    NoLookup,
    content_not_served,
    failed_outcome,
    idempotency_headers,
    job_path,
    no_output,
    progress_from,
    wire_model,
)
from domain.providers.media_http import (
    MediaContent,
    Reply,
    base_url,
    cancel_job,
    open_content,
    send,
)
from domain.providers.media_input import AUDIO_FORMATS, checked_input, speech_units
from domain.providers.openai import DEFAULT_BASE_URLS

_IMAGE_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "jpg": "image/jpeg", "webp": "image/webp"}
_PROCESSING = ("queued", "in_progress")


def _base(upstream: Upstream) -> str:
    return base_url(upstream, DEFAULT_BASE_URLS.get(upstream.provider))


class OpenAIMediaAdapter(NoLookup):  # no lookup by key; only videos can be cancelled
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
        base = _base(upstream)
        wire = wire_model(upstream, model)
        headers = idempotency_headers(idempotency_key)
        if media_type == "image":
            return await _image(http, upstream, base, {**cleaned, "model": wire}, headers)
        if media_type == "video":
            return await _video(http, upstream, base, wire, cleaned, headers)
        return await _speech(http, upstream, base, wire, cleaned, headers)

    async def cancel(
        self,
        http: httpx.AsyncClient,
        upstream: Upstream,
        media_type: MediaType,
        upstream_job_id: str,
    ) -> CancelOutcome:
        if media_type != "video":
            return "unsupported"  # images and speech are done by the time they answer
        url = f"{_base(upstream)}/videos/{job_path(upstream_job_id)}"
        return await cancel_job(http, upstream, "DELETE", url)

    async def poll(
        self,
        http: httpx.AsyncClient,
        upstream: Upstream,
        media_type: MediaType,
        upstream_job_id: str,
    ) -> MediaOutcome:
        if media_type != "video":
            raise invalid_request(f"OpenAI answers {media_type} synchronously; there is no job")
        base = _base(upstream)
        reply = await send(http, upstream, "GET", f"{base}/videos/{job_path(upstream_job_id)}")
        return _video_outcome(reply, reply.json_object(upstream), upstream, base)

    def content_needs_channel(self, media_type: MediaType) -> bool:
        # Images come back as public URLs or inline data and speech inline; a finished video
        # stays upstream at /videos/{id}/content, behind the channel's key.
        return media_type == "video"

    async def content(
        self,
        http: httpx.AsyncClient,
        upstream: Upstream,
        media_type: MediaType,
        upstream_job_id: str,
    ) -> MediaContent:
        if media_type != "video":
            raise content_not_served(upstream.provider, media_type)
        url = f"{_base(upstream)}/videos/{job_path(upstream_job_id)}/content"
        return await open_content(http, upstream, url)


async def _image(
    http: httpx.AsyncClient,
    upstream: Upstream,
    base: str,
    payload: dict[str, Any],
    headers: dict[str, str],
) -> MediaSubmission:
    url = f"{base}/images/generations"
    reply = await send(http, upstream, "POST", url, payload, headers=headers)
    body = reply.json_object(upstream)
    data = body.get("data")
    if not isinstance(data, list):
        if body.get("error"):
            raise reply.error_in_body(body, upstream)
        raise reply.malformed("response has no data list", upstream)
    # Inline (b64_json) images become data: URLs: content_b64 holds a single result, and
    # keeping only the first of n would bill images the customer never receives.
    mime = _IMAGE_TYPES.get(str(body.get("output_format", "png")).lower(), "image/png")
    urls: list[str] = []
    for item in data:
        if not isinstance(item, dict):
            continue
        if isinstance(item.get("url"), str) and item["url"]:
            urls.append(item["url"])
        elif isinstance(item.get("b64_json"), str) and item["b64_json"]:
            urls.append(f"data:{mime};base64,{item['b64_json']}")
    outcome = (
        MediaOutcome(status="succeeded", progress=100, urls=urls, units=len(urls))
        if urls
        else no_output("images")
    )
    return reply.submission(outcome)


async def _video(
    http: httpx.AsyncClient,
    upstream: Upstream,
    base: str,
    model: str,
    cleaned: dict[str, Any],
    headers: dict[str, str],
) -> MediaSubmission:
    # The real endpoint takes multipart/form-data (for the optional reference image); JSON
    # carries the text-only fields just as well and is what our fake upstream accepts.
    payload = {**cleaned, "model": model, "seconds": str(cleaned["seconds"])}
    reply = await send(http, upstream, "POST", f"{base}/videos", payload, headers=headers)
    view = reply.json_object(upstream)
    job_id = reply.job_id(view, upstream, "video")
    return reply.submission(_video_outcome(reply, view, upstream, base), job_id)


def _video_outcome(
    reply: Reply, view: dict[str, Any], upstream: Upstream, base: str
) -> MediaOutcome:
    status = view.get("status")
    if status in _PROCESSING:
        return MediaOutcome(status="processing", progress=progress_from(view.get("progress")))
    if status == "failed":
        return failed_outcome(view.get("error"), upstream.api_key)
    if status != "completed":
        # Unknown states are most likely new intermediate ones: keep polling until the
        # workflow's deadline rather than guess at a terminal state.
        raise reply.malformed(f"unknown video status {status!r}", upstream)
    seconds = _seconds(view.get("seconds"))
    job_id = view.get("id")
    if seconds is None or not isinstance(job_id, str) or not job_id:
        # Billing needs the length; guessing could overcharge, so fail (and refund) instead.
        raise reply.malformed("completed video without id or seconds", upstream, retryable=False)
    # Only the channel's key opens this URL, so it is kept for operators and never shown to a
    # customer: `content_needs_channel` makes the task views point at the gateway's own
    # `/v1/tasks/{id}/content`, which streams it through `content` with that key.
    url = f"{base}/videos/{job_path(job_id)}/content"
    return MediaOutcome(status="succeeded", progress=100, urls=[url], units=seconds)


def _seconds(value: Any) -> int | None:
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


async def _speech(
    http: httpx.AsyncClient,
    upstream: Upstream,
    base: str,
    model: str,
    cleaned: dict[str, Any],
    headers: dict[str, str],
) -> MediaSubmission:
    payload = {k: v for k, v in cleaned.items() if k not in ("text", "format")}
    payload |= {"model": model, "input": cleaned["text"], "voice": cleaned["voice"]}
    fmt = cleaned.get("format")
    if fmt is not None:
        payload["response_format"] = fmt
    reply = await send(http, upstream, "POST", f"{base}/audio/speech", payload, headers=headers)
    if reply.content_type.endswith("json"):
        # Audio never comes as JSON: this is an error object inside a 200.
        body = reply.json_object(upstream)
        if body.get("error"):
            raise reply.error_in_body(body, upstream)
        raise reply.malformed("expected audio, got JSON", upstream)
    if not reply.content:
        outcome = no_output("audio")
    else:
        content_type = reply.content_type
        if content_type in ("", "application/octet-stream"):
            content_type = AUDIO_FORMATS[fmt or "mp3"]
        elif not content_type.startswith("audio/"):
            raise reply.malformed(f"unexpected content type {content_type!r}", upstream)
        outcome = MediaOutcome(
            status="succeeded",
            progress=100,
            content_b64=base64.b64encode(reply.content).decode("ascii"),
            content_type=content_type,
            units=speech_units(cleaned["text"]),
        )
    return reply.submission(outcome)
