"""Rows the ledger and pricing tests need, inserted straight into the schema tables.

Identity and key services belong to another package; these tests only need the rows to
exist, so they write them directly rather than depend on those services.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime, timedelta

from sqlalchemy import insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from domain.ledger import service as ledger
from schema.base import table_of
from schema.db import SessionFactory
from schema.identity import Org
from schema.keys import ApiKey
from schema.ledger import CreditAccount, Hold, LedgerEntry

ORGS = table_of(Org)
KEYS = table_of(ApiKey)
ACCOUNTS = table_of(CreditAccount)
ENTRIES = table_of(LedgerEntry)
HOLDS = table_of(Hold)

CREDIT = 1_000_000  # micros per credit


def unique(prefix: str) -> str:
    return f"{prefix}:{secrets.token_hex(6)}"


async def make_org(
    sessions: SessionFactory,
    *,
    tier: str = "free",
    power_level: str = "balanced",
    funded_micros: int = 0,
) -> uuid.UUID:
    """An org with its credit account, optionally funded by one purchase entry."""
    org_id = uuid.uuid4()
    async with sessions.begin() as s:
        await s.execute(
            insert(ORGS).values(
                id=org_id, name=f"org {org_id.hex[:6]}", tier=tier, power_level=power_level
            )
        )
        await ledger.ensure_account(s, org_id)
        if funded_micros:
            await ledger.credit(
                s, org_id, funded_micros, kind="purchase", key=unique("fund"), actor="test"
            )
    return org_id


async def make_api_key(
    sessions: SessionFactory, org_id: uuid.UUID, *, budget_micros: int | None = None
) -> uuid.UUID:
    key_id = uuid.uuid4()
    async with sessions.begin() as s:
        await s.execute(
            insert(KEYS).values(
                id=key_id,
                org_id=org_id,
                name="test key",
                prefix="oxi_test",
                key_hash=secrets.token_bytes(32),
                scopes=[],
                budget_micros=budget_micros,
            )
        )
    return key_id


async def key_budget(sessions: SessionFactory, key_id: uuid.UUID) -> tuple[int, int]:
    """(spent, reserved) of an api key."""
    async with sessions() as s:
        row = (
            await s.execute(
                select(KEYS.c.budget_spent_micros, KEYS.c.budget_reserved_micros).where(
                    KEYS.c.id == key_id
                )
            )
        ).one()
    return int(row[0]), int(row[1])


async def backdate_hold(sessions: SessionFactory, hold_id: uuid.UUID, by: timedelta) -> None:
    """Pretend the request holding this hold crashed long ago."""
    async with sessions.begin() as s:
        await s.execute(
            update(HOLDS)
            .where(HOLDS.c.id == hold_id)
            .values(expires_at=HOLDS.c.expires_at - by, created_at=HOLDS.c.created_at - by)
        )


async def db_now(session: AsyncSession) -> datetime:
    value = (await session.execute(text("SELECT now()"))).scalar_one()
    assert isinstance(value, datetime)
    return value
