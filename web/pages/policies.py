"""`/console/policies`: each department's model allowlist and content-logging rule, set
through `domain.enterprise.structure.set_policy` (as `/enterprise/v1/policies` is)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import Response

from domain.enterprise import structure
from domain.pricing import service as catalog
from edge.deps import ResourcesDep, SessionDep
from schema.unit_of_work import after_commit
from web.errors import PageRoute
from web.forms import attempt
from web.render import render
from web.viewer import Viewer, page_form_viewer, page_viewer

router = APIRouter(route_class=PageRoute, include_in_schema=False)
PATH = "/console/policies"
PoliciesViewer = Annotated[Viewer, Depends(page_viewer("policies"))]
PoliciesForm = Annotated[Viewer, Depends(page_form_viewer("policies"))]
LOGGING = {
    "key": "Each key decides (its own content-logging setting)",
    "disabled": "Never store prompts and answers",
    "enabled": "Always store prompts and answers",
}


@router.get(PATH)
async def policies_page(request: Request, viewer: PoliciesViewer, session: SessionDep) -> Response:
    departments = [
        d for d in await structure.list_entities(session, "department", viewer.ctx)
        if d["archived_at"] is None
    ]  # fmt: skip
    models = [e.model.name for e in await catalog.list_models(session, enabled_only=False)]
    context = {"departments": departments, "models": models, "logging": LOGGING}
    return render(request, "pages/policies.html", context, viewer=viewer)


@router.post(PATH + "/{department_id}")
async def set_policy(
    request: Request,
    department_id: uuid.UUID,
    viewer: PoliciesForm,
    session: SessionDep,
    resources: ResourcesDep,
    models_scope: Annotated[str, Form(max_length=10)] = "all",
    models: Annotated[list[str], Form(max_length=structure.MAX_ALLOWLIST)] = [],  # noqa: B006
    content_logging: Annotated[str, Form(max_length=20)] = "key",
) -> Response:
    """`models_scope` "all" lifts the allowlist; "list" allows exactly the ticked models
    (none ticked blocks every model)."""
    changes = {
        "model_allowlist": None if models_scope == "all" else models,
        "content_logging": content_logging,
    }
    org_id = viewer.ctx.org.id
    after_commit(session, lambda: resources.relay.forget_org(org_id))
    action = structure.set_policy(session, viewer.ctx, department_id, changes)
    return await attempt(request, session, PATH, "Policy saved.", action)
