"""One fake upstream per module over real loopback HTTP; a fresh client per test."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from domain.providers.aiohttp_transport import UpstreamClient
from tests.fakes.provider import FakeProvider
from tests.providers.helpers import KEY


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider(api_key=KEY) as provider:
        yield provider


@pytest.fixture(autouse=True)
def _reset_fake(fake: FakeProvider) -> None:
    fake.reset()


@pytest.fixture(scope="session")
def _tls() -> ssl.SSLContext:
    # Building a verifying context loads the CA bundle (~50 ms); clients can share one.
    return ssl.create_default_context()


@pytest.fixture(params=["httpcore", "aiohttp"])
async def http(
    request: pytest.FixtureRequest, _tls: ssl.SSLContext
) -> AsyncIterator[httpx.AsyncClient]:
    """Every adapter test runs over httpx's own transport and over the one production uses."""
    if request.param == "aiohttp":
        # UpstreamClient: JSON calls take its direct path, streams go through httpx.
        limits = httpx.Limits(max_connections=64)
        async with UpstreamClient(limits=limits, ssl_context=_tls) as client:
            yield client
        return
    async with httpx.AsyncClient(verify=_tls) as client:
        yield client
