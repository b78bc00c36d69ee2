"""FastAPI dependencies of both edges: how a route or page reaches the process's resources
and its session, and what it reads from the request itself."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from config.runtime import Resources
from schema.unit_of_work import rollback_only, unit_of_work


async def get_resources(request: Request) -> Resources:
    # async on purpose: FastAPI runs a plain `def` dependency in a thread pool, a thread
    # hop on every request of the relay's hot path.
    resources: Resources = request.app.state.resources
    return resources


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's unit of work (`schema.unit_of_work`): committed when the handler
    returns, rolled back when it raises, before the response is sent.

    `scope="function"` below is what puts the commit before the response: FastAPI exits a
    function-scoped dependency as soon as the handler has produced its response object, and
    a request-scoped one (the default) only after the response has gone out, when a failed
    commit could no longer change the answer. A failed commit (or post-commit hook) thus
    reaches the exception handlers and the client gets an error, never a 2xx for a write
    that was lost. FastAPI caches the dependency per request, so every `SessionDep` of one
    request (route, auth and page dependencies) is the same session."""
    resources: Resources = request.app.state.resources
    async with unit_of_work(resources.sessions) as session:
        request.state.session = session
        yield session


def abandon_unit_of_work(request: Request) -> None:
    """For a route class that answers an unexpected failure itself (the console's 500
    page): the request's unit of work, if it opened one, must roll back."""
    session = getattr(request.state, "session", None)
    if isinstance(session, AsyncSession):
        rollback_only(session)


ResourcesDep = Annotated[Resources, Depends(get_resources)]
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


def public_base_url(request: Request, resources: Resources) -> str:
    """Where clients reach this API, for URLs we hand out: the configured public URL
    (`OXINF_PUBLIC_BASE_URL`), else the base URL the request came in on."""
    return (resources.settings.public_base_url or str(request.base_url)).rstrip("/")


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None
