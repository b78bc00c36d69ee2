"""`/console/plan`: the org's plan, choosing one through Stripe Checkout (subscription mode),
the checkout return pages, and the Stripe customer portal.

The same `domain.plans.service` as `/portal/v1/plan` does the work: who may choose (finance
and up), one subscription per org, the price from the server's catalog. The tier moves only
when Stripe's events arrive, so the success page waits for them.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from starlette.responses import RedirectResponse, Response

from config.settings import plan_catalog
from domain.plans import service as plans
from domain.plans.catalog import SELF_SERVE
from edge.billing import plan_urls, stripe_gateway
from edge.deps import ResourcesDep, SessionDep, public_base_url
from web.errors import PageRoute
from web.render import render
from web.services.plan import PlanPage, plan_page
from web.viewer import FormViewer, Viewer, page_viewer

router = APIRouter(route_class=PageRoute, include_in_schema=False)
PlanViewer = Annotated[Viewer, Depends(page_viewer("plan"))]
PLAN = "/console/plan"


def _tier_of(value: str) -> str | None:
    return value if value in SELF_SERVE else None


async def _view(viewer: Viewer, resources: ResourcesDep, session: SessionDep) -> PlanPage:
    settings = resources.settings
    return await plan_page(
        session,
        viewer.ctx,
        plan_catalog(settings),
        stripe_ready=stripe_gateway(settings) is not None,
        signup_grant_setting_micros=resources.identity.signup_grant_micros,
    )


@router.get(PLAN)
async def plan_index(
    request: Request, viewer: PlanViewer, resources: ResourcesDep, session: SessionDep
) -> Response:
    view = await _view(viewer, resources, session)
    return render(request, "pages/plan.html", {"view": view}, viewer=viewer)


@router.post(f"{PLAN}/checkout")
async def checkout(
    request: Request,
    viewer: FormViewer,
    resources: ResourcesDep,
    session: SessionDep,
    tier: Annotated[str, Form(max_length=40)],
) -> Response:
    """Start a subscription Checkout Session and send the browser on to Stripe's page."""
    settings = resources.settings
    base = public_base_url(request, resources)
    back = "?" + urlencode({"tier": tier}) if _tier_of(tier) else ""
    urls = plan_urls(
        settings,
        success_url=f"{base}{PLAN}/success{back}",
        cancel_url=f"{base}{PLAN}/cancel",
        portal_return_url=f"{base}{PLAN}",
    )
    url = await plans.start_checkout(
        session, stripe_gateway(settings), plan_catalog(settings), urls, viewer.ctx, tier
    )
    # Not a 303 to Stripe: `form-action 'self'` covers a form post's redirects too.
    context = {"url": url, "heading": "Continuing to checkout…"}
    return render(request, "pages/credits_redirect.html", context, viewer=viewer)


@router.post(f"{PLAN}/portal")
async def portal(
    request: Request, viewer: FormViewer, resources: ResourcesDep, session: SessionDep
) -> Response:
    """The Stripe customer portal: change or cancel the plan, update the card."""
    settings = resources.settings
    base = public_base_url(request, resources)
    here = f"{base}{PLAN}"
    urls = plan_urls(settings, success_url=here, cancel_url=here, portal_return_url=here)
    url = await plans.portal_url(session, stripe_gateway(settings), urls, viewer.ctx)
    context = {"url": url, "heading": "Opening the customer portal…"}
    return render(request, "pages/credits_redirect.html", context, viewer=viewer)


async def _status_context(
    viewer: Viewer, resources: ResourcesDep, session: SessionDep, tier: str
) -> dict[str, object]:
    view = await _view(viewer, resources, session)
    wanted = _tier_of(tier)
    poll = f"{PLAN}/success/status?" + urlencode({"tier": wanted or ""})
    return {"view": view, "wanted": wanted, "poll": poll}


@router.get(f"{PLAN}/success")
async def checkout_success(
    request: Request,
    viewer: PlanViewer,
    resources: ResourcesDep,
    session: SessionDep,
    tier: Annotated[str, Query(max_length=40)] = "",
) -> Response:
    context = await _status_context(viewer, resources, session, tier)
    context["outcome"] = "success"
    return render(request, "pages/plan_return.html", context, viewer=viewer)


@router.get(f"{PLAN}/success/status")
async def checkout_status(
    request: Request,
    viewer: PlanViewer,
    resources: ResourcesDep,
    session: SessionDep,
    tier: Annotated[str, Query(max_length=40)] = "",
) -> Response:
    """The htmx fragment the success page polls until the subscription is live."""
    context = await _status_context(viewer, resources, session, tier)
    return render(request, "pages/plan_status.html", context, viewer=viewer)


@router.get(f"{PLAN}/cancel")
async def checkout_cancel(request: Request, viewer: PlanViewer) -> Response:
    context = {"outcome": "cancel", "view": None, "wanted": None, "poll": None}
    return render(request, "pages/plan_return.html", context, viewer=viewer)


@router.get("/billing/plan/success")
async def billing_plan_success() -> Response:
    """Where `/portal/v1/plan/checkout` sends subscribers back by default: the console."""
    return RedirectResponse(f"{PLAN}/success", status_code=303)


@router.get("/billing/plan/cancel")
async def billing_plan_cancel() -> Response:
    return RedirectResponse(f"{PLAN}/cancel", status_code=303)
