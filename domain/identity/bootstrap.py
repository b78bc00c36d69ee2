"""Create the operator named by `OXINF_ADMIN_EMAIL` / `OXINF_ADMIN_PASSWORD` at start.

Idempotent and safe when several replicas start at once: an existing account keeps its
password (changing it is an explicit act, not a side effect of a restart).
"""

from __future__ import annotations

import logging

from domain.errors import Conflict
from domain.identity.service import IdentityConfig, ensure_operator
from schema.db import SessionFactory
from schema.unit_of_work import unit_of_work

log = logging.getLogger("oxinf.bootstrap")


async def bootstrap_admin(
    sessions: SessionFactory, cfg: IdentityConfig, email: str | None, password: str | None
) -> None:
    if not email or not password:
        return
    try:
        async with unit_of_work(sessions) as session:
            user, created = await ensure_operator(session, cfg, email, password)
    except Conflict:
        return  # another replica created it between our read and our insert
    if created:
        log.info("operator account created", extra={"email": user.email})
