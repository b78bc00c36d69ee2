"""The operator's "Test" button: one real one-token chat call through a channel.

Shared by `POST /admin/v1/channels/{id}/test` and the ops console, so both test a channel
the same way: outside billing and the breaker (a test must not trip or heal it), with the
channel's own secret, mapping and base URL, and an answer that names no secret.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from domain.crypto import SecretBox
from domain.providers import Upstream, UpstreamError, adapter_for
from schema.channels import Channel

TEST_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    model: str
    latency_ms: int
    error: str | None = None
    upstream_request_id: str | None = None


async def probe_channel(
    channel: Channel,
    box: SecretBox,
    http: httpx.AsyncClient,
    provider_urls: Mapping[str, str],
    model: str | None = None,
) -> ProbeResult:
    """`model`: a public name the channel serves (default: its first); `provider_urls`:
    where each provider lives when the channel names no base URL."""
    public = model or (channel.models[0] if channel.models else "")
    secret = box.decrypt(channel.secret_ciphertext) if channel.secret_ciphertext else None
    upstream = Upstream(
        provider=channel.provider,
        base_url=channel.base_url or provider_urls.get(channel.provider),
        api_key=secret,
        model=channel.model_mapping.get(public, public),
        timeout_s=TEST_TIMEOUT_S,
    )
    body = {"model": public, "messages": [{"role": "user", "content": "ping"}], "max_tokens": 1}
    started = time.perf_counter()
    try:
        result = await adapter_for(channel.provider).chat(http, upstream, body, public)
    except UpstreamError as exc:
        return ProbeResult(
            ok=False, model=public, latency_ms=_since(started),
            error=f"{exc.kind}: {exc.message}", upstream_request_id=exc.upstream_request_id,
        )  # fmt: skip
    return ProbeResult(
        ok=True, model=public, latency_ms=_since(started),
        upstream_request_id=result.upstream_request_id,
    )  # fmt: skip


def _since(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
