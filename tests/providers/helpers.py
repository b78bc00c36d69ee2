"""Shared helpers for the provider adapter tests."""

from __future__ import annotations

import socket
from typing import Any

from domain.providers import ChatStream, Upstream
from tests.fakes.provider import FakeProvider

KEY = "sk-fake-upstream"
OPENAI_STYLE = ("openai", "openai_compatible", "openrouter", "ollama")


def upstream_for(fake: FakeProvider, provider: str, **overrides: Any) -> Upstream:
    base = fake.base_url + "/v1" if provider in OPENAI_STYLE else None
    fields: dict[str, Any] = {
        "provider": provider,
        "base_url": base or fake.base_url,
        "api_key": KEY,
        "model": "gpt-4o-mini",
        "timeout_s": 5.0,
    }
    fields.update(overrides)
    return Upstream(**fields)


def closed_port_url() -> str:
    """An address nothing listens on: bind an ephemeral port, then release it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


async def collect(stream: ChatStream) -> list[dict[str, Any]]:
    return [chunk async for chunk in stream]


def streamed_text(chunks: list[dict[str, Any]]) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


def chat_request(text: str = "hello there world", **extra: Any) -> dict[str, Any]:
    return {"model": "public-model", "messages": [{"role": "user", "content": text}], **extra}
