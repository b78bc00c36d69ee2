"""What single sign-on needs from the process, for the API's and the console's routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from config.runtime import Resources
from domain.sso.runtime import SsoRuntime
from edge.deps import ResourcesDep, public_base_url


async def sso_runtime(resources: ResourcesDep) -> SsoRuntime:
    """SSO fetches only tenant-chosen URLs: always through the tenant egress client."""
    return SsoRuntime(
        box=resources.secret_box,
        http=resources.tenant_http,
        egress=resources.settings.tenant_egress,
        identity=resources.identity,
    )


SsoRuntimeDep = Annotated[SsoRuntime, Depends(sso_runtime)]

API_CALLBACK_PATH = "/portal/v1/auth/sso/callback"
CONSOLE_CALLBACK_PATH = "/console/sign-in/sso/callback"


def callback_uri(request: Request, resources: Resources, path: str = API_CALLBACK_PATH) -> str:
    """A redirect URI to register at the identity provider: the API's (returns a session
    token as JSON) or the console's (sets the session cookie)."""
    return public_base_url(request, resources) + path
