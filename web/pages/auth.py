"""Sign up, sign in, sign out, and `/`.

The same identity service as `/portal/v1/auth` does the work (password rules, login
back-off and lock-out, session issue and revocation); these routes only move its results
into and out of cookies and forms.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from domain.errors import DomainError, NotFound
from domain.identity import service as identity
from domain.identity.service import InvalidCredentials, LoginThrottled, SsoRequired
from edge.billing import stripe_gateway
from edge.deps import ResourcesDep, SessionDep, client_ip
from edge.sso import SsoRuntimeDep
from edge.statuses import status_of
from schema.unit_of_work import rollback_only
from web.cookies import SESSION
from web.errors import PageRoute, sentence
from web.flash import set_flash
from web.pages.sso_sign_in import sso_required_message, start_sso
from web.render import console_of
from web.signed_out import (
    HOME,
    Email,
    Next,
    Password,
    safe_next,
    sign_in_form,
    signed_out_page,
    start_session,
)
from web.viewer import FormViewer, MaybeViewer, SignedOutForm

router = APIRouter(route_class=PageRoute, include_in_schema=False)
PLAN_PAGE = "/console/plan"


@router.get("/")
async def root(viewer: MaybeViewer) -> Response:
    return RedirectResponse(HOME if viewer else "/console/sign-in", status_code=303)


@router.get("/console/sign-in")
async def sign_in_page(
    request: Request, resources: ResourcesDep, viewer: MaybeViewer, next: str = HOME
) -> Response:
    if viewer is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return sign_in_form(request, resources, "", next, None, 200)


@router.post("/console/sign-in", dependencies=[SignedOutForm])
async def sign_in(
    request: Request,
    resources: ResourcesDep,
    rt: SsoRuntimeDep,
    session: SessionDep,
    email: Email = "",
    password: Password = "",
    next: Next = HOME,
) -> Response:
    """An email without a password goes to its org's identity provider when there is one."""
    if email and not password:
        try:
            return await start_sso(request, resources, rt, session, email, next)
        except NotFound:
            pass  # no SSO for this address: the password check below answers
        except DomainError as exc:
            rollback_only(session)
            return sign_in_form(request, resources, email, next, sentence(exc.message), 400)
    try:
        issued = await identity.login(
            session, resources.identity, email, password, client_ip(request)
        )
    except SsoRequired as exc:
        return sign_in_form(request, resources, email, next, sso_required_message(exc), 403)
    except (InvalidCredentials, LoginThrottled) as exc:
        status = 429 if isinstance(exc, LoginThrottled) else 401
        response = sign_in_form(request, resources, email, next, sentence(exc.message), status)
        response.headers.update(exc.headers)
        return response
    return start_session(request, issued, next)


@router.get("/console/sign-up")
async def sign_up_page(request: Request, resources: ResourcesDep, viewer: MaybeViewer) -> Response:
    if viewer is not None:
        return RedirectResponse(HOME, status_code=303)
    context: dict[str, Any] = {"email": "", "errors": {}, "error": None}
    return signed_out_page(request, resources, "auth/sign_up.html", context, 200)


@router.post("/console/sign-up", dependencies=[SignedOutForm])
async def sign_up(
    request: Request,
    resources: ResourcesDep,
    session: SessionDep,
    email: Email = "",
    password: Password = "",
) -> Response:
    """The same rules as `POST /portal/v1/auth/signup`, then signed straight in: on the plan
    page when Stripe is configured, else on the overview."""
    try:
        user = await identity.create_user(session, resources.identity, email, password)
    except DomainError as exc:
        rollback_only(session)  # the form is shown again; nothing of the refused sign-up stays
        field = exc.param if exc.param in ("email", "password") else None
        context = {
            "email": email,
            "errors": {field: sentence(exc.message)} if field else {},
            "error": None if field else sentence(exc.message),
        }
        status = status_of(exc)
        return signed_out_page(request, resources, "auth/sign_up.html", context, status)
    issued = await identity.issue_session(session, resources.identity, user.id, client_ip(request))
    # With Stripe, a newcomer picks a plan first; without it, the sign-up grant is what they
    # start on, and the overview says so.
    if stripe_gateway(resources.settings) is not None:
        response = start_session(request, issued, PLAN_PAGE)
        welcome = "Welcome to 0xinf! Pick a plan, or start with the trial."
    else:
        response = start_session(request, issued, HOME)
        welcome = "Welcome to 0xinf!"
    pepper = resources.identity.pepper
    set_flash(response, console_of(request).cookies, pepper, welcome, "success")
    return response


@router.post("/console/sign-out")
async def sign_out(
    request: Request, viewer: FormViewer, resources: ResourcesDep, session: SessionDep
) -> Response:
    await identity.logout(session, resources.identity, viewer.token)
    cookies = console_of(request).cookies
    response = RedirectResponse("/console/sign-in", status_code=303)
    cookies.clear(response, SESSION)
    set_flash(response, cookies, resources.identity.pepper, "You are signed out.")
    return response
