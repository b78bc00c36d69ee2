"""Process-wide resources (database, HTTP client, Temporal) opened once and shared.

The API lifespan, the worker and the CLI all open the same bundle so connection settings and
pool sizes are decided in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from api.settings import ConfigError, Settings
from api.temporal import TemporalHandle
from schema.db import SessionFactory, create_engine, session_factory
from schema.embedded import start_embedded_postgres


def resolve_database_url(settings: Settings) -> str:
    """`OXINF_DATABASE_URL`, or the embedded pgserver outside production."""
    if settings.database_url:
        return settings.database_url
    if settings.env == "production":
        raise ConfigError("OXINF_DATABASE_URL is required in production")
    _, url = start_embedded_postgres(settings.data_dir / "pg")
    return url


def build_http_client() -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=httpx.Timeout(connect=5.0, read=120.0, write=30.0, pool=10.0),
        limits=httpx.Limits(max_connections=512, max_keepalive_connections=128),
        follow_redirects=False,
    )


@dataclass
class Resources:
    settings: Settings
    engine: AsyncEngine
    sessions: SessionFactory
    http: httpx.AsyncClient
    temporal: TemporalHandle
    extras: dict[str, object] = field(default_factory=dict)

    async def aclose(self) -> None:
        await self.http.aclose()
        await self.engine.dispose()


def open_resources(settings: Settings, *, temporal_client: Client | None = None) -> Resources:
    engine = create_engine(resolve_database_url(settings), pool_size=settings.db_pool_size)
    return Resources(
        settings=settings,
        engine=engine,
        sessions=session_factory(engine),
        http=build_http_client(),
        temporal=TemporalHandle(settings, temporal_client),
    )
