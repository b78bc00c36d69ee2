"""The tenant egress policy: a URL a customer gives us is attacker-chosen input that our
processes fetch from inside the network, so it must never reach loopback, cloud metadata or
anything private.

Two checks, both required. `check_url` judges the URL text (and literal IPs in any spelling)
when the URL is stored and again before each use; DNS answers change, so `resolve_checked`
runs when a connection is made: it resolves the host and refuses if *any* address is not
public (a mixed answer is how DNS rebinding looks), and the caller then connects to the
address it checked rather than resolving again (`domain.egress.pinning`).

Operators may let tenants reach named private hosts (an org's on-prem Ollama) with
`OXINF_TENANT_EGRESS_ALLOW_HOSTS`; nothing private is reachable by default. URLs are parsed
with httpx, the parser that sends the request, so the checked and the contacted host cannot
disagree.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

import httpx

from domain.egress.addresses import NumericHost, host_ip, refusal_reason
from domain.errors import InvalidField

MAX_URL_LENGTH = 2000
_LOCAL_SUFFIXES = (".localhost", ".local", ".internal", ".home.arpa", ".lan")

Purpose = Literal["callback", "base_url"]


@dataclass(frozen=True)
class EgressPolicy:
    """`allowed_hosts`: host names (or IP literals) an operator lets tenants reach although
    they are private, over http or https and on any port. `allow_private` admits every host:
    for tests only (settings refuse it in production)."""

    allowed_hosts: frozenset[str] = field(default_factory=frozenset)
    allow_private: bool = False

    @classmethod
    def of(cls, hosts: Iterable[str] = (), *, allow_private: bool = False) -> EgressPolicy:
        cleaned = frozenset(h.strip().lower().strip("[]").rstrip(".") for h in hosts if h.strip())
        return cls(cleaned, allow_private)

    def trusts(self, host: str) -> bool:
        return self.allow_private or host in self.allowed_hosts


STRICT = EgressPolicy()
# Operators' own channels may name private hosts (self-hosted models); the URL rules and the
# spelling of addresses still apply to them.
OPERATOR = EgressPolicy(allow_private=True)


class UnsafeAddress(InvalidField):
    """The host resolves to an address we refuse to contact."""


class ResolutionFailed(Exception):
    """DNS gave no usable answer (NXDOMAIN, SERVFAIL, timeout): nothing was contacted."""


@dataclass(frozen=True)
class Target:
    url: str
    scheme: str
    host: str  # ASCII (IDNA), lowercase, no brackets, no trailing dot
    port: int
    literal_ip: str | None  # set when the URL names an IP rather than a host name

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


def check_url(
    url: str, *, param: str, policy: EgressPolicy = STRICT, purpose: Purpose = "callback"
) -> Target:
    """Judge the URL text; raises `invalid_request` naming `param` and the first problem.

    A base URL (`purpose="base_url"`) also may not carry a query or fragment: paths are
    appended to it, and a `?` would turn them into a query string aimed at any path.
    """

    def bad(message: str) -> InvalidField:
        return InvalidField(f"{param} {message}", param=param)

    if len(url) > MAX_URL_LENGTH:
        raise bad(f"must be at most {MAX_URL_LENGTH} characters")
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise bad("must not contain whitespace or control characters")
    if purpose == "base_url" and ("?" in url or "#" in url):
        raise bad("must not contain a query string or fragment")
    try:
        parsed = httpx.URL(url)
        raw_host = parsed.raw_host.decode("ascii")
    except (httpx.InvalidURL, UnicodeError, ValueError):
        raise bad("is not a valid URL") from None
    if parsed.scheme not in ("https", "http"):
        raise bad("must be an https URL")
    if not raw_host:
        raise bad("must name a host")
    if parsed.userinfo:
        raise bad("must not embed credentials")
    if "%" in raw_host:
        # An IPv6 zone (`fe80::1%25eth0`) picks a local interface; anything else is an
        # encoded name that another parser may decode differently.
        raise bad(
            "must not name an IPv6 zone" if ":" in raw_host else "host must not be percent-encoded"
        )
    host = raw_host.lower().rstrip(".")
    trusted = policy.trusts(host)
    if parsed.scheme != "https" and not trusted:
        raise bad("must use https")
    default_port = 443 if parsed.scheme == "https" else 80
    port = parsed.port if parsed.port is not None else default_port
    if not 1 <= port <= 65535:
        raise bad("port must be between 1 and 65535")
    if not trusted and not (port == 443 or 1024 <= port <= 65535):
        raise bad("port must be 443 or between 1024 and 65535")
    try:
        literal = host_ip(host)
    except NumericHost as exc:
        meant = f" (it stands for {exc})" if str(exc) else ""
        raise bad(f"numeric hosts must be a plain dotted-quad IPv4 address{meant}") from None
    if literal is not None:
        if not trusted and (reason := refusal_reason(literal)):
            raise bad(f"must be a public address; {literal} is {reason}")
        return Target(str(parsed), parsed.scheme, str(literal), port, str(literal))
    if not trusted:
        if host == "localhost" or host.endswith(_LOCAL_SUFFIXES):
            raise bad("must be a public host, not a local name")
        if "." not in host:
            # A single label resolves through the resolver's search domains: an internal host.
            raise bad("host must be a fully qualified domain name")
    return Target(str(parsed), parsed.scheme, host, port, None)


def check_base_url(url: str, *, policy: EgressPolicy, param: str = "base_url") -> str:
    """A base URL as stored: trimmed, without a trailing slash, judged by `check_url`."""
    cleaned = url.strip().rstrip("/")
    check_url(cleaned, param=param, policy=policy, purpose="base_url")
    return cleaned


async def resolve_checked(
    host: str,
    port: int,
    *,
    param: str,
    policy: EgressPolicy = STRICT,
    timeout_s: float = 5.0,
) -> list[str]:
    """Every address of `host`, in the resolver's preferred order, if all of them are public
    (or the policy trusts the host).

    Raises `UnsafeAddress` when any address is not public and `ResolutionFailed` when DNS
    gives nothing.
    """
    try:
        async with asyncio.timeout(timeout_s):
            found = await lookup(host, port)
    except TimeoutError:
        raise ResolutionFailed(f"resolving {host} timed out") from None
    except (socket.gaierror, UnicodeError) as exc:
        raise ResolutionFailed(f"cannot resolve {host}: {exc}") from None
    trusted = policy.trusts(host.lower().rstrip("."))
    addresses: list[str] = []
    for text in found:
        ip = ipaddress.ip_address(text)
        if not trusted and (reason := refusal_reason(ip)):
            # The tenant learns the rule, not the internal address behind their name.
            raise UnsafeAddress(f"{param} host {host} resolves to a {reason} address", param=param)
        if str(ip) not in addresses:
            addresses.append(str(ip))
    if not addresses:
        raise ResolutionFailed(f"{host} has no IPv4 or IPv6 address")
    return addresses


async def lookup(host: str, port: int) -> list[str]:
    """The system resolver's IPv4 and IPv6 answers (a module attribute so tests can stand a
    fake DNS in front of it, as they stand fake providers in front of HTTP)."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return [
        str(sockaddr[0])
        for family, *_rest, sockaddr in infos
        if family in (socket.AF_INET, socket.AF_INET6)
    ]
