"""`/console/keys`: platform API keys (generate, edit limits, revoke).

A new key's full text exists only in the answer to the request that made it. The generate
dialog posts with htmx and shows that answer inside the dialog, so the page's own address
never changes and reloading it (a GET) can only ever show the key's prefix. Without
JavaScript the form posts normally and the answer is the whole page with the key in it,
still never stored anywhere to be shown again.
"""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import RedirectResponse, Response

from domain.errors import DomainError
from domain.keys import service as keys
from edge.deps import ResourcesDep, SessionDep, public_base_url
from edge.portal.keys import KeyOut
from schema.unit_of_work import after_commit, rollback_only
from web import csrf
from web.errors import PageRoute
from web.flash import Level, set_flash
from web.render import console_of, pepper_of, render
from web.services.keys import (
    EXPIRY_CHOICES,
    PROVIDER_NAMES,
    PROVIDERS,
    SCOPE_LABELS,
    Created,
    FormInvalid,
    KeyFormValues,
    create_key,
    field_errors,
    keys_view,
    read_key_form,
)
from web.viewer import Viewer, page_viewer

router = APIRouter(route_class=PageRoute, include_in_schema=False)

KEYS_PATH = "/console/keys"
OPENABLE = re.compile(r"generate-dialog|byok-dialog|revoke-[0-9a-f-]{36}|delete-[a-z_]{1,40}")
KEY_FIELDS = ("name", "expires_in", "scopes", "model_allowlist", "rpm_limit", "budget")
KeysViewer = Annotated[Viewer, Depends(page_viewer("keys"))]


async def keys_viewer_form(request: Request, viewer: KeysViewer) -> Viewer:
    """A state-changing request on this page: allowed to see it, and its CSRF token checks."""
    await csrf.require(request, viewer.csrf)
    return viewer


KeysForm = Annotated[Viewer, Depends(keys_viewer_form)]


def form_context(**extra: Any) -> dict[str, Any]:
    """What the key and provider forms need besides their values."""
    return {
        "scope_labels": SCOPE_LABELS,
        "expiry_choices": EXPIRY_CHOICES,
        "providers": PROVIDERS,
        "provider_labels": PROVIDER_NAMES,
        **extra,
    }


async def keys_page(
    request: Request,
    viewer: Viewer,
    session: AsyncSession,
    *,
    status: int = 200,
    **context: Any,
) -> Response:
    """The whole page; `context` may open a dialog (a form with errors, or a new key)."""
    page = form_context(
        view=await keys_view(session, viewer.ctx),
        generate=KeyFormValues(),
        generate_errors={},
        created=None,
        byok_values={},
        byok_errors={},
        open_dialog=None,
    )
    page.update(context)
    return render(request, "pages/keys.html", page, viewer=viewer, status=status)


def back_to_keys(request: Request, text: str, level: Level = "success") -> Response:
    response = RedirectResponse(KEYS_PATH, status_code=303)
    set_flash(response, console_of(request).cookies, pepper_of(request), text, level)
    return response


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


@router.get(KEYS_PATH)
async def keys_index(
    request: Request,
    viewer: KeysViewer,
    session: SessionDep,
    dialog: Annotated[str | None, Query(alias="open", max_length=60)] = None,
) -> Response:
    """`?open=<dialog id>` opens that dialog: the openers' address for visitors without JS,
    and a link other pages use (the quickstart's "Generate a key")."""
    wanted = dialog if dialog and OPENABLE.fullmatch(dialog) else None
    return await keys_page(request, viewer, session, open_dialog=wanted)


@router.post(KEYS_PATH)
async def generate_key(
    request: Request, viewer: KeysForm, resources: ResourcesDep, session: SessionDep
) -> Response:
    try:
        args, values = read_key_form(await request.form(), creating=True)
        created: Created = await create_key(
            session,
            viewer.ctx,
            resources.identity.pepper,
            public_base_url(request, resources),
            args,
        )
    except FormInvalid as exc:
        return await _generate_failed(request, viewer, session, exc.errors, exc.values)
    except DomainError as exc:
        errors = field_errors(exc, KEY_FIELDS)
        return await _generate_failed(request, viewer, session, errors, values)
    if is_htmx(request):
        return render(request, "keys/created.html", {"created": created}, viewer=viewer)
    return await keys_page(request, viewer, session, created=created, open_dialog="created-dialog")


async def _generate_failed(
    request: Request,
    viewer: Viewer,
    session: AsyncSession,
    errors: dict[str, str],
    values: KeyFormValues,
) -> Response:
    rollback_only(session)
    if is_htmx(request):
        # 200 so htmx swaps the form with its messages into the open dialog.
        context = form_context(generate=values, generate_errors=errors)
        return render(request, "keys/generate_form.html", context, viewer=viewer)
    return await keys_page(
        request, viewer, session, status=400,
        generate=values, generate_errors=errors, open_dialog="generate-dialog",
    )  # fmt: skip


async def _own_key(session: AsyncSession, viewer: Viewer, key_id: uuid.UUID) -> KeyOut:
    return KeyOut.of(await keys.get_key(session, viewer.ctx, key_id))


@router.get(KEYS_PATH + "/{key_id}/edit")
async def edit_key_page(
    request: Request, key_id: uuid.UUID, viewer: KeysViewer, session: SessionDep
) -> Response:
    key = await _own_key(session, viewer, key_id)
    context = form_context(key=key, values=KeyFormValues.of(key), errors={})
    return render(request, "keys/edit.html", context, viewer=viewer)


@router.post(KEYS_PATH + "/{key_id}/edit")
async def edit_key(
    request: Request,
    key_id: uuid.UUID,
    viewer: KeysForm,
    resources: ResourcesDep,
    session: SessionDep,
) -> Response:
    key = await _own_key(session, viewer, key_id)
    try:
        args, values = read_key_form(await request.form(), creating=False)
    except FormInvalid as exc:
        context = form_context(key=key, values=exc.values, errors=exc.errors)
        return render(request, "keys/edit.html", context, viewer=viewer, status=400)
    try:
        await keys.update_key(session, viewer.ctx, key_id, args)
    except DomainError as exc:
        rollback_only(session)
        context = form_context(key=key, values=values, errors=field_errors(exc, KEY_FIELDS))
        return render(request, "keys/edit.html", context, viewer=viewer, status=400)
    after_commit(session, lambda: resources.key_auth.invalidate(key_id))
    return back_to_keys(request, f"Saved the limits of “{values.name}”.")


@router.post(KEYS_PATH + "/{key_id}/revoke")
async def revoke_key(
    request: Request,
    key_id: uuid.UUID,
    viewer: KeysForm,
    resources: ResourcesDep,
    session: SessionDep,
) -> Response:
    key = await keys.revoke_key(session, viewer.ctx, key_id)
    after_commit(session, lambda: resources.key_auth.invalidate(key_id))
    return back_to_keys(request, f"Revoked “{key.name}”. Calls with it now get 401.")
