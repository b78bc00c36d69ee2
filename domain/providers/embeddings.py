"""Embeddings upstreams: every OpenAI-compatible server's `/embeddings`, and the demo.

The relay bills an embeddings call like a chat call with no output: the answer comes back
as a `ChatResult` whose body is the upstream's embeddings object and whose usage holds
only prompt tokens, so routing, fallback, settlement and the request log stay the chat
path's (`domain.relay.service.Relay.complete`). Other wire formats (Anthropic, Gemini)
have no compatible endpoint: a channel of theirs marked for embeddings is the operator's
mistake, reported as the channel's failure so the next channel is tried.
"""

from __future__ import annotations

import hashlib
import math
import struct
from typing import Any, Protocol

import httpx

from domain.providers.base import ChatResult, Upstream, UpstreamError, Usage
from domain.providers.convert import new_completion_id
from domain.providers.openai import DEFAULT_BASE_URLS, OpenAIAdapter, _request_id
from domain.providers.transport import as_int, post_json
from domain.surfaces.embeddings import estimate_input_tokens, read_embeddings

DEMO_DIMENSIONS = 16
DEMO_MAX_DIMENSIONS = 256


class EmbeddingsAdapter(Protocol):
    async def embeddings(
        self,
        http: httpx.AsyncClient,
        upstream: Upstream,
        request: dict[str, Any],
        public_model: str,
    ) -> ChatResult: ...


class OpenAIEmbeddings:
    _auth = OpenAIAdapter()

    async def embeddings(
        self,
        http: httpx.AsyncClient,
        upstream: Upstream,
        request: dict[str, Any],
        public_model: str,
    ) -> ChatResult:
        base = upstream.base_url or DEFAULT_BASE_URLS.get(upstream.provider)
        if not base:
            raise UpstreamError(
                "connect", "the upstream channel has no base URL configured", retryable=True
            )
        payload = {**request, "model": upstream.model}
        reply = await post_json(
            http, base.rstrip("/") + "/embeddings", payload, self._auth.headers(upstream),
            upstream, _request_id,
        )  # fmt: skip
        try:
            vectors, reported = read_embeddings(reply.body)
        except ValueError as exc:
            raise reply.malformed(str(exc), upstream) from None
        prompt = reported if reported is not None else estimate_input_tokens(request["input"])
        usage = Usage(as_int(prompt), 0, estimated=reported is None)
        body = {"vectors": vectors, "model": public_model, "prompt_tokens": usage.prompt_tokens}
        return ChatResult(body, usage, reply.upstream_request_id, reply.diagnostics, reply.status)


def demo_vector(text: str, dimensions: int) -> list[float]:
    """A unit vector that is a pure function of the text (SHA-256 in counter mode)."""
    raw = b""
    counter = 0
    while len(raw) < dimensions * 4:
        raw += hashlib.sha256(counter.to_bytes(4, "big") + text.encode()).digest()
        counter += 1
    ints = struct.unpack(f">{dimensions}i", raw[: dimensions * 4])
    norm = math.sqrt(sum(float(i) * i for i in ints)) or 1.0
    # float32-exact values, so base64 and float answers agree to the bit.
    return [struct.unpack("<f", struct.pack("<f", i / norm))[0] for i in ints]


class DemoEmbeddings:
    async def embeddings(
        self,
        http: httpx.AsyncClient,
        upstream: Upstream,
        request: dict[str, Any],
        public_model: str,
    ) -> ChatResult:
        value = request["input"]
        texts = [value] if isinstance(value, str) else [str(v) for v in value]
        # Bounded: a demo must not spend seconds of CPU on 2,048 inputs x 65,536 dimensions.
        dimensions = min(request.get("dimensions") or DEMO_DIMENSIONS, DEMO_MAX_DIMENSIONS)
        vectors = [demo_vector(t, dimensions) for t in texts]
        usage = Usage(estimate_input_tokens(value), 0)
        body = {"vectors": vectors, "model": public_model, "prompt_tokens": usage.prompt_tokens}
        return ChatResult(body, usage, new_completion_id(), {}, 200)


_openai = OpenAIEmbeddings()
EMBEDDING_ADAPTERS: dict[str, EmbeddingsAdapter] = {
    "openai": _openai,
    "openai_compatible": _openai,
    "openrouter": _openai,
    "ollama": _openai,
    "demo": DemoEmbeddings(),
}


def embeddings_adapter_for(provider: str) -> EmbeddingsAdapter:
    adapter = EMBEDDING_ADAPTERS.get(provider)
    if adapter is None:
        raise UpstreamError(
            "server", f"{provider} channels do not serve embeddings", retryable=True
        )
    return adapter
