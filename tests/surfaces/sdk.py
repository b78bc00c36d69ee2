"""The official SDKs as judges: their clients over an in-memory transport that serves
what our translations produce, and a check that no field we send is unknown to their
types (the SDK models accept extra keys silently, so validation alone would miss a typo)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anthropic
import httpx2
import openai
from pydantic import BaseModel

from domain.surfaces.sse import event_frame

Handler = Callable[[httpx2.Request], Awaitable[httpx2.Response]]


def _http(handler: Handler) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(transport=httpx2.MockTransport(handler))


def anthropic_client(handler: Handler, *, max_retries: int = 0) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(
        api_key="sk-0xinf-test",
        base_url="http://gateway.test",
        http_client=_http(handler),
        max_retries=max_retries,
    )


def openai_client(handler: Handler, *, max_retries: int = 0) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        api_key="sk-0xinf-test",
        base_url="http://gateway.test/v1",
        http_client=_http(handler),
        max_retries=max_retries,
    )


def sse_response(events: AsyncIterator[dict[str, Any]]) -> httpx2.Response:
    async def frames() -> AsyncIterator[bytes]:
        async for event in events:
            yield event_frame(event)

    return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=frames())


def no_extras(value: Any, path: str = "$") -> None:
    """Fails on any key the SDK type does not declare, anywhere in the tree."""
    if isinstance(value, BaseModel):
        extra = value.model_extra or {}
        assert not extra, f"{path}: fields unknown to {type(value).__name__}: {sorted(extra)}"
        for name in type(value).model_fields:
            no_extras(getattr(value, name), f"{path}.{name}")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            no_extras(item, f"{path}[{i}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            no_extras(item, f"{path}.{key}")
