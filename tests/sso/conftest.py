"""SSO tests run against a real OpenID provider on loopback, which the tenant egress policy
lets them reach only because these resources allow-list 127.0.0.1 (as an operator would an
on-prem provider); the shared `resources` keep the strict default."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from api.app import create_app
from config.runtime import Resources, build_http_client
from config.settings import Settings
from config.temporal import TemporalHandle
from domain.sso import domains
from schema.db import session_factory
from tests.fixtures.oidc import Idp, run_idp

LOOPBACK = "127.0.0.1"


class FakeTxt:
    """TXT records by name, in front of the DNS lookup domain verification makes."""

    def __init__(self) -> None:
        self.records: dict[str, list[str]] = {}
        self.asked: list[str] = []

    def publish(self, name: str, value: str) -> None:
        self.records.setdefault(name, []).append(value)

    async def lookup(self, name: str) -> list[str]:
        self.asked.append(name)
        return list(self.records.get(name, []))


@pytest.fixture
def dns_txt(monkeypatch: pytest.MonkeyPatch) -> FakeTxt:
    fake = FakeTxt()
    monkeypatch.setattr(domains, "txt_records", fake.lookup)
    return fake


@pytest.fixture(scope="session")
def idp() -> Iterator[Idp]:
    yield from run_idp()


@pytest.fixture(autouse=True)
def _reset_idp(idp: Idp) -> None:
    idp.tamper_next = None
    idp.sign_with_foreign_key = False


@pytest.fixture(scope="session")
async def sso_resources(settings: Settings, engine: AsyncEngine) -> AsyncIterator[Resources]:
    res = Resources(
        settings=settings.model_copy(update={"tenant_egress_allow_hosts": [LOOPBACK]}),
        engine=engine,
        sessions=session_factory(engine),
        http=build_http_client(),
        temporal=TemporalHandle(settings),
    )
    yield res
    await res.relay.aclose()
    await res.http.aclose()
    await res.tenant_http.aclose()


@pytest.fixture
def sso_app(sso_resources: Resources) -> FastAPI:
    return create_app(resources=sso_resources)


@pytest.fixture
async def sso_client(sso_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=sso_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


from tests.egress.fake_dns import fake_dns  # noqa: E402, F401
