"""`/console/credits`: the credit dashboard, buying credits through Stripe Checkout, the
checkout return pages and the auto-recharge settings."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from starlette.responses import RedirectResponse, Response

from domain.errors import InvalidField, InvalidRequest
from domain.payments import service as payments
from domain.payments.models import PaymentRecord
from domain.pricing.cost import parse_credits
from edge.billing import checkout_config, stripe_gateway
from edge.deps import ResourcesDep, SessionDep, public_base_url
from schema.unit_of_work import after_commit, rollback_only
from web.errors import PageRoute
from web.flash import Level, set_flash
from web.render import console_of, render
from web.services.credits import KIND_LABELS, credits_view
from web.viewer import FormViewer, Viewer, page_viewer

router = APIRouter(route_class=PageRoute, include_in_schema=False)
CreditsViewer = Annotated[Viewer, Depends(page_viewer("credits"))]
CREDITS = "/console/credits"


def _redirect_with(request: Request, resources: ResourcesDep, text: str, level: Level) -> Response:
    response = RedirectResponse(CREDITS, status_code=303)
    set_flash(response, console_of(request).cookies, resources.identity.pepper, text, level)
    return response


async def _payment(session: SessionDep, viewer: Viewer, session_id: str) -> PaymentRecord | None:
    if not session_id:
        return None
    return await payments.checkout_payment(session, viewer.ctx, session_id)


@router.get(CREDITS)
async def credits_page(
    request: Request,
    viewer: CreditsViewer,
    resources: ResourcesDep,
    session: SessionDep,
    cursor: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    settings = resources.settings
    view = await credits_view(
        session,
        viewer.ctx,
        allocations=settings.tier_allocations,
        packages=settings.credit_packages,
        stripe_ready=stripe_gateway(settings) is not None,
        cursor=cursor or None,
    )
    context = {"view": view, "kinds": KIND_LABELS, "cursor": cursor}
    return render(request, "pages/credits.html", context, viewer=viewer)


@router.post(f"{CREDITS}/checkout")
async def checkout(
    request: Request,
    viewer: FormViewer,
    resources: ResourcesDep,
    package_id: Annotated[str, Form(max_length=60)],
    save_card: Annotated[bool, Form()] = False,
) -> Response:
    """Start a Checkout Session and send the browser on to Stripe's page."""
    settings = resources.settings
    base = public_base_url(request, resources)
    config = checkout_config(
        settings,
        success_url=f"{base}{CREDITS}/success?session_id={{CHECKOUT_SESSION_ID}}",
        cancel_url=f"{base}{CREDITS}/cancel",
    )
    started = await payments.start_checkout(
        resources.sessions,
        stripe_gateway(settings),
        config,
        viewer.ctx,
        package_id,
        save_payment_method=save_card,
    )
    # Not a 303 to Stripe: `form-action 'self'` covers a form post's redirects too.
    return render(request, "pages/credits_redirect.html", {"url": started.url}, viewer=viewer)


async def _status_context(session: SessionDep, viewer: Viewer, session_id: str) -> dict[str, Any]:
    """The checkout's payment as far as the webhook got, and where the page polls for more."""
    poll = f"{CREDITS}/success/status?" + urlencode({"session_id": session_id})
    return {"payment": await _payment(session, viewer, session_id), "poll": poll}


@router.get(f"{CREDITS}/success")
async def checkout_success(
    request: Request,
    viewer: CreditsViewer,
    session: SessionDep,
    session_id: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    context = {**await _status_context(session, viewer, session_id), "outcome": "success"}
    return render(request, "pages/credits_return.html", context, viewer=viewer)


@router.get(f"{CREDITS}/success/status")
async def checkout_status(
    request: Request,
    viewer: CreditsViewer,
    session: SessionDep,
    session_id: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    """The htmx fragment the success page polls until the payment is credited."""
    context = await _status_context(session, viewer, session_id)
    return render(request, "pages/credits_status.html", context, viewer=viewer)


@router.get(f"{CREDITS}/cancel")
async def checkout_cancel(request: Request, viewer: CreditsViewer) -> Response:
    context = {"payment": None, "outcome": "cancel", "poll": None}
    return render(request, "pages/credits_return.html", context, viewer=viewer)


@router.get("/billing/success")
async def billing_success(session_id: Annotated[str, Query(max_length=200)] = "") -> Response:
    """Where `/portal/v1/credits/checkout` sends buyers back by default: the console page."""
    query = "?" + urlencode({"session_id": session_id}) if session_id else ""
    return RedirectResponse(f"{CREDITS}/success{query}", status_code=303)


@router.get("/billing/cancel")
async def billing_cancel() -> Response:
    return RedirectResponse(f"{CREDITS}/cancel", status_code=303)


@router.post(f"{CREDITS}/auto-recharge")
async def auto_recharge(
    request: Request,
    viewer: FormViewer,
    resources: ResourcesDep,
    session: SessionDep,
    enabled: Annotated[bool, Form()] = False,
    threshold: Annotated[str, Form(max_length=40)] = "",
    package_id: Annotated[str, Form(max_length=60)] = "",
) -> Response:
    try:
        threshold_micros = parse_credits(threshold) if threshold.strip() else None
        if threshold_micros is not None and threshold_micros < 0:
            raise InvalidField("threshold must not be negative", param="threshold")
        await payments.set_auto_recharge(
            session,
            viewer.ctx,
            resources.settings.credit_packages,
            enabled=enabled,
            threshold_micros=threshold_micros,
            package_id=package_id or None,
            payment_method_id=None,
        )
    except InvalidRequest as exc:  # InvalidField included: say why, on the page it came from
        rollback_only(session)
        return _redirect_with(
            request, resources, f"Auto-recharge not saved: {exc.message}.", "error"
        )
    after_commit(session, lambda: resources.auto_recharge.forget(viewer.ctx.org.id))
    text = "Auto-recharge is on." if enabled else "Auto-recharge is off."
    return _redirect_with(request, resources, text, "success")
