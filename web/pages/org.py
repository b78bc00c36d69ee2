"""`/console/org`: the org's settings and its webhook signing secret (owners and admins).

The secret is shown only in the answer to "Reveal" or "Rotate", never on a plain visit, so
it does not sit on screen or in the browser's history; each reveal is audited.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import Response

from domain.callbacks import secrets
from domain.enterprise import service as enterprise
from edge.deps import ResourcesDep, SessionDep
from schema.identity import POWER_LEVELS
from schema.unit_of_work import after_commit
from web.errors import PageRoute
from web.forms import attempt
from web.render import render
from web.viewer import Viewer, page_form_viewer, page_viewer

router = APIRouter(route_class=PageRoute, include_in_schema=False)
PATH = "/console/org"
OrgViewer = Annotated[Viewer, Depends(page_viewer("org"))]
OrgForm = Annotated[Viewer, Depends(page_form_viewer("org"))]


async def _page(
    request: Request,
    session: SessionDep,
    viewer: Viewer,
    revealed: str | None = None,
    rotated: bool = False,
) -> Response:
    context: dict[str, Any] = {
        "org": enterprise.get_org(viewer.ctx),
        "power_levels": POWER_LEVELS,
        "secret": await secrets.status(session, viewer.ctx.org.id),
        "revealed": revealed,
        "rotated": rotated,
    }
    return render(request, "pages/org.html", context, viewer=viewer)


@router.get(PATH)
async def org_page(request: Request, viewer: OrgViewer, session: SessionDep) -> Response:
    return await _page(request, session, viewer)


@router.post(PATH)
async def save_org(
    request: Request,
    viewer: OrgForm,
    session: SessionDep,
    resources: ResourcesDep,
    name: Annotated[str, Form(max_length=200)] = "",
    power_level: Annotated[str, Form(max_length=20)] = "",
    retention_days: Annotated[str, Form(max_length=10)] = "",
    byok_fallback: Annotated[str | None, Form(max_length=10)] = None,
) -> Response:
    ctx = viewer.ctx
    try:
        days = int(retention_days)
    except ValueError:
        days = -1  # the service says what the range is
    changes = {
        "name": name,
        "power_level": power_level,
        "retention_days": days,
        "byok_fallback": byok_fallback is not None,
    }
    after_commit(session, lambda: resources.relay.forget_org(ctx.org.id))
    return await attempt(
        request, session, PATH, "Settings saved.", enterprise.update_org(session, ctx, changes)
    )


@router.post(PATH + "/webhook-secret/reveal")
async def reveal_secret(
    request: Request, viewer: OrgForm, session: SessionDep, resources: ResourcesDep
) -> Response:
    ctx = viewer.ctx
    info = await secrets.reveal(session, ctx.org.id, resources.secret_box, ctx.actor)
    return await _page(request, session, viewer, revealed=info.secret)


@router.post(PATH + "/webhook-secret/rotate")
async def rotate_secret(
    request: Request, viewer: OrgForm, session: SessionDep, resources: ResourcesDep
) -> Response:
    ctx = viewer.ctx
    secret = await secrets.rotate(session, ctx.org.id, resources.secret_box, ctx.actor)
    return await _page(request, session, viewer, revealed=secret, rotated=True)
