"""Connecting only to the address that was checked, for the HTTP clients that carry
tenant-chosen URLs (BYOK base URLs).

Checking a name and then letting the HTTP client resolve it again leaves a window for DNS
rebinding, so the check happens where the connection is made: aiohttp asks
`GuardedResolver` (and connects to what it returns, keeping the name for TLS and pooling),
and the hand-written keep-alive pool asks `pinned_addresses`. aiohttp skips its resolver
for hosts that look like IPs, so `check_host` judges the URL's host text before each send.
"""

from __future__ import annotations

import socket

import httpx
from aiohttp.abc import AbstractResolver, ResolveResult

from domain.egress.policy import (
    EgressPolicy,
    ResolutionFailed,
    UnsafeAddress,
    check_url,
    resolve_checked,
)
from domain.errors import InvalidField

PARAM = "base_url"


class EgressRefused(httpx.ConnectError):
    """A connection the tenant egress policy forbids; nothing was sent. The message is safe
    to show the tenant (it names the rule, never a resolved address)."""


class _Refused(OSError):
    """How a refusal crosses aiohttp's connector, which only passes OSErrors through."""


def check_host(url: httpx.URL | str, policy: EgressPolicy) -> None:
    """Judge a request URL's text (scheme, credentials, literal IPs in any spelling)."""
    try:
        check_url(str(url), param=PARAM, policy=policy)
    except InvalidField as exc:
        raise EgressRefused(exc.message) from None


async def pinned_addresses(host: str, port: int, policy: EgressPolicy) -> list[str]:
    """The checked addresses to connect to, in the resolver's order."""
    try:
        return await resolve_checked(host, port, param=PARAM, policy=policy)
    except UnsafeAddress as exc:
        raise EgressRefused(exc.message) from None
    except ResolutionFailed as exc:
        raise httpx.ConnectError(str(exc)) from None


def refusal_of(exc: BaseException) -> EgressRefused | None:
    """The policy refusal behind an aiohttp connector error, if that is what it was."""
    seen: BaseException | None = exc
    for _ in range(8):  # aiohttp nests two or three deep; never follow a cycle
        if seen is None:
            break
        if isinstance(seen, _Refused):
            return EgressRefused(str(seen))
        seen = seen.__cause__ or getattr(seen, "os_error", None)
    return None


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver hook: every new connection resolves here, all answers checked."""

    def __init__(self, policy: EgressPolicy) -> None:
        self._policy = policy

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        try:
            addresses = await resolve_checked(host, port, param=PARAM, policy=self._policy)
        except UnsafeAddress as exc:
            raise _Refused(exc.message) from None
        except ResolutionFailed as exc:
            raise OSError(str(exc)) from None
        return [
            ResolveResult(
                hostname=host,
                host=ip,
                port=port,
                family=socket.AF_INET6 if ":" in ip else socket.AF_INET,
                proto=socket.IPPROTO_TCP,
                flags=socket.AI_NUMERICHOST,
            )
            for ip in addresses
        ]

    async def close(self) -> None:
        return None
