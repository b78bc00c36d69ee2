"""`/console/departments` and `/console/cost-centers`: create, rename, archive and restore,
with the people in each (owners and admins). One set of routes serves both kinds, as in
`api/enterprise/structure.py`.

(No postponed annotations here: FastAPI reads each kind's viewer types, defined inside
`_routes`, from the handlers' annotations when the routes are built.)"""

import uuid
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import Response

from domain.enterprise import service as enterprise
from domain.enterprise import structure
from edge.deps import ResourcesDep, SessionDep
from schema.unit_of_work import after_commit
from web.errors import PageRoute
from web.forms import attempt
from web.render import render
from web.services.org_admin import entities
from web.viewer import Viewer, page_form_viewer, page_viewer

router = APIRouter(route_class=PageRoute, include_in_schema=False)
Label = Annotated[str, Form(max_length=200)]


@dataclass(frozen=True)
class Kind:
    key: str  # the service's kind
    page: str  # the nav page key
    path: str
    noun: str
    plural: str
    label: str  # what identifies one: a department's name, a cost center's code
    blurb: str


KINDS = (
    Kind("department", "departments", "/console/departments", "department", "Departments",
         "Name", "Teams that members belong to. A department's policy (allowed models, "
         "content logging) and budgets apply to every key its members make."),
    Kind("cost_center", "cost_centers", "/console/cost-centers", "cost center", "Cost centers",
         "Code", "What invoices are split by: each debit is charged to the cost center of the "
         "member whose key made it."),
)  # fmt: skip


def _routes(kind: Kind) -> None:
    reader = Annotated[Viewer, Depends(page_viewer(kind.page))]
    writer = Annotated[Viewer, Depends(page_form_viewer(kind.page))]

    async def listing(request: Request, viewer: reader, session: SessionDep) -> Response:
        people = await enterprise.list_members(session, viewer.ctx)
        items = await entities(session, viewer.ctx, kind.key, people)
        context = {
            "kind": kind,
            "active": [e for e in items if not e.archived],
            "archived": [e for e in items if e.archived],
        }
        return render(request, "pages/structure.html", context, viewer=viewer)

    async def create(
        request: Request,
        viewer: writer,
        session: SessionDep,
        label: Label = "",
        name: Label = "",
    ) -> Response:
        values: dict[str, Any] = {"name": label}
        if kind.key == "cost_center":
            values = {"code": label, "name": name or None}
        action = structure.create_entity(session, kind.key, viewer.ctx, values)
        return await attempt(request, session, kind.path, f"Created {label.strip()}.", action)

    async def rename(
        request: Request,
        entity_id: uuid.UUID,
        viewer: writer,
        session: SessionDep,
        label: Label = "",
        name: Label = "",
    ) -> Response:
        values: dict[str, Any] = {"name": label}
        if kind.key == "cost_center":
            values = {"code": label, "name": name or None}
        action = structure.update_entity(session, kind.key, viewer.ctx, entity_id, values)
        return await attempt(request, session, kind.path, "Saved.", action)

    def archiver(archived: bool) -> Any:
        async def handler(
            request: Request,
            entity_id: uuid.UUID,
            viewer: writer,
            session: SessionDep,
            resources: ResourcesDep,
        ) -> Response:
            ctx = viewer.ctx
            action = structure.set_archived(session, kind.key, ctx, entity_id, archived)
            after_commit(session, lambda: resources.relay.forget_org(ctx.org.id))
            done = f"{'Archived' if archived else 'Restored'} the {kind.noun}."
            return await attempt(request, session, kind.path, done, action)

        return handler

    router.add_api_route(kind.path, listing, methods=["GET"], name=f"{kind.page}_page")
    router.add_api_route(kind.path, create, methods=["POST"], name=f"create_{kind.key}_page")
    item = kind.path + "/{entity_id}"
    router.add_api_route(item, rename, methods=["POST"], name=f"rename_{kind.key}_page")
    for verb, flag in (("archive", True), ("restore", False)):
        router.add_api_route(
            f"{item}/{verb}", archiver(flag), methods=["POST"], name=f"{verb}_{kind.key}_page"
        )


for _kind in KINDS:
    _routes(_kind)
