"""Liveness and readiness: `/healthz` says the process runs, `/readyz` that it can serve.

`/healthz` touches no dependency, so an orchestrator never restarts an API process because
PostgreSQL or Temporal is down (restarting would not help; the pools recover by themselves);
`/readyz` names the dependency that is down, so a load balancer can route around it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from fastapi import APIRouter
from sqlalchemy import text
from starlette.responses import JSONResponse

from api.errors import envelope
from edge.deps import ResourcesDep

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

    async def state(name: str, probe: Callable[[], Awaitable[str]]) -> str:
        try:
            return await asyncio.wait_for(probe(), timeout=3.0)
        except Exception as exc:  # every failure mode means "not ready"; the log says which
            log.warning("readiness check failed", extra={"part": name, "error": type(exc).__name__})
            return "down"

    # Both at once: with one dependency hanging, the answer still comes within one timeout.
    postgres, temporal_state = await asyncio.gather(
        state("postgres", database), state("temporal", temporal)
    )
    checks = {"postgres": postgres, "temporal": temporal_state}
    ready = all(v == "ok" for v in checks.values())
    down = [k for k, v in checks.items() if v != "ok"]
    body: dict[str, object] = {"status": "ok" if ready else "unavailable", "checks": checks}
    if not ready:
        body |= envelope(503, "service_unavailable", "not ready: " + ", ".join(down) + " down")
    return JSONResponse(body, status_code=200 if ready else 503)
