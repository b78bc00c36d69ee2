"""`/console/sso`: the org's single sign-on (owners and admins).

The same service as `/enterprise/v1/sso` does the work (the issuer's discovery on save, the
write-only client secret, DNS TXT proof of each email domain, "test connection"); this page
shows it as one form, the records to publish and the redirect URIs to register.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import RedirectResponse, Response

from config.runtime import Resources
from domain.errors import DomainError, NotFound
from domain.sso import configuration as sso
from domain.sso.domains import record_name, record_value
from edge.deps import ResourcesDep, SessionDep
from edge.sso import API_CALLBACK_PATH, CONSOLE_CALLBACK_PATH, SsoRuntimeDep, callback_uri
from edge.statuses import status_of
from schema.sso import SSO_ROLES
from schema.unit_of_work import rollback_only
from web.errors import PageRoute, sentence
from web.flash import Level, set_flash
from web.render import console_of, html_response, render
from web.viewer import Viewer, page_form_viewer, page_viewer

router = APIRouter(route_class=PageRoute, include_in_schema=False)

PATH = "/console/sso"
FIELDS = ("issuer", "client_id", "client_secret", "domains", "default_role")
ROLES = tuple(r for r in ("member", "finance", "admin") if r in SSO_ROLES)
PageViewer = Annotated[Viewer, Depends(page_viewer("sso"))]
FormViewer = Annotated[Viewer, Depends(page_form_viewer("sso"))]


@dataclass(frozen=True)
class DomainRow:
    domain: str
    verified: bool
    record_name: str
    record_value: str


def _form_of(found: sso.SsoSettings | None) -> dict[str, Any]:
    if found is None:
        return {"issuer": "", "client_id": "", "domains": "", "default_role": "member",
                "require_sso": False, "enabled": True}  # fmt: skip
    c = found.config
    return {
        "issuer": c.issuer,
        "client_id": c.client_id,
        "domains": "\n".join(d.domain for d in found.domains),
        "default_role": c.default_role,
        "require_sso": c.require_sso,
        "enabled": c.enabled,
    }


async def _settings(session: AsyncSession, viewer: Viewer) -> sso.SsoSettings | None:
    try:
        return await sso.get_settings(session, viewer.ctx)
    except NotFound:
        return None


def _page(
    request: Request,
    resources: Resources,
    viewer: Viewer,
    found: sso.SsoSettings | None,
    *,
    form: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    error: str | None = None,
    report: sso.ConnectionReport | None = None,
    status: int = 200,
) -> Response:
    rows = [
        DomainRow(d.domain, d.verified_at is not None, record_name(d.domain),
                  record_value(d.verification_token))
        for d in (found.domains if found else [])
    ]  # fmt: skip
    context = {
        "settings": found.config if found else None,
        "domains": rows,
        "form": form if form is not None else _form_of(found),
        "errors": errors or {},
        "error": error,
        "roles": ROLES,
        "report": report,
        "console_redirect_uri": callback_uri(request, resources, CONSOLE_CALLBACK_PATH),
        "api_redirect_uri": callback_uri(request, resources, API_CALLBACK_PATH),
    }
    return render(request, "pages/sso.html", context, viewer=viewer, status=status)


def _back(request: Request, resources: Resources, text: str, level: Level = "success") -> Response:
    response = RedirectResponse(PATH, status_code=303)
    set_flash(response, console_of(request).cookies, resources.identity.pepper, text, level)
    return response


@router.get(PATH)
async def sso_page(
    request: Request, viewer: PageViewer, resources: ResourcesDep, session: SessionDep
) -> Response:
    return _page(request, resources, viewer, await _settings(session, viewer))


@router.post(PATH)
async def save_sso(
    request: Request,
    viewer: FormViewer,
    resources: ResourcesDep,
    rt: SsoRuntimeDep,
    session: SessionDep,
    issuer: Annotated[str, Form(max_length=2000)] = "",
    client_id: Annotated[str, Form(max_length=255)] = "",
    client_secret: Annotated[str, Form(max_length=1000)] = "",
    domains: Annotated[str, Form(max_length=4000)] = "",
    default_role: Annotated[str, Form(max_length=20)] = "member",
    require_sso: Annotated[bool, Form()] = False,
    enabled: Annotated[bool, Form()] = False,
) -> Response:
    names = [d for d in re.split(r"[\s,;]+", domains) if d]
    try:
        _found, created = await sso.configure(
            session, viewer.ctx, rt, issuer=issuer, client_id=client_id,
            client_secret=client_secret or None, domains=names, default_role=default_role,
            require_sso=require_sso, enabled=enabled,
        )  # fmt: skip
    except DomainError as exc:
        rollback_only(session)  # the form is shown again; nothing of the refused save stays
        form = {
            "issuer": issuer,
            "client_id": client_id,
            "domains": domains,
            "default_role": default_role,
            "require_sso": require_sso,
            "enabled": enabled,
        }
        field = exc.param if exc.param in FIELDS else None
        return _page(
            request, resources, viewer, await _settings(session, viewer), form=form,
            errors={field: sentence(exc.message)} if field else None,
            error=None if field else sentence(exc.message), status=status_of(exc),
        )  # fmt: skip
    text = "Single sign-on is set up." if created else "Single sign-on is saved."
    return _back(request, resources, text)


@router.post(PATH + "/domains/verify")
async def verify_domains(
    request: Request, viewer: FormViewer, resources: ResourcesDep, session: SessionDep
) -> Response:
    """Look up each pending domain's TXT record now."""
    try:
        found = await sso.verify_domains(session, viewer.ctx)
    except DomainError as exc:
        rollback_only(session)
        return _back(request, resources, sentence(exc.message), "error")
    pending = [d.domain for d in found.domains if d.verified_at is None]
    if not pending:
        return _back(request, resources, "Every domain is verified.")
    text = (
        f"No matching TXT record found yet for {', '.join(pending)}. "
        "DNS changes can take a while to appear."
    )
    return _back(request, resources, text, "warning")


@router.post(PATH + "/test")
async def test_connection(
    request: Request,
    viewer: FormViewer,
    resources: ResourcesDep,
    rt: SsoRuntimeDep,
    session: SessionDep,
) -> Response:
    """htmx swaps in just the result; without script the whole page shows it."""
    report = await sso.test_connection(session, viewer.ctx, rt)
    if request.headers.get("hx-request"):
        return html_response(request, "pages/sso_test.html", {"report": report})
    return _page(request, resources, viewer, await _settings(session, viewer), report=report)
