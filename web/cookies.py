"""The console's cookies: one policy for all of them, so none is ever set half-protected.

Every cookie is HttpOnly and SameSite=Lax. Outside dev and test they are also Secure and
carry the `__Host-` prefix, which makes the browser refuse them unless they were set over
HTTPS, for this exact host and path `/`: a sibling subdomain cannot plant or shadow them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from starlette.requests import Request
from starlette.responses import Response

SESSION = "oxinf_session"  # the portal session token, as /portal/v1/auth/login issues it
ORG = "oxinf_org"  # the org the viewer last switched to (checked against memberships)
PRE_SESSION = "oxinf_pre"  # random nonce binding the sign-in and sign-up forms' CSRF token
FLASH = "oxinf_flash"  # one signed message for the next page
SSO_STATE = "oxinf_sso"  # the state of the single sign-on this browser started

ORG_MAX_AGE_S = 365 * 24 * 3600


@dataclass(frozen=True)
class CookiePolicy:
    secure: bool

    @classmethod
    def for_env(cls, env: str) -> CookiePolicy:
        return cls(secure=env not in ("dev", "test"))

    def name(self, base: str) -> str:
        return f"__Host-{base}" if self.secure else base

    def read(self, request: Request, base: str) -> str | None:
        return request.cookies.get(self.name(base)) or None

    def set(
        self,
        response: Response,
        base: str,
        value: str,
        *,
        expires: datetime | None = None,
        max_age: int | None = None,
    ) -> None:
        response.set_cookie(
            self.name(base),
            value,
            max_age=max_age,
            expires=expires,
            path="/",
            secure=self.secure,
            httponly=True,
            samesite="lax",
        )

    def clear(self, response: Response, base: str) -> None:
        response.delete_cookie(
            self.name(base), path="/", secure=self.secure, httponly=True, samesite="lax"
        )
