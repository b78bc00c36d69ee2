"""The BYOK section of `/console/keys`: add, enable, disable and delete the org's provider
keys, and its "fall back to platform keys" switch (owners and admins; the services refuse
anyone else, and the page shows them no buttons).

A provider key goes one way only: in through this form, encrypted by the service, and out
again only as its masked hint. A form shown again after a mistake never echoes the key.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from starlette.responses import Response

from domain.byok import service as byok
from domain.enterprise import service as enterprise
from domain.errors import DomainError
from edge.deps import ResourcesDep, SessionDep
from schema.unit_of_work import after_commit, rollback_only
from web.errors import PageRoute
from web.pages.keys import KEYS_PATH, KeysForm, back_to_keys, keys_page
from web.services.keys import PROVIDER_NAMES, field_errors

router = APIRouter(route_class=PageRoute, include_in_schema=False)

BYOK_PATH = KEYS_PATH + "/byok"
BYOK_FIELDS = ("provider", "api_key", "label", "base_url")
ProviderName = Annotated[str, Form(max_length=40)]


def provider_name(provider: str) -> str:
    return PROVIDER_NAMES.get(provider, provider)


@router.post(BYOK_PATH)
async def add_provider_key(
    request: Request,
    viewer: KeysForm,
    resources: ResourcesDep,
    session: SessionDep,
    provider: ProviderName = "",
    api_key: Annotated[str, Form(max_length=1000)] = "",
    label: Annotated[str, Form(max_length=200)] = "",
    base_url: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    try:
        await byok.put_key(
            session, viewer.ctx, resources.secret_box,
            provider=provider, api_key=api_key, label=label or None,
            base_url=base_url.strip() or None, egress=resources.settings.tenant_egress,
        )  # fmt: skip
    except DomainError as exc:
        if exc.code == "permission_denied":
            raise
        rollback_only(session)
        values = {"provider": provider, "label": label, "base_url": base_url}  # never the key
        return await keys_page(
            request, viewer, session, status=400,
            byok_values=values, byok_errors=field_errors(exc, BYOK_FIELDS),
            open_dialog="byok-dialog",
        )  # fmt: skip
    org_id = viewer.ctx.org.id
    after_commit(session, lambda: resources.relay.forget_org(org_id))
    return back_to_keys(request, f"Saved your {provider_name(provider)} key.")


@router.post(BYOK_PATH + "/{provider}/enabled")
async def set_provider_enabled(
    request: Request,
    provider: str,
    viewer: KeysForm,
    resources: ResourcesDep,
    session: SessionDep,
    enabled: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    on = enabled == "true"
    await byok.set_enabled(session, viewer.ctx, provider, on)
    org_id = viewer.ctx.org.id
    after_commit(session, lambda: resources.relay.forget_org(org_id))
    state = "enabled" if on else "disabled"
    return back_to_keys(request, f"Your {provider_name(provider)} key is {state}.")


@router.post(BYOK_PATH + "/{provider}/delete")
async def delete_provider_key(
    request: Request,
    provider: str,
    viewer: KeysForm,
    resources: ResourcesDep,
    session: SessionDep,
) -> Response:
    await byok.delete_key(session, viewer.ctx, provider)
    org_id = viewer.ctx.org.id
    after_commit(session, lambda: resources.relay.forget_org(org_id))
    return back_to_keys(request, f"Deleted your {provider_name(provider)} key.")


@router.post(KEYS_PATH + "/fallback")
async def set_fallback(
    request: Request,
    viewer: KeysForm,
    resources: ResourcesDep,
    session: SessionDep,
    byok_fallback: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    on = byok_fallback == "true"
    await enterprise.update_org(session, viewer.ctx, {"byok_fallback": on})
    org_id = viewer.ctx.org.id
    after_commit(session, lambda: resources.relay.forget_org(org_id))
    text = (
        "Calls fall back to platform keys (and spend credits) when your provider key fails."
        if on
        else "Calls with a provider key no longer fall back to platform keys."
    )
    return back_to_keys(request, text)
