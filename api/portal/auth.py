"""Portal sign-up, login and logout."""

from __future__ import annotations

import uuid
from datetime import datetime

from fastapi import APIRouter, Request, status
from pydantic import BaseModel, Field

from api.auth import PortalUser, bearer_token
from domain.identity import service as identity
from domain.inputs import Text
from edge.deps import ResourcesDep, SessionDep, client_ip

router = APIRouter(prefix="/portal/v1", tags=["portal: auth"])


class Credentials(BaseModel):
    email: Text = Field(max_length=320)
    password: Text = Field(max_length=1024)


class SignupOut(BaseModel):
    id: uuid.UUID
    email: str
    org_id: uuid.UUID


class LoginOut(BaseModel):
    token: str
    token_type: str = "bearer"  # noqa: S105  (the scheme name, not a secret)
    expires_at: datetime


class OrgOut(BaseModel):
    id: uuid.UUID
    name: str
    role: str
    personal: bool
    tier: str


class MeOut(BaseModel):
    id: uuid.UUID
    email: str
    is_operator: bool
    orgs: list[OrgOut]


@router.post("/auth/signup", status_code=status.HTTP_201_CREATED)
async def signup(body: Credentials, resources: ResourcesDep, session: SessionDep) -> SignupOut:
    user = await identity.create_user(session, resources.identity, body.email, body.password)
    orgs = await identity.memberships(session, user.id)
    return SignupOut(id=user.id, email=user.email, org_id=orgs[0].org.id)


@router.post("/auth/login")
async def login(
    body: Credentials, request: Request, resources: ResourcesDep, session: SessionDep
) -> LoginOut:
    issued = await identity.login(
        session, resources.identity, body.email, body.password, client_ip(request)
    )
    return LoginOut(token=issued.token, expires_at=issued.expires_at)


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(
    request: Request, _: PortalUser, resources: ResourcesDep, session: SessionDep
) -> None:
    token = bearer_token(request)
    assert token is not None  # PortalUser already required it
    await identity.logout(session, resources.identity, token)


@router.get("/me")
async def me(user: PortalUser, session: SessionDep) -> MeOut:
    orgs = await identity.memberships(session, user.id)
    return MeOut(
        id=user.id,
        email=user.email,
        is_operator=user.is_operator,
        orgs=[
            OrgOut(
                id=m.org.id, name=m.org.name, role=m.role, personal=m.org.personal, tier=m.org.tier
            )
            for m in orgs
        ],
    )
