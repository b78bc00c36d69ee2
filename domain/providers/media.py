"""Media adapters for async tasks (DESIGN.md §6): image, video and audio behind one interface.

The task workflow calls `submit` once, then `poll` (retry-as-poll) until the outcome is
terminal, then bills `outcome.units`. Synchronous providers simply answer `submit` with a
terminal outcome and no job id, so the workflow has a single path for both kinds.

Errors are the chat adapters' `UpstreamError`, classified the same way: `retryable` means
"poll again / try another channel", anything else fails the task with a refund.
"""

from __future__ import annotations

from types import MappingProxyType

from domain.providers.media_base import (
    MEDIA_TYPES,
    MediaAdapter,
    MediaOutcome,
    MediaStatus,
    MediaSubmission,
    MediaType,
)
from domain.providers.media_demo import DemoMediaAdapter
from domain.providers.media_input import (
    AUDIO_CHARS_PER_UNIT,
    AUDIO_MAX_CHARS,
    DEFAULT_VOICE,
    IMAGE_MAX_N,
    VIDEO_DEFAULT_SECONDS,
    VIDEO_MAX_SECONDS,
    VIDEO_MIN_SECONDS,
    max_units,
    speech_units,
    validate_media_input,
)
from domain.providers.media_jobs import JobsMediaAdapter
from domain.providers.media_openai import OpenAIMediaAdapter

_openai = OpenAIMediaAdapter()

# Stateless like the chat adapters: one instance per wire format serves every channel.
MEDIA_ADAPTERS: MappingProxyType[str, MediaAdapter] = MappingProxyType(
    {
        "openai": _openai,
        "openai_compatible": _openai,
        "jobs": JobsMediaAdapter(),
        "demo": DemoMediaAdapter(),
    }
)
MEDIA_PROVIDERS: tuple[str, ...] = tuple(MEDIA_ADAPTERS)


def media_adapter_for(provider: str) -> MediaAdapter:
    try:
        return MEDIA_ADAPTERS[provider]
    except KeyError:
        raise ValueError(f"unknown media provider type: {provider!r}") from None


__all__ = [
    "AUDIO_CHARS_PER_UNIT",
    "AUDIO_MAX_CHARS",
    "DEFAULT_VOICE",
    "IMAGE_MAX_N",
    "MEDIA_ADAPTERS",
    "MEDIA_PROVIDERS",
    "MEDIA_TYPES",
    "VIDEO_DEFAULT_SECONDS",
    "VIDEO_MAX_SECONDS",
    "VIDEO_MIN_SECONDS",
    "MediaAdapter",
    "MediaOutcome",
    "MediaStatus",
    "MediaSubmission",
    "MediaType",
    "max_units",
    "media_adapter_for",
    "speech_units",
    "validate_media_input",
]
