"""A fake DNS in front of the egress policy's resolver: names a test sets answer with the
addresses it gives (a public name that rebinds to loopback, an on-prem host), every other
name goes to the real resolver. Only the policy's lookup sees it, so a connection that
reaches a fake-only name proves the transport used the address the policy checked."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator

import pytest

from domain.egress import policy


class FakeDns:
    def __init__(self, real: Callable[[str, int], Awaitable[list[str]]]) -> None:
        self._real = real
        self._names: dict[str, list[str]] = {}
        self.asked: list[str] = []

    def set(self, name: str, addresses: list[str]) -> None:
        self._names[name] = list(addresses)

    async def lookup(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        if host in self._names:
            return list(self._names[host])
        return await self._real(host, port)


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDns]:
    dns = FakeDns(policy.lookup)
    monkeypatch.setattr(policy, "lookup", dns.lookup)
    yield dns
