"""The org's single sign-on configuration (owners and admins): the client secret is
write-only, domains are proved with a DNS TXT record, "test" checks the provider."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Request, status
from pydantic import BaseModel, Field

from api.auth import OrgCtx
from config.runtime import Resources
from domain.inputs import Text
from domain.sso import configuration as sso
from domain.sso.domains import MAX_DOMAINS, record_name, record_value
from edge.deps import ResourcesDep, SessionDep
from edge.sso import CONSOLE_CALLBACK_PATH, SsoRuntimeDep, callback_uri

router = APIRouter(prefix="/enterprise/v1/sso", tags=["enterprise: single sign-on"])


class SsoIn(BaseModel):
    model_config = {"extra": "forbid"}

    issuer: Text = Field(
        max_length=2000, description="the provider's issuer URL (discovery is fetched from it)"
    )
    client_id: Text = Field(min_length=1, max_length=255)
    client_secret: Text | None = Field(
        default=None,
        min_length=1,
        max_length=1000,
        description="write-only; required the first time, omit it to keep the stored one",
    )
    domains: list[Text] = Field(
        min_length=1,
        max_length=MAX_DOMAINS,
        description="email domains whose users sign in here; each must be verified by DNS",
    )
    default_role: Literal["admin", "finance", "member"] = Field(
        default="member", description="role of users provisioned on their first sign-in"
    )
    require_sso: bool = Field(
        default=False, description="refuse password sign-in for addresses in verified domains"
    )
    enabled: bool = True


class DomainOut(BaseModel):
    domain: str
    verified: bool
    verified_at: datetime | None
    txt_record_name: str = Field(description="publish a TXT record here...")
    txt_record_value: str = Field(description="...with this value, then call domains/verify")


class SsoOut(BaseModel):
    issuer: str
    client_id: str
    client_secret_hint: str = Field(description="the stored secret is never shown")
    domains: list[DomainOut]
    default_role: str
    require_sso: bool
    enabled: bool
    redirect_uri: str = Field(
        description="register this redirect URI at the provider (API sign-in)"
    )
    console_redirect_uri: str = Field(
        description="and this one, for people signing in to the web console"
    )
    created_at: datetime | None
    updated_at: datetime | None

    @classmethod
    def of(cls, found: sso.SsoSettings, request: Request, resources: Resources) -> SsoOut:
        c = found.config
        return cls(
            issuer=c.issuer,
            client_id=c.client_id,
            client_secret_hint=c.client_secret_hint,
            domains=[
                DomainOut(
                    domain=d.domain,
                    verified=d.verified_at is not None,
                    verified_at=d.verified_at,
                    txt_record_name=record_name(d.domain),
                    txt_record_value=record_value(d.verification_token),
                )
                for d in found.domains
            ],
            default_role=c.default_role,
            require_sso=c.require_sso,
            enabled=c.enabled,
            redirect_uri=callback_uri(request, resources),
            console_redirect_uri=callback_uri(request, resources, CONSOLE_CALLBACK_PATH),
            created_at=c.created_at,
            updated_at=c.updated_at,
        )


class TestOut(BaseModel):
    ok: bool
    error: str | None = Field(description="the first thing that failed")
    issuer: str | None
    authorization_endpoint: str | None
    token_endpoint: str | None
    jwks_uri: str | None
    signing_algorithms: list[str]
    key_ids: list[str]
    client_credentials: str | None = Field(
        description="accepted, rejected or unknown: what the token endpoint said of them"
    )


@router.get("")
async def get_sso(
    ctx: OrgCtx, request: Request, resources: ResourcesDep, session: SessionDep
) -> SsoOut:
    found = await sso.get_settings(session, ctx)
    return SsoOut.of(found, request, resources)


@router.put("")
async def put_sso(
    body: SsoIn,
    ctx: OrgCtx,
    request: Request,
    resources: ResourcesDep,
    rt: SsoRuntimeDep,
    session: SessionDep,
) -> SsoOut:
    found, _created = await sso.configure(session, ctx, rt, **body.model_dump())
    return SsoOut.of(found, request, resources)


@router.delete("", status_code=status.HTTP_204_NO_CONTENT)
async def delete_sso(ctx: OrgCtx, session: SessionDep) -> None:
    await sso.remove(session, ctx)


@router.post("/domains/verify")
async def verify_domains(
    ctx: OrgCtx, request: Request, resources: ResourcesDep, session: SessionDep
) -> SsoOut:
    """Look up each unverified domain's TXT record now."""
    found = await sso.verify_domains(session, ctx)
    return SsoOut.of(found, request, resources)


@router.post("/test")
async def test_connection(ctx: OrgCtx, rt: SsoRuntimeDep, session: SessionDep) -> TestOut:
    report = await sso.test_connection(session, ctx, rt)
    meta = report.metadata
    return TestOut(
        ok=report.ok,
        error=report.error,
        issuer=meta.issuer if meta else None,
        authorization_endpoint=meta.authorization_endpoint if meta else None,
        token_endpoint=meta.token_endpoint if meta else None,
        jwks_uri=meta.jwks_uri if meta else None,
        signing_algorithms=list(meta.signing_algorithms) if meta else [],
        key_ids=list(report.key_ids),
        client_credentials=report.client_credentials,
    )
