"""What every ops console page shares: the operator check, CSRF on forms, the audit actor.

The operator check runs before anything else (the CSRF check included), so a non-operator
gets the same 403 from every ops URL whatever they send, and learns nothing about ids.
"""

from __future__ import annotations

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import RedirectResponse, Response

from domain.audit.service import Actor
from domain.errors import DomainError
from edge.deps import client_ip
from edge.statuses import status_of
from schema.unit_of_work import rollback_only
from web import csrf
from web.errors import sentence
from web.flash import Level, set_flash
from web.render import console_of, pepper_of
from web.viewer import Viewer, page_viewer


def operator(key: str) -> object:
    """The dependency of an ops page: a signed-in platform operator."""
    return Depends(page_viewer(key))


def operator_form(key: str) -> object:
    """The dependency of an ops form: an operator, then a valid CSRF token."""

    # A default, not `Annotated[...]`: with postponed annotations FastAPI resolves those by
    # name in this module, where the local `check` is not.
    async def dependency(request: Request, viewer: Viewer = Depends(page_viewer(key))) -> Viewer:
        await csrf.require(request, viewer.csrf)
        return viewer

    return Depends(dependency)


def actor_of(request: Request, viewer: Viewer) -> Actor:
    return Actor("operator", viewer.user.id, client_ip(request))


def done(request: Request, url: str, text: str, level: Level = "success") -> Response:
    """After a change: back to a page (post/redirect/get), saying what happened."""
    response = RedirectResponse(url, status_code=303)
    set_flash(response, console_of(request).cookies, pepper_of(request), text, level)
    return response


async def form_fields(request: Request) -> dict[str, str]:
    """The posted form's text fields (parsed once; the CSRF check already read it)."""
    return {k: v for k, v in (await request.form()).items() if isinstance(v, str)}


def field_errors(exc: DomainError, fields: tuple[str, ...], fallback: str) -> dict[str, str]:
    """A refusal as {form field: sentence}; one naming no field of the form goes on
    `fallback` (the form's general error line)."""
    field = exc.param if exc.param in fields else fallback
    return {field: sentence(exc.message)}


def refused(exc: DomainError, session: AsyncSession) -> None:
    """A form refused for its input is shown again: keep nothing it did, and let any other
    failure (403, 404, 409 on a race ...) reach the error page."""
    if status_of(exc) not in (400, 409):
        raise exc
    rollback_only(session)
