"""Liveness and readiness: `/healthz` says the process runs, `/readyz` that it can serve."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter
from sqlalchemy import text
from starlette.responses import JSONResponse

from api.deps import ResourcesDep
from api.errors import envelope

router = APIRouter(tags=["health"])
log = logging.getLogger("oxinf.health")


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(resources: ResourcesDep) -> JSONResponse:
    async def database() -> str:
        async with resources.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return "ok"

    async def temporal() -> str:
        await resources.temporal.check(wait_s=2.0)
        return "ok"

    checks: dict[str, str] = {}
    for name, probe in (("postgres", database), ("temporal", temporal)):
        try:
            checks[name] = await asyncio.wait_for(probe(), timeout=3.0)
        except Exception as exc:  # every failure mode means "not ready"; the log says which
            log.warning("readiness check failed", extra={"part": name, "error": type(exc).__name__})
            checks[name] = "down"
    ready = all(v == "ok" for v in checks.values())
    down = [k for k, v in checks.items() if v != "ok"]
    body: dict[str, object] = {"status": "ok" if ready else "unavailable", "checks": checks}
    if not ready:
        body |= envelope(503, "service_unavailable", "not ready: " + ", ".join(down) + " down")
    return JSONResponse(body, status_code=200 if ready else 503)
