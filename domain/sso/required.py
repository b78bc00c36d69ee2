""" "Require SSO": the one question password login asks single sign-on.

Kept apart from `signin` (which issues sessions through the identity service) so the
identity service can ask it without an import cycle.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from domain.sso import repository as repo
from domain.sso.domains import email_domain

START_PATH = "/portal/v1/auth/sso/start"


@dataclass(frozen=True)
class SsoRequirement:
    """An org that requires single sign-on for an email domain it has verified."""

    org_name: str
    domain: str

    @property
    def message(self) -> str:
        """For API clients: the call that signs in instead."""
        return (
            f"{self.org_name} requires single sign-on for {self.domain} addresses: sign in "
            f"through your identity provider instead of with a password (POST {START_PATH} "
            'with {"email": "..."} gives the URL to open)'
        )


async def password_refusal(session: AsyncSession, email: str) -> SsoRequirement | None:
    """Why a password may not sign this address in, or None when it may: its domain is
    verified by an org whose enabled SSO requires it."""
    domain = email_domain(email)
    if domain is None:
        return None
    route = await repo.route_for_domain(session, domain)
    if route is None or not (route.config.enabled and route.config.require_sso):
        return None
    return SsoRequirement(route.org.name, domain)
