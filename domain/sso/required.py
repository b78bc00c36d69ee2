""" "Require SSO": the one question password login asks single sign-on.

Kept apart from `signin` (which issues sessions through the identity service) so the
identity service can ask it without an import cycle.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from domain.sso import repository as repo
from domain.sso.domains import email_domain

START_PATH = "/portal/v1/auth/sso/start"


async def password_refusal(session: AsyncSession, email: str) -> str | None:
    """Why a password may not sign this address in, or None when it may: its domain is
    verified by an org whose enabled SSO requires it."""
    domain = email_domain(email)
    if domain is None:
        return None
    route = await repo.route_for_domain(session, domain)
    if route is None or not (route.config.enabled and route.config.require_sso):
        return None
    return (
        f"{route.org.name} requires single sign-on for {domain} addresses: sign in through "
        f"your identity provider instead of with a password (POST {START_PATH} with "
        '{"email": "..."} gives the URL to open)'
    )
