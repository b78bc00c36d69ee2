"""Who is looking at a console page: the session cookie resolved to a user, their orgs and
the org they are acting in.

The cookie holds the very token `/portal/v1/auth/login` returns, checked by the same
`authenticate_session`, so expiry and revocation work identically for both. The selected org
comes from a cookie and is only ever used if it is one of the viewer's memberships.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from domain.errors import PermissionDenied
from domain.identity import service as identity
from domain.identity.repository import OrgMembership
from domain.identity.service import InvalidCredentials, OrgContext
from edge.deps import ResourcesDep, SessionDep, client_ip
from schema.identity import User
from web import csrf
from web.cookies import ORG, PRE_SESSION, SESSION
from web.nav import page
from web.render import console_of


class SignInRequired(Exception):
    """No valid session: pages answer with a redirect to the sign-in page."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


@dataclass(frozen=True)
class Viewer:
    token: str
    ctx: OrgContext
    orgs: list[OrgMembership]
    csrf: str

    @property
    def user(self) -> User:
        return self.ctx.user


def _uuid(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None


async def optional_viewer(
    request: Request, resources: ResourcesDep, session: SessionDep
) -> Viewer | None:
    cookies = console_of(request).cookies
    token = cookies.read(request, SESSION)
    if token is None:
        return None
    try:
        user = await identity.authenticate_session(session, resources.identity, token)
    except InvalidCredentials:
        return None
    orgs = await identity.memberships(session, user.id)
    wanted = _uuid(cookies.read(request, ORG))
    org_id = next((m.org.id for m in orgs if m.org.id == wanted), None)
    ctx = await identity.org_context(session, user, org_id, client_ip(request))
    return Viewer(token, ctx, orgs, csrf.session_token(resources.identity.pepper, token))


async def required_viewer(
    request: Request, viewer: Annotated[Viewer | None, Depends(optional_viewer)]
) -> Viewer:
    if viewer is None:
        # After signing in, come back to this page; a form post cannot be replayed, so its
        # visitor starts again from the console home.
        raise SignInRequired(request.url.path if request.method == "GET" else "/console")
    return viewer


async def form_viewer(
    request: Request, viewer: Annotated[Viewer, Depends(required_viewer)]
) -> Viewer:
    """For state-changing requests: the viewer, once the CSRF token checks out."""
    await csrf.require(request, viewer.csrf)
    return viewer


async def signed_out_form(request: Request, resources: ResourcesDep) -> None:
    """Sign-in and sign-up: the token must match the pre-session cookie it was made for."""
    nonce = console_of(request).cookies.read(request, PRE_SESSION)
    if nonce is None:
        raise csrf.CsrfRejected()
    await csrf.require(request, csrf.pre_session_token(resources.identity.pepper, nonce))


def page_viewer(key: str) -> Callable[..., Awaitable[Viewer]]:
    """The dependency of a page listed in `web.nav`: signed in, and allowed to see it."""
    entry = page(key)

    async def dependency(viewer: Annotated[Viewer, Depends(required_viewer)]) -> Viewer:
        if not entry.allows(viewer.ctx):
            raise PermissionDenied(entry.refusal())
        return viewer

    return dependency


def page_form_viewer(key: str) -> Callable[..., Awaitable[Viewer]]:
    """A form on a page listed in `web.nav`: allowed to see the page, and the CSRF token
    checks out (the role first, so a refused viewer learns nothing about their token)."""
    entry = page(key)

    async def dependency(
        request: Request, viewer: Annotated[Viewer, Depends(required_viewer)]
    ) -> Viewer:
        if not entry.allows(viewer.ctx):
            raise PermissionDenied(entry.refusal())
        await csrf.require(request, viewer.csrf)
        return viewer

    return dependency


MaybeViewer = Annotated[Viewer | None, Depends(optional_viewer)]
SignedIn = Annotated[Viewer, Depends(required_viewer)]
FormViewer = Annotated[Viewer, Depends(form_viewer)]
SignedOutForm = Depends(signed_out_form)
