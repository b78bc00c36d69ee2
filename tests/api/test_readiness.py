"""Readiness reports each dependency, and a stopped PostgreSQL turns it 503."""

from __future__ import annotations

from pathlib import Path

import httpx
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from config.runtime import Resources, build_http_client
from config.settings import Settings
from config.temporal import TemporalHandle
from schema.db import create_engine, session_factory
from schema.embedded import start_embedded_postgres
from schema.migrate import upgrade


async def test_readyz_ok_then_503_when_postgres_stops(
    tmp_path: Path, settings: Settings, time_skipping_env: WorkflowEnvironment
) -> None:
    server, url = start_embedded_postgres(tmp_path / "pg")
    engine = create_engine(url, pool_size=2)
    await upgrade(engine)
    res = Resources(
        settings=settings,
        engine=engine,
        sessions=session_factory(engine),
        http=build_http_client(),
        temporal=TemporalHandle(settings, time_skipping_env.client),
    )
    app = create_app(resources=res)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as client:
            ok = await client.get("/readyz")
            assert ok.status_code == 200, ok.text
            assert ok.json()["checks"] == {"postgres": "ok", "temporal": "ok"}

            server.cleanup()  # stops the server: this process holds its only handle
            down = await client.get("/readyz")
            assert down.status_code == 503
            body = down.json()
            assert body["checks"] == {"postgres": "down", "temporal": "ok"}
            assert body["error"]["code"] == "service_unavailable"
            assert "postgres" in body["error"]["message"]
            assert (await client.get("/healthz")).status_code == 200
    finally:
        await res.aclose()


async def test_readyz_reports_temporal_down(client: httpx.AsyncClient) -> None:
    # The shared test settings point Temporal at a closed port.
    resp = await client.get("/readyz")
    assert resp.status_code == 503
    assert resp.json()["checks"] == {"postgres": "ok", "temporal": "down"}
