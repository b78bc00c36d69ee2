"""The FastAPI application: wiring only. Routers live in their surface packages."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from temporalio.client import Client

from api.errors import install_error_handlers
from api.health import router as health_router
from api.middleware import EdgeMiddleware
from api.runtime import Resources, open_resources
from api.settings import Settings, get_settings
from schema.migrate import ensure_migrated

log = logging.getLogger("oxinf.api")


def create_app(
    settings: Settings | None = None,
    *,
    resources: Resources | None = None,
    temporal_client: Client | None = None,
) -> FastAPI:
    """Build the app; tests pass `resources` to share one pool, production passes nothing."""
    settings = settings or (resources.settings if resources else get_settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = resources is None
        res = resources or open_resources(settings, temporal_client=temporal_client)
        try:
            await ensure_migrated(res.engine)
            app.state.resources = res
            yield
        finally:
            if owned:
                await res.aclose()

    app = FastAPI(
        title="0xinf",
        version="0.1.0",
        description="LLM API gateway with an exact integer credit ledger.",
        lifespan=lifespan,
    )
    if resources is not None:
        app.state.resources = resources
    install_error_handlers(app)
    app.include_router(health_router)
    app.add_middleware(EdgeMiddleware, max_body_bytes=settings.max_body_bytes)
    return app
