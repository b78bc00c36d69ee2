"""The FastAPI application: wiring only. Routers live in their surface packages."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send
from temporalio.client import Client

from api.admin.channels import router as admin_channels_router
from api.admin.credits import router as admin_credits_router
from api.admin.models import router as admin_models_router
from api.admin.orgs import router as admin_orgs_router
from api.admin.tiers import router as admin_tiers_router
from api.admin.users import router as admin_users_router
from api.docs import install_docs
from api.enterprise.audit import router as enterprise_audit_router
from api.enterprise.budgets import router as enterprise_budgets_router
from api.enterprise.invites import router as enterprise_invites_router
from api.enterprise.invoices import router as enterprise_invoices_router
from api.enterprise.members import router as enterprise_members_router
from api.enterprise.org import router as enterprise_org_router
from api.enterprise.sso import router as enterprise_sso_router
from api.enterprise.structure import cost_centers as enterprise_cost_centers_router
from api.enterprise.structure import departments as enterprise_departments_router
from api.enterprise.structure import policies as enterprise_policies_router
from api.errors import install_error_handlers, install_outage_handlers
from api.health import router as health_router
from api.metrics import router as metrics_router
from api.metrics_registry import GC_PAUSES
from api.middleware import EdgeMiddleware
from api.ops.requests import router as ops_router
from api.portal.api_keys import router as portal_keys_router
from api.portal.auth import router as portal_auth_router
from api.portal.byok import router as portal_byok_router
from api.portal.catalog import router as portal_catalog_router
from api.portal.checkout import router as portal_checkout_router
from api.portal.credits import router as portal_credits_router
from api.portal.plan import router as portal_plan_router
from api.portal.sso import router as portal_sso_router
from api.portal.usage import router as portal_usage_router
from api.portal.webhook_secret import router as portal_webhook_secret_router
from api.relay.chat import router as relay_chat_router
from api.relay.chat import serve_chat
from api.relay.files import router as relay_files_router
from api.relay.media import router as relay_media_router
from api.relay.messages import router as relay_messages_router
from api.relay.surfaces import router as relay_surfaces_router
from api.relay.tasks import router as relay_tasks_router
from api.webhooks.stripe import router as stripe_webhook_router
from config.gc_tuning import tune_for_serving
from config.runtime import Resources, open_resources
from config.settings import Settings, get_settings
from domain.identity.bootstrap import bootstrap_admin
from schema.migrate import ensure_migrated
from web.mount import install_console

log = logging.getLogger("oxinf.api")
CHAT_PATH = "/v1/chat/completions"


class OxinfApp(FastAPI):
    """FastAPI, with the relay's hottest route answered before the framework's stack.

    Every other request, and chat under a mount prefix, goes through FastAPI as usual;
    the chat route there stays for the OpenAPI schema and behaves the same."""

    fast_chat: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.fast_chat is not None
            and scope["type"] == "http"
            and scope["path"] == CHAT_PATH
            and scope["method"] == "POST"
        ):
            scope["app"] = self  # what Starlette sets; `request.app` reads it
            await self.fast_chat(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(
    settings: Settings | None = None,
    *,
    resources: Resources | None = None,
    temporal_client: Client | None = None,
) -> FastAPI:
    """Build the app; tests pass `resources` to share one pool, production passes nothing."""
    settings = settings or (resources.settings if resources else get_settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = resources is None
        res = resources or open_resources(settings, temporal_client=temporal_client)
        try:
            await ensure_migrated(res.engine)
            admin_password = settings.admin_password
            await bootstrap_admin(
                res.sessions,
                res.identity,
                settings.admin_email,
                admin_password.get_secret_value() if admin_password else None,
            )
            app.state.resources = res
            if owned:  # an app that opened its own resources serves (tests pass theirs)
                tune_for_serving(settings.api_gc_gen0_threshold)
            GC_PAUSES.install()  # after start-up's own collection: pauses while serving
            yield
        finally:
            if owned:
                await res.aclose()

    app = OxinfApp(
        title="0xinf",
        version="0.1.0",
        description="LLM API gateway with an exact integer credit ledger.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    install_docs(app)
    if resources is not None:
        app.state.resources = resources
    install_error_handlers(app)
    install_outage_handlers(app)
    install_console(app, env=settings.env)  # pages at / and /console, assets at /static
    for router in (
        health_router,
        relay_chat_router,
        relay_surfaces_router,
        relay_messages_router,
        relay_tasks_router,
        relay_media_router,
        relay_files_router,
        portal_auth_router,
        portal_sso_router,
        portal_keys_router,
        portal_byok_router,
        portal_credits_router,
        portal_checkout_router,
        portal_plan_router,
        stripe_webhook_router,
        portal_webhook_secret_router,
        enterprise_audit_router,
        enterprise_org_router,
        enterprise_members_router,
        enterprise_invites_router,
        enterprise_invoices_router,
        enterprise_departments_router,
        enterprise_cost_centers_router,
        enterprise_policies_router,
        enterprise_budgets_router,
        enterprise_sso_router,
        admin_orgs_router,
        admin_users_router,
        admin_tiers_router,
        admin_credits_router,
        admin_models_router,
        admin_channels_router,
        portal_catalog_router,
        portal_usage_router,
        ops_router,
        metrics_router,
    ):
        app.include_router(router)
    # The edge middleware also feeds /metrics, so 413s and sanitized 500s are counted.
    app.add_middleware(EdgeMiddleware, max_body_bytes=settings.max_body_bytes)
    app.fast_chat = EdgeMiddleware(serve_chat, max_body_bytes=settings.max_body_bytes)
    return app
