"""The tenant egress policy: only public HTTPS, judged on the URL text (every spelling of an
address) and again after real DNS, for callbacks and BYOK base URLs alike."""

from __future__ import annotations

import ipaddress

import pytest

from domain.egress.addresses import refusal_reason
from domain.egress.policy import (
    OPERATOR,
    STRICT,
    EgressPolicy,
    ResolutionFailed,
    UnsafeAddress,
    check_base_url,
    check_url,
    resolve_checked,
)
from domain.errors import InvalidField
from tests.egress.fake_dns import FakeDns

# Every URL a tenant must not be able to point 0xinf at, with a word the refusal names.
UNSAFE = [
    ("http://example.com/hook", "https"),
    ("ftp://example.com/hook", "https"),
    ("https://127.0.0.1/hook", "127.0.0.1 is loopback"),
    ("https://127.8.9.10:8443/hook", "loopback"),
    ("https://[::1]/hook", "loopback"),
    ("https://10.1.2.3/hook", "private"),
    ("https://172.16.0.1/hook", "private"),
    ("https://172.31.255.254/hook", "private"),
    ("https://192.168.1.1/hook", "private"),
    ("https://169.254.169.254/latest/meta-data", "link-local"),
    ("https://[fe80::1]/hook", "link-local"),
    ("https://[fe80::1%25eth0]/hook", "IPv6 zone"),
    ("https://[::ffff:127.0.0.1]/hook", "IPv4-mapped loopback"),
    ("https://[::ffff:7f00:1]/hook", "IPv4-mapped loopback"),
    ("https://[::ffff:10.0.0.1]/hook", "IPv4-mapped private"),
    ("https://[::ffff:169.254.169.254]/hook", "IPv4-mapped link-local"),
    ("https://[64:ff9b::a9fe:a9fe]/hook", "NAT64-embedded link-local"),
    ("https://[2002:c0a8:0101::1]/hook", "6to4-embedded private"),
    ("https://0.0.0.0/hook", "unspecified"),
    ("https://[::]/hook", "unspecified"),
    ("https://100.64.0.1/hook", "carrier-grade NAT"),
    ("https://100.100.100.200/latest/meta-data", "carrier-grade NAT"),
    ("https://100.127.255.254/hook", "carrier-grade NAT"),
    ("https://[fc00::1]/hook", "private"),
    ("https://[fd12:3456::1]/hook", "private"),
    ("https://[fd00:ec2::254]/latest/meta-data", "private"),
    ("https://224.0.0.1/hook", "multicast"),
    ("https://[ff02::1]/hook", "multicast"),
    ("https://255.255.255.255/hook", "255.255.255.255 is"),
    ("https://user:pass@example.com/hook", "credentials"),
    ("https://user@example.com/hook", "credentials"),
    ("https://localhost/hook", "local name"),
    ("https://api.localhost/hook", "local name"),
    ("https://printer.local/hook", "local name"),
    ("https://metadata.google.internal/computeMetadata/v1", "local name"),
    ("https://intranet/hook", "fully qualified"),
    # Every numeric spelling the resolver reads as an address, each named as what it means.
    ("https://2130706433/hook", "stands for 127.0.0.1"),
    ("https://127.1/hook", "stands for 127.0.0.1"),
    ("https://0x7f.0.0.1/hook", "stands for 127.0.0.1"),
    ("https://0x7f000001/hook", "stands for 127.0.0.1"),
    ("https://0177.0.0.1/hook", "not a valid URL"),  # httpx, the sending parser, refuses
    ("https://017700000001/hook", "stands for 127.0.0.1"),
    ("https://2852039166/latest", "stands for 169.254.169.254"),
    ("https://10.0.0.01/hook", "not a valid URL"),
    ("https://999999999999/hook", "dotted-quad"),
    ("https://%6cocalhost/hook", "percent-encoded"),
    ("https://ex%41mple.com/hook", "percent-encoded"),
    ("https://example.com:0/hook", "port must be between 1 and 65535"),
    ("https://example.com:22/hook", "port"),
    ("https://example.com:80/hook", "port"),
    ("https:///hook", "host"),
    ("https://exa mple.com/hook", "whitespace"),
    ("https://example.com/\nhook", "whitespace"),
    ("https://example.com/" + "a" * 2000, "2000"),
]


@pytest.mark.parametrize(("url", "needle"), UNSAFE)
def test_unsafe_urls_are_refused_with_a_clear_reason(url: str, needle: str) -> None:
    with pytest.raises(InvalidField) as info:
        check_url(url, param="callback_url")
    assert info.value.code == "invalid_request"
    assert info.value.param == "callback_url"
    assert needle in info.value.message, info.value.message
    assert not any(bad in info.value.message for bad in (" a a", " a an ", "not a an"))


@pytest.mark.parametrize(("url", "needle"), UNSAFE)
def test_the_same_urls_are_refused_as_base_urls(url: str, needle: str) -> None:
    with pytest.raises(InvalidField) as info:
        check_base_url(url, policy=STRICT)
    assert info.value.param == "base_url"
    assert info.value.message.startswith("base_url ")


@pytest.mark.parametrize(
    "url",
    [
        "https://llm.example.com/v1?",
        "https://llm.example.com/v1?x=/admin",
        "https://llm.example.com/v1#frag",
        "https://llm.example.com/v1/?",
    ],
)
def test_a_base_url_takes_no_query_or_fragment(url: str) -> None:
    # A `?` would turn the path the relay appends into a query aimed at any path.
    with pytest.raises(InvalidField, match="query string or fragment"):
        check_base_url(url, policy=STRICT)
    with pytest.raises(InvalidField, match="query string or fragment"):
        check_base_url(url, policy=OPERATOR)
    # ... while a callback URL may carry a query (a receiver's token, say)
    assert check_url("https://hooks.example.com/in?token=abc", param="callback_url").port == 443


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
    target = check_url(url, param="callback_url")
    assert (target.scheme, target.host, target.port, target.host_header) == (
        "https",
        host,
        port,
        header,
    )
    assert (target.literal_ip is not None) == (":" in host or host[0].isdigit())


def test_the_test_escape_hatch_admits_loopback_http_only_when_asked() -> None:
    anything = EgressPolicy(allow_private=True)
    target = check_url("http://127.0.0.1:8080/hook", param="callback_url", policy=anything)
    assert (target.scheme, target.literal_ip, target.port) == ("http", "127.0.0.1", 8080)
    assert check_url("https://localhost:1234/x", param="u", policy=anything).host == "localhost"
    with pytest.raises(InvalidField, match="credentials"):
        check_url("http://u:p@127.0.0.1/hook", param="callback_url", policy=anything)
    with pytest.raises(InvalidField, match="https"):
        check_url("http://127.0.0.1:8080/hook", param="callback_url")


def test_operators_allow_named_private_hosts_and_nothing_else() -> None:
    onprem = EgressPolicy.of([" Ollama.Corp.Example ", "10.20.30.40", "[fd00::7]"])
    assert onprem.allowed_hosts == {"ollama.corp.example", "10.20.30.40", "fd00::7"}
    for url in (
        "http://ollama.corp.example:11434/v1",
        "https://ollama.corp.example/v1",
        "http://10.20.30.40:11434",
        "http://[fd00::7]:8080",
    ):
        assert check_base_url(url, policy=onprem) == url
    for url in (
        "http://10.20.30.41:11434",
        "http://other.corp.example/v1",
        "https://127.0.0.1/v1",
        "http://ollama.corp.example:11434/v1?x",
        "http://u:p@ollama.corp.example/v1",
        "http://167000104:11434",  # 10.20.30.40 spelled as one number: still refused
    ):
        with pytest.raises(InvalidField):
            check_base_url(url, policy=onprem)


def test_operator_channels_may_be_private_but_keep_the_url_rules() -> None:
    assert check_base_url(" http://127.0.0.1:8080/v1/ ", policy=OPERATOR) == (
        "http://127.0.0.1:8080/v1"
    )
    assert check_base_url("http://vllm:8000/v1", policy=OPERATOR) == "http://vllm:8000/v1"
    for url, needle in (
        ("http://2130706433:8080/v1", "stands for 127.0.0.1"),
        ("http://u:p@vllm:8000/v1", "credentials"),
        ("http://vllm:8000/v1?api-version=1", "query"),
        ("http://vllm:0/v1", "port"),
    ):
        with pytest.raises(InvalidField, match=needle):
            check_base_url(url, policy=OPERATOR)


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
        await resolve_checked("localhost", 443, param="callback_url")
    anything = EgressPolicy(allow_private=True)
    found = await resolve_checked("localhost", 443, param="callback_url", policy=anything)
    assert found[0] in ("127.0.0.1", "::1")


@pytest.mark.parametrize(
    ("answers", "reason"),
    [
        (["127.0.0.1"], "loopback"),
        (["10.9.8.7"], "private"),
        (["169.254.169.254"], "link-local"),
        (["100.64.1.1"], "carrier-grade NAT"),
        (["::ffff:127.0.0.1"], "IPv4-mapped loopback"),
        (["fd00::1"], "private"),
        (["fe80::1"], "link-local"),
        (["93.184.215.14", "127.0.0.1"], "loopback"),  # one bad answer refuses them all
    ],
)
async def test_names_resolving_to_internal_addresses_are_refused(
    fake_dns: FakeDns, answers: list[str], reason: str
) -> None:
    fake_dns.set("rebind.example.com", answers)
    assert check_url("https://rebind.example.com/v1", param="base_url").host  # text is fine
    with pytest.raises(UnsafeAddress) as info:
        await resolve_checked("rebind.example.com", 443, param="base_url")
    assert reason in info.value.message
    # the tenant learns the rule, never the internal address behind the name
    assert not any(a in info.value.message for a in answers)


async def test_an_allowed_host_resolves_to_its_private_address(fake_dns: FakeDns) -> None:
    fake_dns.set("ollama.corp.example", ["10.20.30.40"])
    onprem = EgressPolicy.of(["ollama.corp.example"])
    assert await resolve_checked("ollama.corp.example", 80, param="p", policy=onprem) == [
        "10.20.30.40"
    ]
    fake_dns.set("other.corp.example", ["10.20.30.40"])
    with pytest.raises(UnsafeAddress):
        await resolve_checked("other.corp.example", 80, param="p", policy=onprem)


async def test_a_literal_private_ip_is_refused_by_the_resolver_too() -> None:
    for host in ("127.0.0.1", "::ffff:127.0.0.1", "10.0.0.1", "127.1"):
        with pytest.raises(UnsafeAddress):
            await resolve_checked(host, 443, param="callback_url")


async def test_an_unresolvable_name_fails_without_contacting_anything() -> None:
    with pytest.raises(ResolutionFailed):
        await resolve_checked("no-such-host.invalid", 443, param="callback_url", timeout_s=3)
