"""The org switcher: which of the viewer's orgs the console acts in."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from domain.errors import NotFound
from web.cookies import ORG, ORG_MAX_AGE_S
from web.errors import PageRoute
from web.render import console_of
from web.signed_out import Next, safe_next
from web.viewer import FormViewer

router = APIRouter(route_class=PageRoute, include_in_schema=False)


@router.post("/console/orgs/switch")
async def switch_org(
    request: Request,
    viewer: FormViewer,
    org_id: Annotated[uuid.UUID, Form()],
    next: Next = "/console",
) -> Response:
    if not any(m.org.id == org_id for m in viewer.orgs):
        raise NotFound("you are not a member of that organization")  # same for unknown ids
    response = RedirectResponse(safe_next(next), status_code=303)
    console_of(request).cookies.set(response, ORG, str(org_id), max_age=ORG_MAX_AGE_S)
    return response
