"""Plug the console into the API app: page routers, `/static`, and HTML error pages."""

from __future__ import annotations

from fastapi import FastAPI

from web.assets import STATIC_PATH, VersionedStaticFiles
from web.errors import install_page_errors
from web.pages.audit import router as audit_router
from web.pages.auth import router as auth_router
from web.pages.budgets import router as budgets_router
from web.pages.byok import router as byok_router
from web.pages.credits import router as credits_router
from web.pages.guides import router as guides_router
from web.pages.home import router as home_router
from web.pages.invites import router as invites_router
from web.pages.invoices import router as invoices_router
from web.pages.keys import router as keys_router
from web.pages.members import router as members_router
from web.pages.models import router as models_router
from web.pages.ops import ROUTERS as OPS_ROUTERS
from web.pages.org import router as org_router
from web.pages.orgs import router as orgs_router
from web.pages.plan import router as plan_router
from web.pages.policies import router as policies_router
from web.pages.requests import router as requests_router
from web.pages.sso import router as sso_router
from web.pages.sso_sign_in import router as sso_sign_in_router
from web.pages.structure import router as structure_router
from web.pages.tasks import router as tasks_router
from web.pages.usage import router as usage_router
from web.render import Console

ROUTERS = (
    auth_router,
    sso_sign_in_router,
    home_router,
    orgs_router,
    members_router,
    keys_router,
    byok_router,
    models_router,
    guides_router,
    sso_router,
    *OPS_ROUTERS,
    credits_router,
    plan_router,
    usage_router,
    requests_router,
    tasks_router,
    invites_router,
    org_router,
    structure_router,
    budgets_router,
    policies_router,
    invoices_router,
    audit_router,
)


def install_console(app: FastAPI, *, env: str) -> None:
    """Call after the API's error handlers are installed (the console wraps them)."""
    console = Console.build(env=env)
    app.state.console = console
    install_page_errors(app)
    for router in ROUTERS:
        app.include_router(router)
    app.mount(STATIC_PATH, VersionedStaticFiles(console.assets), name="static")
