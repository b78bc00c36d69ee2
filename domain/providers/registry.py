"""Which adapter speaks to which channel provider type.

Adapters are stateless (the HTTP client and the target arrive per call), so one instance
per wire format serves every channel and every concurrent request.
"""

from __future__ import annotations

from types import MappingProxyType

from domain.providers.anthropic import AnthropicAdapter
from domain.providers.base import ProviderAdapter
from domain.providers.demo import DemoAdapter
from domain.providers.gemini import GeminiAdapter
from domain.providers.openai import OpenAIAdapter

_openai = OpenAIAdapter()

ADAPTERS: MappingProxyType[str, ProviderAdapter] = MappingProxyType(
    {
        "openai": _openai,
        "openai_compatible": _openai,
        "openrouter": _openai,
        "ollama": _openai,
        "anthropic": AnthropicAdapter(),
        "google": GeminiAdapter(),
        "demo": DemoAdapter(),
    }
)
PROVIDERS: tuple[str, ...] = tuple(ADAPTERS)


def adapter_for(provider: str) -> ProviderAdapter:
    try:
        return ADAPTERS[provider]
    except KeyError:
        raise ValueError(f"unknown provider type: {provider!r}") from None
