"""Single sign-on for API clients: start at the org's identity provider, finish with a
portal session token. The console wraps the same service with a cookie and a redirect."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from domain.inputs import Text
from domain.sso import signin
from edge.deps import ResourcesDep, SessionDep, client_ip
from edge.sso import SsoRuntimeDep, callback_uri

router = APIRouter(prefix="/portal/v1/auth/sso", tags=["portal: auth"])


class StartIn(BaseModel):
    model_config = {"extra": "forbid"}

    email: Text = Field(max_length=320)
    redirect_uri: Text | None = Field(
        default=None,
        max_length=2000,
        description=(
            "where the provider sends the browser back; default: this API's callback. A "
            "client's own (https, or a loopback http listener) must be registered at the "
            "provider and must bring `code` and `state` to the callback itself."
        ),
    )


class StartOut(BaseModel):
    authorization_url: str = Field(description="send the user's browser here")
    expires_at: datetime = Field(description="finish the sign-in before this time")


class SignedInOut(BaseModel):
    token: str
    token_type: str = "bearer"  # noqa: S105  (the scheme name, not a secret)
    expires_at: datetime
    user_id: uuid.UUID
    email: str
    org_id: uuid.UUID
    role: str


@router.post("/start")
async def start(
    body: StartIn,
    request: Request,
    resources: ResourcesDep,
    rt: SsoRuntimeDep,
    session: SessionDep,
) -> StartOut:
    started = await signin.start(
        session, rt, email=body.email,
        callback_uri=callback_uri(request, resources), redirect_uri=body.redirect_uri,
    )  # fmt: skip
    return StartOut(authorization_url=started.authorization_url, expires_at=started.expires_at)


@router.get("/callback")
async def callback(
    request: Request,
    rt: SsoRuntimeDep,
    session: SessionDep,
    state: Annotated[Text, Query(max_length=200)],
    code: Annotated[Text | None, Query(max_length=4000)] = None,
    error: Annotated[Text | None, Query(max_length=200)] = None,
    error_description: Annotated[Text | None, Query(max_length=1000)] = None,
) -> SignedInOut:
    """Where the identity provider sends the browser back: returns the session token."""
    outcome = await signin.finish(
        session, rt, state=state, code=code, provider_error=error,
        provider_error_description=error_description, ip=client_ip(request),
    )  # fmt: skip
    return SignedInOut(
        token=outcome.session.token,
        expires_at=outcome.session.expires_at,
        user_id=outcome.user_id,
        email=outcome.email,
        org_id=outcome.org_id,
        role=outcome.role,
    )
