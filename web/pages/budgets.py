"""`/console/budgets`: budget policies with this month's spend, and their alert events.

Limits are typed as exact decimal credits and stored as integer micro-credits. Every change
drops this replica's memo of the org's plan after commit, as the JSON API does.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import Response

from domain.budgets import service as budgets
from domain.errors import DomainError, InvalidField
from edge.deps import ResourcesDep, SessionDep
from schema.unit_of_work import after_commit
from web.errors import PageRoute
from web.forms import attempt, back, credits_to_micros, percentages, refused
from web.render import render
from web.services.budgets import SCOPE_LABELS, budgets_view
from web.viewer import Viewer, page_form_viewer, page_viewer

router = APIRouter(route_class=PageRoute, include_in_schema=False)
PATH = "/console/budgets"
BudgetsViewer = Annotated[Viewer, Depends(page_viewer("budgets"))]
BudgetsForm = Annotated[Viewer, Depends(page_form_viewer("budgets"))]
Short = Annotated[str, Form(max_length=200)]


def _target(value: str) -> tuple[str, uuid.UUID]:
    scope, _, raw = value.partition(":")
    if scope not in SCOPE_LABELS:
        raise InvalidField("choose what the budget applies to", param="target")
    try:
        return scope, uuid.UUID(raw)
    except ValueError:
        raise InvalidField("choose what the budget applies to", param="target") from None


def _forget(session: SessionDep, resources: ResourcesDep, viewer: Viewer) -> None:
    org_id = viewer.ctx.org.id
    after_commit(session, lambda: resources.relay.forget_org(org_id))


@router.get(PATH)
async def budgets_page(request: Request, viewer: BudgetsViewer, session: SessionDep) -> Response:
    view = await budgets_view(session, viewer.ctx)
    context = {"view": view, "scope_labels": SCOPE_LABELS}
    return render(request, "pages/budgets.html", context, viewer=viewer)


@router.post(PATH)
async def create(
    request: Request,
    viewer: BudgetsForm,
    session: SessionDep,
    resources: ResourcesDep,
    name: Short = "",
    target: Short = "",
    limit_credits: Short = "",
    mode: Short = "hard",
    alert_thresholds: Short = "",
) -> Response:
    try:
        scope, scope_id = _target(target)
        values: dict[str, Any] = {
            "name": name,
            "scope": scope,
            "scope_id": scope_id,
            "limit_micros": credits_to_micros(limit_credits, "limit"),
            "mode": mode,
            "alert_thresholds": percentages(alert_thresholds, "alert thresholds"),
        }
        await budgets.create_policy(session, viewer.ctx, values)
    except DomainError as exc:
        return refused(request, session, PATH, exc)
    _forget(session, resources, viewer)
    return back(request, PATH, f"Budget {name.strip()} created.")


@router.post(PATH + "/{policy_id}")
async def update(
    request: Request,
    policy_id: uuid.UUID,
    viewer: BudgetsForm,
    session: SessionDep,
    resources: ResourcesDep,
    limit_credits: Short = "",
    mode: Short = "hard",
    alert_thresholds: Short = "",
    enabled: Annotated[str | None, Form(max_length=10)] = None,
) -> Response:
    try:
        changes = {
            "limit_micros": credits_to_micros(limit_credits, "limit"),
            "mode": mode,
            "alert_thresholds": percentages(alert_thresholds, "alert thresholds"),
            "enabled": enabled is not None,
        }
        await budgets.update_policy(session, viewer.ctx, policy_id, changes)
    except DomainError as exc:
        return refused(request, session, PATH, exc)
    _forget(session, resources, viewer)
    return back(request, PATH, "Budget saved.")


@router.post(PATH + "/{policy_id}/delete")
async def delete(
    request: Request,
    policy_id: uuid.UUID,
    viewer: BudgetsForm,
    session: SessionDep,
    resources: ResourcesDep,
) -> Response:
    _forget(session, resources, viewer)
    action = budgets.delete_policy(session, viewer.ctx, policy_id)
    return await attempt(request, session, PATH, "Budget deleted.", action)
