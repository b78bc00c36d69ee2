"""`/console/ops` (orgs and users) and one org's page, with manual credit grants."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Request
from starlette.responses import Response

from domain.crypto import random_hex
from domain.errors import DomainError
from domain.ledger.manual import grant
from edge.deps import SessionDep
from web.errors import PageRoute
from web.pages.ops.common import actor_of, done, field_errors, operator, operator_form, refused
from web.render import credits, render
from web.services.ops import orgs as ops_orgs
from web.viewer import Viewer

router = APIRouter(route_class=PageRoute, include_in_schema=False)

OrgsViewer = Annotated[Viewer, operator("ops")]
OrgsForm = Annotated[Viewer, operator_form("ops")]


@router.get("/console/ops")
async def orgs_and_users(
    request: Request, viewer: OrgsViewer, session: SessionDep, q: str = ""
) -> Response:
    result = await ops_orgs.search(session, q[:200])
    return render(request, "pages/ops/orgs.html", {"result": result}, viewer=viewer)


async def _org_page(
    request: Request,
    viewer: Viewer,
    session: SessionDep,
    org_id: uuid.UUID,
    form: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    view = await ops_orgs.org_view(session, org_id)
    form = form or {"kind": "adjustment", "amount": "", "reason": "", "errors": {}}
    form.setdefault("key", random_hex(16))  # one grant per form shown, however often sent
    context = {"view": view, "form": form}
    return render(request, "pages/ops/org.html", context, viewer=viewer, status=status)


@router.get("/console/ops/orgs/{org_id}")
async def org_page(
    request: Request, org_id: uuid.UUID, viewer: OrgsViewer, session: SessionDep
) -> Response:
    return await _org_page(request, viewer, session, org_id)


@router.post("/console/ops/orgs/{org_id}/credits")
async def grant_credits(
    request: Request,
    org_id: uuid.UUID,
    viewer: OrgsForm,
    session: SessionDep,
    kind: Annotated[Literal["adjustment", "bonus"], Form()],
    key: Annotated[str, Form(min_length=16, max_length=64)],
    amount: Annotated[str, Form(max_length=40)] = "",
    reason: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    """Through the same ledger service as `POST /admin/v1/orgs/{id}/credits`: the entry and
    its audit event commit together, and the form's key makes a resent form a no-op."""
    form: dict[str, Any] = {"kind": kind, "amount": amount, "reason": reason, "key": key}
    try:
        micros = ops_orgs.grant_amount(amount, kind)
        posting = await grant(
            session, actor_of(request, viewer), org_id, micros,
            kind=kind, reason=reason, key=f"console:{key}",
        )  # fmt: skip
    except DomainError as exc:
        refused(exc, session)
        form["errors"] = field_errors(exc, ("amount", "reason"), "amount")
        return await _org_page(request, viewer, session, org_id, form, 400)
    entry = posting.entry
    text = (
        "That grant was already made."
        if posting.replayed
        else f"{'Bonus' if kind == 'bonus' else 'Adjustment'} of {credits(entry.amount_micros)} "
        f"credits recorded. Balance: {credits(entry.balance_after_micros)}."
    )
    return done(request, f"/console/ops/orgs/{org_id}", text)
