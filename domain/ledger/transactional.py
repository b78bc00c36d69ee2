"""One transaction per ledger operation, for callers with nothing else to write atomically.

The relay does not use this: it settles a hold and writes its request log in one transaction
through `domain.ledger.service` directly. Portals, admin actions and activities that move
money and nothing else use this.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime, timedelta

from domain.budgets.models import BudgetRef
from domain.ledger import service
from domain.ledger.models import (
    Balance,
    EntryPage,
    Posting,
    Release,
    Reservation,
    Settlement,
    SweepResult,
)
from schema.db import SessionFactory
from schema.unit_of_work import unit_of_work


class Ledger:
    def __init__(self, sessions: SessionFactory) -> None:
        self._sessions = sessions

    async def ensure_account(self, org_id: uuid.UUID) -> Balance:
        async with unit_of_work(self._sessions) as session:
            return await service.ensure_account(session, org_id)

    async def balance(self, org_id: uuid.UUID) -> Balance:
        async with unit_of_work(self._sessions) as session:
            return await service.balance(session, org_id)

    async def credit(
        self,
        org_id: uuid.UUID,
        amount_micros: int,
        *,
        kind: str,
        key: str,
        actor: str,
        reason: str | None = None,
        reference: str | None = None,
    ) -> Posting:
        async with unit_of_work(self._sessions) as session:
            return await service.credit(
                session,
                org_id,
                amount_micros,
                kind=kind,
                key=key,
                actor=actor,
                reason=reason,
                reference=reference,
            )

    async def adjust(
        self,
        org_id: uuid.UUID,
        amount_micros: int,
        *,
        key: str,
        actor: str,
        reason: str,
        reference: str | None = None,
    ) -> Posting:
        async with unit_of_work(self._sessions) as session:
            return await service.adjust(
                session,
                org_id,
                amount_micros,
                key=key,
                actor=actor,
                reason=reason,
                reference=reference,
            )

    async def reserve(
        self,
        org_id: uuid.UUID,
        amount_micros: int,
        *,
        key: str,
        expires_in: timedelta,
        api_key_id: uuid.UUID | None = None,
        reference: str | None = None,
        budgets: Sequence[BudgetRef] = (),
        period: date | None = None,
    ) -> Reservation:
        async with unit_of_work(self._sessions) as session:
            return await service.reserve(
                session,
                org_id,
                amount_micros,
                key=key,
                expires_in=expires_in,
                api_key_id=api_key_id,
                reference=reference,
                budgets=budgets,
                period=period,
            )

    async def settle(
        self, hold_id: uuid.UUID, actual_micros: int, *, actor: str = service.SYSTEM_ACTOR
    ) -> Settlement:
        async with unit_of_work(self._sessions) as session:
            return await service.settle(session, hold_id, actual_micros, actor=actor)

    async def void(self, hold_id: uuid.UUID) -> Release:
        async with unit_of_work(self._sessions) as session:
            return await service.void(session, hold_id)

    async def expire_stale_holds(
        self, *, now: datetime | None = None, limit: int = 500
    ) -> SweepResult:
        async with unit_of_work(self._sessions) as session:
            return await service.expire_stale_holds(session, now=now, limit=limit)

    async def refund(
        self,
        entry_id: int,
        *,
        key: str,
        actor: str,
        reason: str,
        org_id: uuid.UUID | None = None,
    ) -> Posting:
        async with unit_of_work(self._sessions) as session:
            return await service.refund(
                session, entry_id, key=key, actor=actor, reason=reason, org_id=org_id
            )

    async def list_entries(
        self,
        org_id: uuid.UUID,
        *,
        cursor: str | None = None,
        limit: int = 50,
        kind: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> EntryPage:
        async with unit_of_work(self._sessions) as session:
            return await service.list_entries(
                session, org_id, cursor=cursor, limit=limit, kind=kind, since=since, until=until
            )
