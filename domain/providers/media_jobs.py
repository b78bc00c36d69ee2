"""The generic async job API: `POST /jobs` {model, type, input} then `GET /jobs/{id}`.

One shape for every media type, so the adapter passes the cleaned input through untouched
and bills what the provider says it produced; providers that bill differently per type
report `units` themselves.

Submissions carry the task's key twice: as `Idempotency-Key` (a provider that honours it
answers a resend with the job it already made) and as `client_reference`, which
`GET /jobs?client_reference=` finds again when an answer was lost; `POST /jobs/{id}/cancel`
stops a job the task will not use.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from domain.providers.base import Upstream
from domain.providers.media_base import (
    CancelOutcome,
    MediaOutcome,
    MediaSubmission,
    MediaType,
    NoHeldContent,
    failed_outcome,
    idempotency_headers,
    job_path,
    no_output,
    progress_from,
    reported_units,
    wire_model,
)
from domain.providers.media_http import Reply, base_url, cancel_job, send
from domain.providers.media_input import checked_input

_PROCESSING = frozenset({"queued", "pending", "processing", "running", "in_progress"})
_SUCCEEDED = frozenset({"succeeded", "completed", "success"})
_FAILED = frozenset({"failed", "error", "canceled", "cancelled", "expired"})


class JobsMediaAdapter(NoHeldContent):  # results are URLs the provider serves publicly
    finds_by_reference = True

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
        payload = {
            "model": wire_model(upstream, model),
            "type": media_type,
            "input": cleaned,
            "client_reference": idempotency_key,
        }
        url = f"{base_url(upstream)}/jobs"
        headers = idempotency_headers(idempotency_key)
        reply = await send(http, upstream, "POST", url, payload, headers=headers)
        body = reply.json_object(upstream)
        job_id = reply.job_id(body, upstream, "job")
        return reply.submission(_outcome(reply, body, upstream, media_type), job_id)

    async def poll(
        self,
        http: httpx.AsyncClient,
        upstream: Upstream,
        media_type: MediaType,
        upstream_job_id: str,
    ) -> MediaOutcome:
        url = f"{base_url(upstream)}/jobs/{job_path(upstream_job_id)}"
        reply = await send(http, upstream, "GET", url)
        return _outcome(reply, reply.json_object(upstream), upstream, media_type)

    async def find(
        self,
        http: httpx.AsyncClient,
        upstream: Upstream,
        media_type: MediaType,
        idempotency_key: str,
    ) -> list[str] | None:
        url = f"{base_url(upstream)}/jobs?client_reference={quote(idempotency_key, safe='')}"
        reply = await send(http, upstream, "GET", url)
        data = reply.json_object(upstream).get("data")
        if not isinstance(data, list):
            raise reply.malformed("job list has no data list", upstream)
        ids = [j.get("id") for j in data if isinstance(j, dict)]
        return [i for i in ids if isinstance(i, str) and i]

    async def cancel(
        self,
        http: httpx.AsyncClient,
        upstream: Upstream,
        media_type: MediaType,
        upstream_job_id: str,
    ) -> CancelOutcome:
        url = f"{base_url(upstream)}/jobs/{job_path(upstream_job_id)}/cancel"
        return await cancel_job(http, upstream, "POST", url, finished_statuses=(409,))


def _outcome(
    reply: Reply, body: dict[str, Any], upstream: Upstream, media_type: MediaType
) -> MediaOutcome:
    status = body.get("status")
    if status in _PROCESSING:
        return MediaOutcome(status="processing", progress=progress_from(body.get("progress")))
    if status in _FAILED:
        return failed_outcome(body.get("error"), upstream.api_key)
    if status not in _SUCCEEDED:
        # Possibly a new intermediate state: keep polling until the workflow's deadline.
        raise reply.malformed(f"unknown job status {status!r}", upstream)
    result = body.get("result")
    result = result if isinstance(result, dict) else {}
    raw_urls = result.get("urls")
    urls = [u for u in raw_urls if isinstance(u, str) and u] if isinstance(raw_urls, list) else []
    if not urls:
        return no_output("results")
    units = reported_units(body.get("units"), result.get("units"))
    if units is None and media_type == "image":
        units = len(urls)
    if units is None:
        # Seconds or characters cannot be read off a URL; guessing could overcharge, so the
        # task fails (and refunds) instead.
        raise reply.malformed("succeeded job without units", upstream, retryable=False)
    return MediaOutcome(status="succeeded", progress=100, urls=urls, units=units)
