"""`/console/invites/<token>`: where an invite link lands.

Signed out, the page offers to create an account for the invited email (then joins at once)
or to sign in and come back. Signed in as the invited email, one button joins the org;
signed in as anyone else, it says who the invite is for. The same `domain.enterprise.invites`
rules decide in every case: once, before expiry, for that address only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from domain.enterprise import invites
from domain.errors import DomainError
from domain.identity import service as identity
from edge.deps import ResourcesDep, SessionDep, client_ip
from edge.statuses import status_of
from schema.unit_of_work import rollback_only
from web.cookies import ORG, ORG_MAX_AGE_S, SESSION
from web.errors import PageRoute, sentence
from web.flash import set_flash
from web.render import console_of, render
from web.signed_out import Password, signed_out_page
from web.viewer import FormViewer, MaybeViewer, SignedOutForm

router = APIRouter(route_class=PageRoute, include_in_schema=False)
PATH = "/console/invites/{token}"


def _context(invite: invites.Invite, token: str, **extra: Any) -> dict[str, Any]:
    base = {
        "invite": invite,
        "state": invite.state(datetime.now(UTC)),
        "token": token,
        "sign_in_href": "/console/sign-in?" + urlencode({"next": f"/console/invites/{token}"}),
        "error": None,
        "errors": {},
    }
    return {**base, **extra}


@router.get(PATH)
async def invite_page(
    request: Request, token: str, viewer: MaybeViewer, resources: ResourcesDep, session: SessionDep
) -> Response:
    invite = await invites.find(session, resources.identity.pepper, token)
    context = _context(invite, token)
    if viewer is None:
        return signed_out_page(request, resources, "auth/invite.html", context, 200)
    return render(request, "auth/invite.html", context, viewer=viewer)


def _joined(request: Request, response: Response, invite: invites.Invite) -> Response:
    cookies = console_of(request).cookies
    cookies.set(response, ORG, str(invite.org_id), max_age=ORG_MAX_AGE_S)
    pepper: str = request.app.state.resources.identity.pepper
    text = f"Welcome to {invite.org_name}! You joined as {invite.role}."
    set_flash(response, cookies, pepper, text, "success")
    return response


@router.post(PATH + "/accept")
async def accept(
    request: Request, token: str, viewer: FormViewer, resources: ResourcesDep, session: SessionDep
) -> Response:
    try:
        invite = await invites.accept(
            session, resources.identity.pepper, token, viewer.user, client_ip(request)
        )
    except DomainError as exc:
        rollback_only(session)
        found = await invites.find(session, resources.identity.pepper, token)
        context = _context(found, token, error=sentence(exc.message))
        return render(request, "auth/invite.html", context, viewer=viewer, status=status_of(exc))
    return _joined(request, RedirectResponse("/console", status_code=303), invite)


@router.post(PATH + "/join", dependencies=[SignedOutForm])
async def join(
    request: Request,
    token: str,
    resources: ResourcesDep,
    session: SessionDep,
    password: Password = "",
) -> Response:
    """A new account for the invited email, joined to the org and signed in."""
    pepper = resources.identity.pepper
    invite = await invites.find(session, pepper, token)
    try:
        user = await identity.create_user(session, resources.identity, invite.email, password)
        joined = await invites.accept(session, pepper, token, user, client_ip(request))
    except DomainError as exc:
        rollback_only(session)
        field = "password" if exc.param == "password" else None
        context = _context(
            invite, token,
            errors={field: sentence(exc.message)} if field else {},
            error=None if field else sentence(exc.message),
        )  # fmt: skip
        return signed_out_page(request, resources, "auth/invite.html", context, status_of(exc))
    issued = await identity.issue_session(session, resources.identity, user.id, client_ip(request))
    response = RedirectResponse("/console", status_code=303)
    console_of(request).cookies.set(response, SESSION, issued.token, expires=issued.expires_at)
    return _joined(request, response, joined)
