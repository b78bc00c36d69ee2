"""Signing in to the console through the org's identity provider.

The same SSO service as `/portal/v1/auth/sso` does the work (discovery, PKCE, state and
nonce, the ID token's checks, just-in-time provisioning); these routes add what a browser
needs. The sign-in's `state` is also kept in a cookie of the browser that started it, and
the callback refuses a state that browser did not start: a sign-in begun by someone else
(and its code) cannot be planted in a victim's browser to sign it into their account.

Leaving for the provider is a page that moves on by itself rather than a redirect: the
console's Content-Security-Policy (`form-action 'self'`) would stop a form post that
redirects to another origin.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from config.runtime import Resources
from domain.crypto import digests_equal
from domain.errors import DomainError
from domain.identity.service import SsoRequired
from domain.sso import signin
from domain.sso.runtime import SsoRuntime
from edge.deps import ResourcesDep, SessionDep, client_ip
from edge.sso import CONSOLE_CALLBACK_PATH, SsoRuntimeDep, callback_uri
from edge.statuses import status_of
from schema.unit_of_work import rollback_only
from web.cookies import ORG, ORG_MAX_AGE_S, SSO_STATE
from web.errors import PageRoute, sentence
from web.flash import set_flash
from web.render import console_of, render
from web.signed_out import HOME, Email, Next, safe_next, sign_in_form, start_session
from web.viewer import SignedOutForm

router = APIRouter(route_class=PageRoute, include_in_schema=False)

USE_SSO = "Use single sign-on"  # the sign-in form's button, named by the messages below
QueryText = Annotated[str | None, Query(max_length=4000)]


def sso_required_message(exc: SsoRequired) -> str:
    need = exc.requirement
    return (
        f"{need.org_name} requires single sign-on for {need.domain} addresses. "
        f"Choose “{USE_SSO}” to sign in through your identity provider."
    )


async def start_sso(
    request: Request,
    resources: Resources,
    rt: SsoRuntime,
    session: AsyncSession,
    email: str,
    next_path: str,
) -> Response:
    """The page that sends the browser on to the provider; raises the service's errors
    (`NotFound` when no org signs this address in with SSO)."""
    started = await signin.start(
        session, rt, email=email,
        callback_uri=callback_uri(request, resources, CONSOLE_CALLBACK_PATH),
        return_to=safe_next(next_path),
    )  # fmt: skip
    response = render(
        request, "auth/sso_redirect.html", {"url": started.authorization_url}, viewer=None
    )
    max_age = int(signin.LOGIN_TTL.total_seconds())
    console_of(request).cookies.set(response, SSO_STATE, started.state, max_age=max_age)
    return response


@router.post("/console/sign-in/sso", dependencies=[SignedOutForm])
async def sso_sign_in(
    request: Request,
    resources: ResourcesDep,
    rt: SsoRuntimeDep,
    session: SessionDep,
    email: Email = "",
    next: Next = HOME,
) -> Response:
    try:
        return await start_sso(request, resources, rt, session, email, next)
    except DomainError as exc:
        rollback_only(session)
        return sign_in_form(request, resources, email, next, sentence(exc.message), status_of(exc))


@router.get(CONSOLE_CALLBACK_PATH)
async def sso_callback(
    request: Request,
    resources: ResourcesDep,
    rt: SsoRuntimeDep,
    session: SessionDep,
    state: Annotated[str, Query(max_length=200)] = "",
    code: QueryText = None,
    error: Annotated[str | None, Query(max_length=200)] = None,
    error_description: Annotated[str | None, Query(max_length=1000)] = None,
) -> Response:
    """Where the provider sends the browser back: a session cookie, then the page the
    sign-in started from."""
    cookies = console_of(request).cookies
    started_here = cookies.read(request, SSO_STATE)
    if (
        not state
        or started_here is None
        or not digests_equal(started_here.encode(), state.encode())
    ):
        response = sign_in_form(
            request, resources, "", HOME,
            "This single sign-on was not started in this browser, or it has expired. "
            "Sign in again.", 400,
        )  # fmt: skip
        cookies.clear(response, SSO_STATE)
        return response
    try:
        # A refusal still spends the state: `finish` keeps that write whatever follows.
        signed = await signin.finish(
            session, rt, state=state, code=code, provider_error=error,
            provider_error_description=error_description, ip=client_ip(request),
        )  # fmt: skip
    except DomainError as exc:
        response = sign_in_form(request, resources, "", HOME, sentence(exc.message), status_of(exc))
        cookies.clear(response, SSO_STATE)
        return response
    response = start_session(request, signed.session, signed.return_to or HOME)
    cookies.clear(response, SSO_STATE)
    cookies.set(response, ORG, str(signed.org_id), max_age=ORG_MAX_AGE_S)
    pepper = resources.identity.pepper
    set_flash(response, cookies, pepper, f"Signed in with single sign-on as {signed.email}.")
    return response
