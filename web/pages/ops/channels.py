"""`/console/ops/channels`: upstream channels with their health; create, edit, disable, test.

Changes go through `domain.routing.channels` (validated, egress-checked and audited as for
`/admin/v1/channels`); the Test button makes the same one-token call as the admin API's.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from domain.errors import DomainError
from domain.relay.plan import DEFAULT_PROVIDER_URLS
from domain.routing import channels as channel_service
from domain.routing.probe import probe_channel
from edge.deps import ResourcesDep, SessionDep
from schema.unit_of_work import after_commit
from web.errors import PageRoute
from web.pages.ops.common import (
    actor_of,
    done,
    field_errors,
    form_fields,
    operator,
    operator_form,
    refused,
)
from web.render import html_response, render
from web.services.ops import channels as ops_channels
from web.viewer import Viewer

router = APIRouter(route_class=PageRoute, include_in_schema=False)

ChannelsViewer = Annotated[Viewer, operator("ops_channels")]
ChannelsForm = Annotated[Viewer, operator_form("ops_channels")]
HOME = "/console/ops/channels"
FIELDS = (
    "name", "provider", "base_url", "secret", "models", "model_mapping", "group", "priority",
    "weight", "types", "capabilities", "enabled",
)  # fmt: skip
NEW_CHANNEL = {"provider": "openai", "group": "default", "priority": "0", "weight": "1",
               "types": "chat", "enabled": "1"}  # fmt: skip


def _invalidate(session: SessionDep, resources: ResourcesDep) -> None:
    """The relay memoises channels; drop them once the change is committed."""
    after_commit(session, lambda: resources.relay.cache.invalidate())


async def _posted(request: Request) -> tuple[dict[str, str], list[str]]:
    form = await form_fields(request)
    types = [t for t in (await request.form()).getlist("types") if isinstance(t, str) and t]
    form["types"] = ",".join(types)
    return form, types


async def _list_page(
    request: Request,
    viewer: Viewer,
    session: SessionDep,
    new: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    context = {
        "rows": await ops_channels.channel_rows(session),
        "new": new or {"values": NEW_CHANNEL, "errors": {}, "open": False},
        "providers": ops_channels.PROVIDERS,
        "types": ops_channels.TYPES,
    }
    return render(request, "pages/ops/channels.html", context, viewer=viewer, status=status)


@router.get(HOME)
async def channels_page(request: Request, viewer: ChannelsViewer, session: SessionDep) -> Response:
    return await _list_page(request, viewer, session)


@router.post(HOME)
async def create_channel(
    request: Request, viewer: ChannelsForm, session: SessionDep, resources: ResourcesDep
) -> Response:
    form, types = await _posted(request)
    secret = form.pop("secret", "").strip() or None
    try:
        spec = ops_channels.channel_spec(form, types)
        channel = await channel_service.create_channel(
            session,
            actor_of(request, viewer),
            resources.secret_box,
            spec.model_dump(exclude={"secret"}),
            secret,
        )
    except DomainError as exc:
        refused(exc, session)
        new = {"values": form, "errors": field_errors(exc, FIELDS, "name"), "open": True}
        return await _list_page(request, viewer, session, new, 400)
    _invalidate(session, resources)
    return done(request, HOME, f"Channel {channel.name} created.")


async def _edit_page(
    request: Request,
    viewer: Viewer,
    session: SessionDep,
    channel_id: uuid.UUID,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
) -> Response:
    channel = await channel_service.get_channel(session, channel_id)
    context = {
        "channel": channel,
        "values": form or ops_channels.form_values(channel),
        "errors": errors or {},
        "providers": ops_channels.PROVIDERS,
        "types": ops_channels.TYPES,
    }
    status = 400 if errors else 200
    return render(request, "pages/ops/channel.html", context, viewer=viewer, status=status)


@router.get(HOME + "/{channel_id}")
async def edit_page(
    request: Request, channel_id: uuid.UUID, viewer: ChannelsViewer, session: SessionDep
) -> Response:
    return await _edit_page(request, viewer, session, channel_id)


@router.post(HOME + "/{channel_id}")
async def update_channel(
    request: Request,
    channel_id: uuid.UUID,
    viewer: ChannelsForm,
    session: SessionDep,
    resources: ResourcesDep,
) -> Response:
    form, types = await _posted(request)
    typed = form.pop("secret", "").strip()
    # Write-only: an empty field keeps the stored secret; only the box clears it.
    secret = "" if form.get("clear_secret") else (typed or None)
    try:
        changes = ops_channels.channel_spec(form, types).model_dump(exclude={"secret"})
        channel = await channel_service.update_channel(
            session, actor_of(request, viewer), resources.secret_box, channel_id, changes, secret
        )
    except DomainError as exc:
        refused(exc, session)
        errors = field_errors(exc, FIELDS, "name")
        return await _edit_page(request, viewer, session, channel_id, form, errors)
    _invalidate(session, resources)
    return done(request, HOME, f"Channel {channel.name} saved.")


@router.post(HOME + "/{channel_id}/enabled")
async def set_enabled(
    request: Request,
    channel_id: uuid.UUID,
    viewer: ChannelsForm,
    session: SessionDep,
    resources: ResourcesDep,
) -> Response:
    enabled = (await form_fields(request)).get("enabled") == "true"
    channel = await channel_service.update_channel(
        session, actor_of(request, viewer), resources.secret_box, channel_id,
        {"enabled": enabled}, None,
    )  # fmt: skip
    _invalidate(session, resources)
    return done(request, HOME, f"Channel {channel.name} {'enabled' if enabled else 'disabled'}.")


@router.post(HOME + "/{channel_id}/test")
async def test_channel(
    request: Request,
    channel_id: uuid.UUID,
    viewer: ChannelsForm,
    session: SessionDep,
    resources: ResourcesDep,
) -> Response:
    """A real one-token call. htmx swaps the result in beside the button; without
    JavaScript the form posts and the result comes back as the list page's message."""
    channel = await channel_service.get_channel(session, channel_id)
    urls = {**DEFAULT_PROVIDER_URLS, **resources.settings.provider_base_urls}
    result = await probe_channel(channel, resources.secret_box, resources.http, urls)
    if request.headers.get("hx-request"):
        context = {"result": result, "channel": channel}
        return html_response(request, "pages/ops/_probe.html", context)
    text = (
        f"Test of {channel.name}: answered in {result.latency_ms} ms"
        if result.ok
        else f"Test of {channel.name} failed after {result.latency_ms} ms: {result.error}"
    )
    return done(request, HOME, text, "success" if result.ok else "error")
