"""Which IP addresses count as public, and every way a URL can spell one.

A URL host such as `2130706433`, `0x7f.1` or `0177.0.0.1` is loopback to the resolver even
though it looks like a name, so hosts are normalised the way `inet_aton` reads them before
they are judged: a check that only knows dotted quads is the classic SSRF bypass.
"""

from __future__ import annotations

import ipaddress
import re
import socket

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Ranges `is_global` does not already exclude in every Python we run on, named so a reader can
# see the list is deliberate.
_BLOCKED_V4 = tuple(
    (ipaddress.IPv4Network(n), why)
    for n, why in (
        ("0.0.0.0/8", "this-network"),  # incl. 0.0.0.0, which Linux routes to localhost
        ("100.64.0.0/10", "carrier-grade NAT"),  # private in practice (and cloud metadata)
        ("192.0.0.0/24", "IETF-reserved"),
        ("198.18.0.0/15", "benchmarking-reserved"),
        ("224.0.0.0/4", "multicast"),  # is_global says True for some of it
        ("240.0.0.0/4", "reserved"),  # incl. broadcast
    )
)
_BLOCKED_V6 = tuple(
    (ipaddress.IPv6Network(n), why)
    for n, why in (
        ("::/96", "IPv4-compatible"),  # deprecated, and the unspecified address
        ("64:ff9b:1::/48", "local-use NAT64"),
        ("fc00::/7", "unique-local (private)"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local"),
        ("ff00::/8", "multicast"),
        ("2001:db8::/32", "documentation-reserved"),
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # well-known prefix: the v4 is in the low bits

_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")


def refusal_reason(ip: IPAddress) -> str | None:
    """Why this address is not public (an adjective phrase: "loopback", "IPv4-mapped
    private"), or None when it is public."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return "scoped link-local"
        embedded = ip.ipv4_mapped
        if embedded is not None:
            reason = _v4_reason(embedded)
            return f"IPv4-mapped {reason}" if reason else None
        if ip in _NAT64:
            reason = _v4_reason(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
            return f"NAT64-embedded {reason}" if reason else None
        if ip.sixtofour is not None and (reason := _v4_reason(ip.sixtofour)):
            return f"6to4-embedded {reason}"
        if ip.teredo is not None:
            for part in ip.teredo:
                if reason := _v4_reason(part):
                    return f"Teredo-embedded {reason}"
        return _v6_reason(ip)
    return _v4_reason(ip)


def _common_reason(ip: IPAddress) -> str | None:
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if ip.is_private:
        return "private"
    if ip.is_reserved:
        return "reserved"
    return None


def _v4_reason(ip: ipaddress.IPv4Address) -> str | None:
    if reason := _common_reason(ip):
        return reason
    for net, why in _BLOCKED_V4:
        if ip in net:
            return why
    return None if ip.is_global else "non-public"


def _v6_reason(ip: ipaddress.IPv6Address) -> str | None:
    if reason := _common_reason(ip):
        return reason
    for net, why in _BLOCKED_V6:
        if ip in net:
            return why
    return None if ip.is_global else "non-public"


class NumericHost(ValueError):
    """A host made only of numbers that is not written as a plain dotted quad."""


def host_ip(host: str) -> IPAddress | None:
    """The address a URL host names literally, in any spelling, or None for a host name.

    Raises `NumericHost` for numeric spellings other than the canonical dotted quad
    (`2130706433`, `0x7f.1`, `127.1`, `0177.0.0.1`), with the address they stand for when
    the resolver would read them as one.
    """
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    labels = host.split(".")
    if not all(_NUMERIC_LABEL.match(label) for label in labels):
        return None
    try:
        meant: IPAddress | None = ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        meant = None
    raise NumericHost(str(meant) if meant is not None else "")
