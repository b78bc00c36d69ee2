"""Shared fixtures: real PostgreSQL, real Temporal servers, the app over ASGI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine

from api.app import create_app
from config.runtime import Resources, build_http_client
from config.settings import Settings
from config.temporal import TemporalHandle
from schema.db import session_factory
from tests.fixtures.db import database_url, engine, server_url, truncate_all  # noqa: F401
from tests.fixtures.temporal import dev_server_env, time_skipping_env  # noqa: F401

TEST_PEPPER = "test-pepper-" + "0" * 40
TEST_FERNET_KEY = Fernet.generate_key().decode()


@pytest.fixture(scope="session")
def settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:  # noqa: F811
    return Settings(
        env="test",
        data_dir=Path(tmp_path_factory.mktemp("oxinf-data")),
        database_url=database_url,
        temporal_address="127.0.0.1:1",
        hmac_pepper=SecretStr(TEST_PEPPER),
        encryption_keys=SecretStr(TEST_FERNET_KEY),
        log_json=True,
        bcrypt_rounds=4,
        # Tests reuse model names across truncated databases: no cross-test memo.
        plan_cache_ttl_s=0.0,
    )


@pytest.fixture(scope="session")
async def resources(settings: Settings, engine: AsyncEngine) -> AsyncIterator[Resources]:  # noqa: F811
    res = Resources(
        settings=settings,
        engine=engine,
        sessions=session_factory(engine),
        http=build_http_client(),
        temporal=TemporalHandle(settings),
    )
    yield res
    await res.relay.aclose()
    await res.http.aclose()
    await res.tenant_http.aclose()


@pytest.fixture(autouse=True)
async def _clean_database(request: pytest.FixtureRequest) -> None:
    """Truncate before each test that touches the database (tests without it pay nothing)."""
    if "engine" in request.fixturenames or "resources" in request.fixturenames:
        await truncate_all(request.getfixturevalue("engine"))


@pytest.fixture
def app(resources: Resources) -> FastAPI:
    return create_app(resources=resources)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c
