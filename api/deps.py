"""FastAPI dependencies: how a router reaches the shared resources and a session."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from api.runtime import Resources


def get_resources(request: Request) -> Resources:
    resources: Resources = request.app.state.resources
    return resources


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with get_resources(request).sessions() as session:
        yield session


ResourcesDep = Annotated[Resources, Depends(get_resources)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
