"""What the signed-out pages share (password sign-in and sign-up in `web.pages.auth`,
single sign-on in `web.pages.sso_sign_in`): their form fields, where a sign-in may lead, the
pre-session CSRF binding, and starting the session cookie."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import Form, Request
from starlette.responses import RedirectResponse, Response

from config.runtime import Resources
from domain.crypto import random_hex
from domain.identity.service import IssuedSession
from web import csrf
from web.cookies import PRE_SESSION, SESSION
from web.render import console_of, render

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
    request: Request, resources: Resources, template: str, context: dict[str, Any], status: int
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


def sign_in_form(
    request: Request,
    resources: Resources,
    email: str,
    next_path: str,
    error: str | None,
    status: int,
) -> Response:
    context = {"email": email, "error": error, "next": safe_next(next_path)}
    return signed_out_page(request, resources, "auth/sign_in.html", context, status)


def start_session(request: Request, issued: IssuedSession, next_path: str) -> Response:
    response = RedirectResponse(safe_next(next_path), status_code=303)
    console_of(request).cookies.set(response, SESSION, issued.token, expires=issued.expires_at)
    return response
