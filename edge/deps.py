"""FastAPI dependencies of both edges: how a route or page reaches the process's resources
and its session, and what it reads from the request itself."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from config.runtime import Resources


async def get_resources(request: Request) -> Resources:
    # async on purpose: FastAPI runs a plain `def` dependency in a thread pool, a thread
    # hop on every request of the relay's hot path.
    resources: Resources = request.app.state.resources
    return resources


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    resources: Resources = request.app.state.resources
    async with resources.sessions() as session:
        yield session


ResourcesDep = Annotated[Resources, Depends(get_resources)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]


def public_base_url(request: Request, resources: Resources) -> str:
    """Where clients reach this API, for URLs we hand out: the configured public URL
    (`OXINF_PUBLIC_BASE_URL`), else the base URL the request came in on."""
    return (resources.settings.public_base_url or str(request.base_url)).rstrip("/")


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None
