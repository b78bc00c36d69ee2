"""Callback targets: only public HTTPS, judged on the URL text and again after real DNS."""

from __future__ import annotations

import ipaddress

import pytest

from api.errors import domain_error_response
from domain.callbacks.ssrf import (
    ResolutionFailed,
    UnsafeAddress,
    check_url,
    refusal_reason,
    resolve_public,
    resolve_public_all,
)
from domain.errors import InvalidField


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("http://example.com/hook", "https"),
        ("ftp://example.com/hook", "https"),
        ("https://127.0.0.1/hook", "loopback"),
        ("https://127.8.9.10:8443/hook", "loopback"),
        ("https://[::1]/hook", "loopback"),
        ("https://10.1.2.3/hook", "private"),
        ("https://172.16.0.1/hook", "private"),
        ("https://172.31.255.254/hook", "private"),
        ("https://192.168.1.1/hook", "private"),
        ("https://169.254.169.254/latest/meta-data", "link-local"),
        ("https://[fe80::1]/hook", "link-local"),
        ("https://[::ffff:127.0.0.1]/hook", "IPv4-mapped loopback"),
        ("https://[::ffff:10.0.0.1]/hook", "IPv4-mapped private"),
        ("https://[::ffff:169.254.169.254]/hook", "IPv4-mapped link-local"),
        ("https://[64:ff9b::a9fe:a9fe]/hook", "NAT64-embedded link-local"),
        ("https://[2002:c0a8:0101::1]/hook", "6to4-embedded private"),
        ("https://0.0.0.0/hook", "unspecified"),
        ("https://[::]/hook", "unspecified"),
        ("https://100.64.0.1/hook", "non-public"),
        ("https://100.127.255.254/hook", "non-public"),
        ("https://[fc00::1]/hook", "private"),
        ("https://[fd12:3456::1]/hook", "private"),
        ("https://224.0.0.1/hook", "multicast"),
        ("https://[ff02::1]/hook", "multicast"),
        ("https://255.255.255.255/hook", "address"),
        ("https://user:pass@example.com/hook", "credentials"),
        ("https://user@example.com/hook", "credentials"),
        ("https://localhost/hook", "local name"),
        ("https://api.localhost/hook", "local name"),
        ("https://printer.local/hook", "local name"),
        ("https://intranet/hook", "fully qualified"),
        ("https://2130706433/hook", "dotted-quad"),
        ("https://127.1/hook", "dotted-quad"),
        ("https://0x7f.0.0.1/hook", "dotted-quad"),
        ("https://example.com:22/hook", "port"),
        ("https://example.com:80/hook", "port"),
        ("https:///hook", "host"),
        ("https://exa mple.com/hook", "whitespace"),
        ("https://example.com/\nhook", "whitespace"),
        ("https://example.com/" + "a" * 2000, "2000"),
    ],
)
def test_unsafe_urls_are_refused_with_a_clear_reason(url: str, needle: str) -> None:
    with pytest.raises(InvalidField) as info:
        check_url(url, allow_private=False)
    assert info.value.code == "invalid_request"
    assert domain_error_response(info.value).status_code == 400
    assert info.value.param == "callback_url"
    assert needle in info.value.message, info.value.message


@pytest.mark.parametrize(
    ("url", "host", "port", "header"),
    [
        ("https://example.com/hook", "example.com", 443, "example.com"),
        ("https://Hooks.Example.COM./a/b?x=1&y=2", "hooks.example.com", 443, "hooks.example.com"),
        ("https://example.com:8443/hook", "example.com", 8443, "example.com:8443"),
        ("https://bücher.example/hook", "xn--bcher-kva.example", 443, "xn--bcher-kva.example"),
        ("https://93.184.215.14/hook", "93.184.215.14", 443, "93.184.215.14"),
        ("https://[2606:4700::6810:85e5]:9443/h", "2606:4700::6810:85e5", 9443,
         "[2606:4700::6810:85e5]:9443"),
    ],
)  # fmt: skip
def test_public_https_urls_pass_without_resolving(
    url: str, host: str, port: int, header: str
) -> None:
    target = check_url(url, allow_private=False)
    assert (target.scheme, target.host, target.port, target.host_header) == (
        "https",
        host,
        port,
        header,
    )
    assert (target.literal_ip is not None) == (":" in host or host[0].isdigit())


def test_the_test_escape_hatch_admits_loopback_http_only_when_asked() -> None:
    target = check_url("http://127.0.0.1:8080/hook", allow_private=True)
    assert (target.scheme, target.literal_ip, target.port) == ("http", "127.0.0.1", 8080)
    assert check_url("https://localhost:1234/x", allow_private=True).host == "localhost"
    with pytest.raises(InvalidField, match="credentials"):
        check_url("http://u:p@127.0.0.1/hook", allow_private=True)
    with pytest.raises(InvalidField, match="https"):
        check_url("http://127.0.0.1:8080/hook", allow_private=False)


@pytest.mark.parametrize(
    "address",
    ["8.8.8.8", "1.1.1.1", "93.184.215.14", "2606:4700::1111", "2a00:1450:4001::200e",
     "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:0808:0808::1"],
)  # fmt: skip
def test_public_addresses_are_accepted_even_when_wrapped(address: str) -> None:
    assert refusal_reason(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.0.0.1", "172.16.5.4", "192.168.0.1", "169.254.169.254", "100.64.0.1",
     "0.0.0.0", "0.1.2.3", "192.0.0.8", "198.18.0.1", "240.0.0.1", "224.0.0.251",
     "::1", "::", "fe80::1", "fe80::1%1", "fc00::1", "fd00::1", "ff02::1", "fec0::1",
     "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:0.0.0.0", "::127.0.0.1",
     "64:ff9b::7f00:1", "64:ff9b:1::1", "2002:7f00:0001::1", "2001:db8::1",
     "2001:0:4136:e378:8000:63bf:3fff:fdd2"],
)  # fmt: skip
def test_non_public_addresses_are_refused(address: str) -> None:
    assert refusal_reason(ipaddress.ip_address(address)) is not None


async def test_a_name_resolving_to_loopback_is_refused_at_send_time() -> None:
    # `localhost` passes the escape hatch's URL check but real DNS says loopback.
    with pytest.raises(UnsafeAddress, match="loopback"):
        await resolve_public("localhost", 443, allow_private=False)
    assert await resolve_public("localhost", 443, allow_private=True) in ("127.0.0.1", "::1")


async def test_a_literal_private_ip_is_refused_by_the_resolver_too() -> None:
    for host in ("127.0.0.1", "::ffff:127.0.0.1", "10.0.0.1", "127.1"):
        with pytest.raises(UnsafeAddress):
            await resolve_public_all(host, 443, allow_private=False)


async def test_an_unresolvable_name_fails_without_contacting_anything() -> None:
    with pytest.raises(ResolutionFailed):
        await resolve_public_all("no-such-host.invalid", 443, allow_private=False, timeout_s=3)
