"""Who is calling: portal sessions, org context, operators, and platform API keys."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Header, Request

from domain.errors import InvalidRequest, PermissionDenied, Unauthenticated
from domain.identity import service as identity
from domain.identity.service import InvalidCredentials, OrgContext
from domain.keys.auth import INVALID, KeyPrincipal
from edge.deps import ResourcesDep, SessionDep, client_ip
from schema.identity import User


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def portal_user(request: Request, resources: ResourcesDep, session: SessionDep) -> User:
    token = bearer_token(request)
    if token is None:
        raise InvalidCredentials("log in and send `Authorization: Bearer <token>`")
    return await identity.authenticate_session(session, resources.identity, token)


PortalUser = Annotated[User, Depends(portal_user)]


async def org_context(
    request: Request,
    user: PortalUser,
    session: SessionDep,
    x_org_id: Annotated[str | None, Header(description="org to act in; default: personal")] = None,
) -> OrgContext:
    org_id = None
    if x_org_id:
        try:
            org_id = uuid.UUID(x_org_id)
        except ValueError:
            raise InvalidRequest("X-Org-Id must be a UUID", param="X-Org-Id") from None
    return await identity.org_context(session, user, org_id, client_ip(request))


OrgCtx = Annotated[OrgContext, Depends(org_context)]


async def operator(user: PortalUser) -> User:
    if not user.is_operator:
        raise PermissionDenied("operators only")
    return user


Operator = Annotated[User, Depends(operator)]


async def api_key_principal(request: Request, resources: ResourcesDep) -> KeyPrincipal:
    token = bearer_token(request) or request.headers.get("x-api-key")
    if token is None:
        raise Unauthenticated(INVALID)
    principal = await resources.key_auth.authenticate(token)
    request.state.api_key = principal
    return principal


ApiKeyAuth = Annotated[KeyPrincipal, Depends(api_key_principal)]
