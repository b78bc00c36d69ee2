"""Keeping callbacks on the public internet: a callback URL is attacker-chosen input that our
worker fetches from inside the network, so it must never reach loopback, the cloud metadata
endpoint, or anything private.

Two checks, both required. `check_url` runs at submit time and answers with a clear 422; it
judges the URL text and literal IPs only, because DNS answers change. `resolve_public` runs
at every send: it resolves the host and refuses if *any* address is non-public (a mixed
answer is how DNS-rebinding attacks look), and the caller then connects to the address it
checked rather than resolving again.

URLs are parsed with httpx, the same parser that sends the request, so the checked host and
the contacted host cannot disagree.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from dataclasses import dataclass

import httpx

from domain.errors import InvalidField

MAX_URL_LENGTH = 2000
PARAM = "callback_url"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Ranges `is_global` does not already exclude in every Python we run on, named so a reader can
# see the list is deliberate.
_BLOCKED_V4 = tuple(
    ipaddress.IPv4Network(n)
    for n in (
        "0.0.0.0/8",  # "this network", incl. 0.0.0.0 which Linux routes to localhost
        "100.64.0.0/10",  # carrier-grade NAT: private in practice
        "192.0.0.0/24",  # IETF protocol assignments
        "198.18.0.0/15",  # benchmarking
        "224.0.0.0/4",  # multicast (is_global says True for some of it)
        "240.0.0.0/4",  # reserved, incl. broadcast
    )
)
_BLOCKED_V6 = tuple(
    ipaddress.IPv6Network(n)
    for n in (
        "::/96",  # IPv4-compatible (deprecated) and unspecified
        "64:ff9b:1::/48",  # local-use NAT64
        "fc00::/7",  # unique local
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local (deprecated)
        "ff00::/8",  # multicast
        "2001:db8::/32",  # documentation
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # well-known prefix: the v4 is in the low bits

_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")
_LOCAL_SUFFIXES = (".localhost", ".local", ".internal", ".home.arpa", ".lan")


class UnsafeAddress(InvalidField):
    """The host resolves to an address we refuse to contact."""


class ResolutionFailed(Exception):
    """DNS gave no usable answer (NXDOMAIN, SERVFAIL, timeout): nothing was contacted."""


@dataclass(frozen=True)
class ParsedTarget:
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


def refusal_reason(ip: IPAddress) -> str | None:
    """Why this address is not public, or None when it is."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return "a scoped (link-local) IPv6 address"
        embedded = ip.ipv4_mapped
        if embedded is not None:
            reason = _v4_reason(embedded)
            return f"an IPv4-mapped {reason}" if reason else None
        if ip in _NAT64:
            reason = _v4_reason(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
            return f"a NAT64-embedded {reason}" if reason else None
        if ip.sixtofour is not None and (reason := _v4_reason(ip.sixtofour)):
            return f"a 6to4-embedded {reason}"
        if ip.teredo is not None:
            for part in ip.teredo:
                if reason := _v4_reason(part):
                    return f"a Teredo-embedded {reason}"
        return _v6_reason(ip)
    return _v4_reason(ip)


def _common_reason(ip: IPAddress) -> str | None:
    if ip.is_unspecified:
        return "unspecified address"
    if ip.is_loopback:
        return "loopback address"
    if ip.is_link_local:
        return "link-local address"
    if ip.is_multicast:
        return "multicast address"
    if ip.is_private:
        return "private address"
    if ip.is_reserved:
        return "reserved address"
    return None


def _v4_reason(ip: ipaddress.IPv4Address) -> str | None:
    if reason := _common_reason(ip):
        return reason
    if any(ip in net for net in _BLOCKED_V4):
        return "non-public address"
    return None if ip.is_global else "non-public address"


def _v6_reason(ip: ipaddress.IPv6Address) -> str | None:
    if reason := _common_reason(ip):
        return reason
    if any(ip in net for net in _BLOCKED_V6):
        return "non-public address"
    return None if ip.is_global else "non-public address"


def _bad(message: str) -> InvalidField:
    return InvalidField(f"callback_url {message}", param=PARAM)


def check_url(url: str, *, allow_private: bool) -> ParsedTarget:
    """Judge the URL text; raises `invalid_request` (422) naming the first problem.

    `allow_private` is the test-only escape hatch: it admits plain http, any port and private
    or loopback hosts.
    """
    if len(url) > MAX_URL_LENGTH:
        raise _bad(f"must be at most {MAX_URL_LENGTH} characters")
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise _bad("must not contain whitespace or control characters")
    try:
        parsed = httpx.URL(url)
        raw_host = parsed.raw_host.decode("ascii")
    except (httpx.InvalidURL, UnicodeError, ValueError):
        raise _bad("is not a valid URL") from None
    schemes = ("https", "http") if allow_private else ("https",)
    if parsed.scheme not in schemes:
        raise _bad("must use https")
    if not raw_host:
        raise _bad("must name a host")
    if parsed.userinfo:
        raise _bad("must not embed credentials")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    if not allow_private and not (port == 443 or 1024 <= port <= 65535):
        raise _bad("port must be 443 or between 1024 and 65535")
    host = raw_host.lower().rstrip(".")
    literal = _literal_ip(host)
    if literal is not None:
        if not allow_private and (reason := refusal_reason(literal)):
            raise _bad(f"must be a public address, not a {reason}")
        return ParsedTarget(str(parsed), parsed.scheme, host, port, str(literal))
    if not allow_private:
        _check_host_name(host)
    return ParsedTarget(str(parsed), parsed.scheme, host, port, None)


def _literal_ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _check_host_name(host: str) -> None:
    labels = host.split(".")
    if all(_NUMERIC_LABEL.match(label) for label in labels):
        # `127.1`, `2130706433`, `0x7f.0.0.1`: the resolver turns these into IPs.
        raise _bad("numeric hosts must be a plain dotted-quad IPv4 address")
    if host == "localhost" or host.endswith(_LOCAL_SUFFIXES):
        raise _bad("must be a public host, not a local name")
    if len(labels) < 2:
        # A single label resolves through the worker's search domains: an internal host.
        raise _bad("host must be a fully qualified domain name")


async def resolve_public_all(
    host: str, port: int, *, allow_private: bool, timeout_s: float = 5.0
) -> list[str]:
    """Every address of `host`, in the resolver's preferred order, if all of them are public.

    Raises `UnsafeAddress` when any address is not public and `ResolutionFailed` when DNS
    gives nothing.
    """
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout_s):
            infos = await loop.getaddrinfo(
                host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
            )
    except TimeoutError:
        raise ResolutionFailed(f"resolving {host} timed out") from None
    except (socket.gaierror, UnicodeError) as exc:
        raise ResolutionFailed(f"cannot resolve {host}: {exc}") from None
    addresses: list[str] = []
    for family, *_rest, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        ip = ipaddress.ip_address(str(sockaddr[0]))
        if not allow_private and (reason := refusal_reason(ip)):
            raise UnsafeAddress(
                f"callback_url host {host} resolves to a {reason} ({ip})", param=PARAM
            )
        text = str(ip)
        if text not in addresses:
            addresses.append(text)
    if not addresses:
        raise ResolutionFailed(f"{host} has no IPv4 or IPv6 address")
    return addresses


async def resolve_public(host: str, port: int, *, allow_private: bool) -> str:
    """The address to connect to, checked; see `resolve_public_all`."""
    return (await resolve_public_all(host, port, allow_private=allow_private))[0]
