"""The org's callback signing secret, shown in full to admins so receivers can verify us.

Unlike provider keys this secret is ours to show: a receiver needs the plaintext to check
signatures, so it is returned on every read, to admins and owners only, and never cached.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Response
from pydantic import BaseModel

from api.auth import OrgCtx
from domain.callbacks import secrets
from edge.deps import ResourcesDep, SessionDep

router = APIRouter(prefix="/portal/v1/webhook-secret", tags=["portal: webhook secret"])


class WebhookSecretOut(BaseModel):
    secret: str
    created_at: datetime | None
    rotated_at: datetime | None

    @classmethod
    def of(cls, info: secrets.WebhookSecretInfo) -> WebhookSecretOut:
        return cls(secret=info.secret, created_at=info.created_at, rotated_at=info.rotated_at)


def _no_store(response: Response) -> None:
    response.headers["cache-control"] = "no-store"


@router.get("")
async def get_secret(
    ctx: OrgCtx, response: Response, resources: ResourcesDep, session: SessionDep
) -> WebhookSecretOut:
    ctx.require("admin")
    info = await secrets.load_or_create(session, ctx.org.id, resources.secret_box, actor=ctx.actor)
    _no_store(response)
    return WebhookSecretOut.of(info)


@router.post("")
async def rotate_secret(
    ctx: OrgCtx, response: Response, resources: ResourcesDep, session: SessionDep
) -> WebhookSecretOut:
    ctx.require("admin")
    await secrets.rotate(session, ctx.org.id, resources.secret_box, ctx.actor)
    info = await secrets.load_or_create(session, ctx.org.id, resources.secret_box, actor=ctx.actor)
    _no_store(response)
    return WebhookSecretOut.of(info)
