"""Format checks for provider keys, so a pasted typo fails at save time with a clear reason
instead of as an upstream 401 in the middle of someone's traffic."""

from __future__ import annotations

import re

from domain.egress.policy import STRICT, EgressPolicy, check_base_url
from domain.errors import InvalidField

PROVIDERS = ("openai", "anthropic", "google", "openrouter", "ollama", "openai_compatible")

_FORMATS: dict[str, tuple[re.Pattern[str], str]] = {
    "openai": (re.compile(r"^sk-(proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,200}$"), "sk-…"),
    "anthropic": (re.compile(r"^sk-ant-[A-Za-z0-9_\-]{20,200}$"), "sk-ant-…"),
    "google": (re.compile(r"^AIza[0-9A-Za-z_\-]{35}$"), "AIza… (39 characters)"),
    "openrouter": (re.compile(r"^sk-or-(v1-)?[A-Za-z0-9]{20,200}$"), "sk-or-v1-…"),
}
_GENERIC = re.compile(r"^[\x21-\x7e]{8,500}$")  # printable, no spaces


def validate(
    provider: str, api_key: str, base_url: str | None, *, egress: EgressPolicy = STRICT
) -> tuple[str, str | None]:
    """Returns the cleaned (key, base_url) or raises `invalid_request` naming the problem.

    A base URL is where the relay will send the tenant's calls from inside our network, so
    it must pass the tenant egress policy (public https unless an operator allowed the host).
    """
    if provider not in PROVIDERS:
        raise InvalidField(f"provider must be one of {', '.join(PROVIDERS)}", param="provider")
    key = api_key.strip()
    if provider in _FORMATS:
        pattern, shape = _FORMATS[provider]
        if not pattern.match(key):
            raise InvalidField(
                f"that does not look like a {provider} key ({shape})", param="api_key"
            )
    elif provider == "ollama" and key == "":
        pass  # a local Ollama usually needs no key
    elif not _GENERIC.match(key):
        raise InvalidField(
            "api_key must be 8-500 printable characters without spaces", param="api_key"
        )
    needs_url = provider in ("ollama", "openai_compatible")
    if needs_url and not base_url:
        raise InvalidField(f"{provider} needs a base_url", param="base_url")
    if base_url is not None:
        if not needs_url:
            raise InvalidField(f"{provider} does not take a base_url", param="base_url")
        base_url = check_base_url(base_url, policy=egress)
    return key, base_url
