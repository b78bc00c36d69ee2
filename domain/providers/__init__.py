"""Provider adapters: each upstream's wire format in, OpenAI chat shapes out (DESIGN.md §5)."""

from domain.providers.base import (
    ChatResult,
    ChatStream,
    ProviderAdapter,
    Upstream,
    UpstreamError,
    Usage,
)
from domain.providers.media import (
    MEDIA_PROVIDERS,
    MediaAdapter,
    MediaOutcome,
    MediaSubmission,
    MediaType,
    max_units,
    media_adapter_for,
    validate_media_input,
)
from domain.providers.registry import ADAPTERS, PROVIDERS, adapter_for
from domain.providers.tokens import estimate_prompt_tokens, estimate_text_tokens

__all__ = [
    "ADAPTERS",
    "MEDIA_PROVIDERS",
    "PROVIDERS",
    "ChatResult",
    "ChatStream",
    "MediaAdapter",
    "MediaOutcome",
    "MediaSubmission",
    "MediaType",
    "ProviderAdapter",
    "Upstream",
    "UpstreamError",
    "Usage",
    "adapter_for",
    "estimate_prompt_tokens",
    "estimate_text_tokens",
    "max_units",
    "media_adapter_for",
    "validate_media_input",
]
