"""The last touch on a translated chat body once the upstream is known.

Translations cap output with `max_tokens`: every OpenAI-compatible server (vLLM, Ollama,
LM Studio, OpenRouter) and our Anthropic and Gemini adapters understand it, while Ollama
and LM Studio ignore `max_completion_tokens`. OpenAI's own API is the exception: it refuses
`max_tokens` for its reasoning models and accepts `max_completion_tokens` for every chat
model, so a body bound for an `openai` channel gets the newer name. Client-written chat
bodies never pass through here; the client chose their fields.
"""

from __future__ import annotations

from typing import Any

NEWER_CAP_PROVIDERS = frozenset({"openai"})


def for_provider(chat: dict[str, Any], provider: str) -> dict[str, Any]:
    """`chat` as it should be sent to a channel of `provider` (a copy when it changes)."""
    if provider in NEWER_CAP_PROVIDERS and "max_tokens" in chat:
        body = {k: v for k, v in chat.items() if k != "max_tokens"}
        body.setdefault("max_completion_tokens", chat["max_tokens"])
        return body
    return chat
