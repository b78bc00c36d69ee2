"""`/console/members`: who belongs to the org, invitations, roles, departments and cost
centers, and removing people (owners and admins only)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import Response

from domain.enterprise import invites
from domain.enterprise import service as enterprise
from domain.errors import DomainError
from edge.deps import ResourcesDep, SessionDep, public_base_url
from web.errors import PageRoute
from web.forms import attempt, back, optional_id, refused
from web.render import render
from web.services.org_admin import ROLE_HELP, members_view
from web.viewer import Viewer, page_form_viewer, page_viewer

router = APIRouter(route_class=PageRoute, include_in_schema=False)
PATH = "/console/members"
MembersViewer = Annotated[Viewer, Depends(page_viewer("members"))]
MembersForm = Annotated[Viewer, Depends(page_form_viewer("members"))]
Choice = Annotated[str, Form(max_length=40)]


async def _page(request: Request, session: SessionDep, viewer: Viewer, **extra: Any) -> Response:
    view = await members_view(session, viewer.ctx)
    context = {"view": view, "role_help": ROLE_HELP, "issued": None, "invite_url": None, **extra}
    return render(request, "pages/members.html", context, viewer=viewer)


@router.get(PATH)
async def members(request: Request, viewer: MembersViewer, session: SessionDep) -> Response:
    return await _page(request, session, viewer)


@router.post(PATH + "/invites")
async def invite(
    request: Request,
    viewer: MembersForm,
    session: SessionDep,
    resources: ResourcesDep,
    email: Annotated[str, Form(max_length=320)] = "",
    role: Choice = "member",
    department_id: Choice = "",
    cost_center_id: Choice = "",
) -> Response:
    """The link is in this answer only (its token is stored as a digest)."""
    try:
        issued = await invites.create_invite(
            session,
            viewer.ctx,
            resources.identity.pepper,
            email=email,
            role=role,
            department_id=optional_id(department_id, "department_id"),
            cost_center_id=optional_id(cost_center_id, "cost_center_id"),
        )
    except DomainError as exc:
        return refused(request, session, PATH, exc)
    url = f"{public_base_url(request, resources)}/console/invites/{issued.token}"
    return await _page(request, session, viewer, issued=issued.invite, invite_url=url)


@router.post(PATH + "/invites/{invite_id}/revoke")
async def revoke(
    request: Request, invite_id: uuid.UUID, viewer: MembersForm, session: SessionDep
) -> Response:
    action = invites.revoke_invite(session, viewer.ctx, invite_id)
    return await attempt(
        request, session, PATH, "Invite revoked; its link no longer works.", action
    )


@router.post(PATH + "/{user_id}")
async def update(
    request: Request,
    user_id: uuid.UUID,
    viewer: MembersForm,
    session: SessionDep,
    role: Choice = "",
    department_id: Choice = "",
    cost_center_id: Choice = "",
) -> Response:
    try:
        changes = {
            "role": role,
            "department_id": optional_id(department_id, "department_id"),
            "cost_center_id": optional_id(cost_center_id, "cost_center_id"),
        }
        found = await enterprise.update_member(session, viewer.ctx, user_id, changes)
    except DomainError as exc:
        return refused(request, session, PATH, exc)
    return back(request, PATH, f"Saved {found.email}.")


@router.post(PATH + "/{user_id}/remove")
async def remove(
    request: Request, user_id: uuid.UUID, viewer: MembersForm, session: SessionDep
) -> Response:
    action = enterprise.remove_member(session, viewer.ctx, user_id)
    return await attempt(request, session, PATH, "Member removed.", action)
