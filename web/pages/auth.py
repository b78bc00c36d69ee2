"""Sign up, sign in, sign out, and `/`.

The same identity service as `/portal/v1/auth` does the work (password rules, login
back-off and lock-out, session issue and revocation); these routes only move its results
into and out of cookies and forms.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from domain.crypto import random_hex
from domain.errors import DomainError
from domain.identity import service as identity
from domain.identity.service import InvalidCredentials, LoginThrottled
from edge.deps import ResourcesDep, SessionDep, client_ip
from edge.statuses import status_of
from schema.unit_of_work import rollback_only
from web import csrf
from web.cookies import PRE_SESSION, SESSION
from web.errors import PageRoute, sentence
from web.flash import set_flash
from web.render import console_of, render
from web.viewer import FormViewer, MaybeViewer, SignedOutForm

router = APIRouter(route_class=PageRoute, include_in_schema=False)

HOME = "/console"
Email = Annotated[str, Form(max_length=320)]
Password = Annotated[str, Form(max_length=1024)]
Next = Annotated[str, Form(max_length=2000)]


def safe_next(value: str | None) -> str:
    """Only a path on this console: never another host, so sign-in cannot be an open
    redirect (`//evil.example`, `/\\evil.example` and `https://…` all fall back home)."""
    if not value or not value.startswith("/console") or "\\" in value:
        return HOME
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or any(ord(c) < 0x20 for c in value):
        return HOME
    return value


def signed_out_page(
    request: Request, resources: ResourcesDep, template: str, context: dict[str, Any], status: int
) -> Response:
    """Sign-in and sign-up pages: their CSRF token is bound to a pre-session cookie."""
    cookies = console_of(request).cookies
    nonce = cookies.read(request, PRE_SESSION)
    fresh = nonce is None
    nonce = nonce or random_hex(16)
    token = csrf.pre_session_token(resources.identity.pepper, nonce)
    response = render(request, template, context, viewer=None, status=status, csrf=token)
    if fresh:
        cookies.set(response, PRE_SESSION, nonce)
    return response


def start_session(request: Request, issued: identity.IssuedSession, next_path: str) -> Response:
    response = RedirectResponse(safe_next(next_path), status_code=303)
    console_of(request).cookies.set(response, SESSION, issued.token, expires=issued.expires_at)
    return response


@router.get("/")
async def root(viewer: MaybeViewer) -> Response:
    return RedirectResponse(HOME if viewer else "/console/sign-in", status_code=303)


@router.get("/console/sign-in")
async def sign_in_page(
    request: Request, resources: ResourcesDep, viewer: MaybeViewer, next: str = HOME
) -> Response:
    if viewer is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    context = {"email": "", "error": None, "next": safe_next(next)}
    return signed_out_page(request, resources, "auth/sign_in.html", context, 200)


@router.post("/console/sign-in", dependencies=[SignedOutForm])
async def sign_in(
    request: Request,
    resources: ResourcesDep,
    session: SessionDep,
    email: Email = "",
    password: Password = "",
    next: Next = HOME,
) -> Response:
    try:
        issued = await identity.login(
            session, resources.identity, email, password, client_ip(request)
        )
    except (InvalidCredentials, LoginThrottled) as exc:
        status = 429 if isinstance(exc, LoginThrottled) else 401
        context = {"email": email, "error": sentence(exc.message), "next": safe_next(next)}
        response = signed_out_page(request, resources, "auth/sign_in.html", context, status)
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
    """The same rules as `POST /portal/v1/auth/signup`, then signed straight in."""
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
    response = start_session(request, issued, HOME)
    pepper = resources.identity.pepper
    set_flash(response, console_of(request).cookies, pepper, "Welcome to 0xinf!", "success")
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
