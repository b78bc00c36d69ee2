"""Email domains an org claims for single sign-on, and the DNS proof that it owns them.

A verified domain is trusted completely: its org's identity provider may sign in (and link)
every account with an address there, and "require SSO" refuses their passwords. So a claim
counts only once the org has published a TXT record we gave it, exactly as mail and identity
providers verify domains: whoever controls a domain's DNS controls its mail anyway.
"""

from __future__ import annotations

import asyncio
import re

import dns.asyncresolver
import dns.exception

from domain.errors import InvalidField

MAX_DOMAINS = 50
RECORD_PREFIX = "_oxinf-verification"
VALUE_PREFIX = "oxinf-verification="
LOOKUP_TIMEOUT_S = 5.0

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def normalize_domain(raw: str, *, param: str = "domains") -> str:
    """`Example.COM.` and `@example.com` become `example.com`; international names become
    their ASCII (IDNA) form, which is what email addresses are compared in."""
    text = raw.strip().lower().lstrip("@").rstrip(".")
    try:
        ascii_name = text.encode("idna").decode("ascii") if text else ""
    except UnicodeError:
        raise InvalidField(f"{raw!r} is not a valid domain name", param=param) from None
    labels = ascii_name.split(".")
    if (
        len(ascii_name) > 253
        or len(labels) < 2
        or not all(_LABEL.match(label) for label in labels)
        or labels[-1].isdigit()
    ):
        raise InvalidField(f"{raw!r} is not a domain name like example.com", param=param) from None
    return ascii_name


def normalize_domains(raw: list[str]) -> list[str]:
    found = sorted({normalize_domain(d) for d in raw})
    if not found:
        raise InvalidField("name at least one email domain", param="domains")
    if len(found) > MAX_DOMAINS:
        raise InvalidField(f"at most {MAX_DOMAINS} domains", param="domains")
    return found


def email_domain(email: str) -> str | None:
    """The domain of an address, normalised as claims are; None when it has none."""
    _, at, host = email.strip().rpartition("@")
    if not at:
        return None
    try:
        return normalize_domain(host, param="email")
    except InvalidField:
        return None


def record_name(domain: str) -> str:
    return f"{RECORD_PREFIX}.{domain}"


def record_value(token: str) -> str:
    return f"{VALUE_PREFIX}{token}"


async def txt_records(name: str) -> list[str]:
    """The TXT strings published at `name` (empty when there are none). A module attribute
    so tests can stand a fake DNS in front of it, as the egress tests do for addresses."""
    try:
        async with asyncio.timeout(LOOKUP_TIMEOUT_S):
            answer = await dns.asyncresolver.resolve(name, "TXT", lifetime=LOOKUP_TIMEOUT_S)
    except (TimeoutError, dns.exception.DNSException):
        return []
    records: list[str] = []
    for rdata in answer:
        strings = getattr(rdata, "strings", ())
        records.append(b"".join(strings).decode("utf-8", "replace"))
    return records


async def has_proof(domain: str, token: str) -> bool:
    expected = record_value(token)
    return any(r.strip() == expected for r in await txt_records(record_name(domain)))
