"""A reversal's ledger key is global, so a replay is honoured only for the same org and
payment: an entry of another org under the same key must never stand in for this one."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.errors import Conflict
from domain.ledger import service as ledger
from domain.payments.ledgering import LedgerKeyMismatch, post_reinstatement, post_reversal
from schema.db import session_factory
from tests.domain.factories import CREDIT, make_org
from tests.domain.invariants import assert_books_balance

KEY = "stripe:dispute:dp_shared"


async def test_a_reversal_key_held_by_another_org_is_refused_loudly(engine: AsyncEngine) -> None:
    sessions = session_factory(engine)
    org_a = await make_org(sessions, funded_micros=10 * CREDIT)
    org_b = await make_org(sessions, funded_micros=10 * CREDIT)
    async with sessions.begin() as s:
        first = await post_reversal(
            s, org_a, 4 * CREDIT, key=KEY, reason="dispute", reference="payment:a"
        )
    assert first.entry is not None and first.taken_micros == 4 * CREDIT

    # the same key for org B's payment: refused, and B's ledger is untouched
    with pytest.raises(LedgerKeyMismatch):
        async with sessions.begin() as s:
            await post_reversal(s, org_b, 4 * CREDIT, key=KEY, reason="d", reference="payment:b")
    # the same org but another payment: refused too
    with pytest.raises(LedgerKeyMismatch):
        async with sessions.begin() as s:
            await post_reversal(s, org_a, 4 * CREDIT, key=KEY, reason="d", reference="payment:c")
    async with sessions() as s:
        assert (await ledger.balance(s, org_b)).balance_micros == 10 * CREDIT
        assert (await ledger.balance(s, org_a)).balance_micros == 6 * CREDIT

    # a true replay returns the first entry and moves nothing
    async with sessions.begin() as s:
        again = await post_reversal(
            s, org_a, 4 * CREDIT, key=KEY, reason="dispute", reference="payment:a"
        )
    assert again.entry is not None
    assert (again.entry.id, again.taken_micros) == (first.entry.id, 4 * CREDIT)
    for org in (org_a, org_b):
        await assert_books_balance(sessions, org)


async def test_a_reinstatement_key_held_by_another_org_is_refused(engine: AsyncEngine) -> None:
    sessions = session_factory(engine)
    org_a = await make_org(sessions, funded_micros=10 * CREDIT)
    org_b = await make_org(sessions, funded_micros=10 * CREDIT)
    key = KEY + ":reinstated"
    async with sessions.begin() as s:
        await post_reinstatement(s, org_a, 2 * CREDIT, key=key, reason="won", reference="payment:a")
    with pytest.raises(LedgerKeyMismatch):
        async with sessions.begin() as s:
            await post_reinstatement(
                s, org_b, 2 * CREDIT, key=key, reason="won", reference="payment:b"
            )
    with pytest.raises(Conflict, match="different amount"):
        async with sessions.begin() as s:
            await post_reinstatement(
                s, org_a, 3 * CREDIT, key=key, reason="won", reference="payment:a"
            )
    async with sessions() as s:
        assert (await ledger.balance(s, org_b)).balance_micros == 10 * CREDIT
        assert (await ledger.balance(s, org_a)).balance_micros == 12 * CREDIT
