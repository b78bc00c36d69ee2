"""Concurrent settle batches lock shared rows in one order, so two replicas cannot deadlock.

Two replicas' batches over the same two orgs, listed in opposite orders: each batch holds
the first org's account row while it waits for the second's, unless both take them in
the same (org id) order. A third transaction holds both rows until both batches are
queued behind it, so the interleaving that deadlocks is the one that happens.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from config.runtime import Resources
from domain.relay import repository as relay_repo
from tests.domain.factories import CREDIT, make_org, unique
from tests.domain.invariants import assert_books_balance
from tests.fixtures.conditions import eventually, lock_waiters


def _item(org_id: uuid.UUID, hold_id: uuid.UUID, **extra: object) -> relay_repo.SettleItem:
    request_id = unique("req")
    log = {
        "id": request_id, "org_id": org_id, "model": "m", "stream": False, "latency_ms": 3,
        "created_at": datetime.now(UTC), "status": "succeeded", "http_status": 200,
        "prompt_tokens": 1, "completion_tokens": 1, "cost_micros": CREDIT,
        "list_cost_micros": CREDIT, "billing": "platform", "hold_id": hold_id, **extra,
    }  # fmt: skip
    attempt = {"request_id": request_id, "provider": "openai", "model": "m", "outcome": "ok",
               "latency_ms": 2, "http_status": 200}  # fmt: skip
    return relay_repo.SettleItem(hold_id, CREDIT, log, attempt)


async def _hold(resources: Resources, org_id: uuid.UUID) -> uuid.UUID:
    hold_id = await relay_repo.reserve(
        resources.relay.direct, org_id, 2 * CREDIT, key=unique("h"), reference=None,
        expires_in=timedelta(hours=1),
    )  # fmt: skip
    assert hold_id is not None
    return hold_id


@pytest.mark.parametrize("shapes", ["one statement", "two statements"])
async def test_batches_over_two_orgs_in_opposite_orders_do_not_deadlock(
    resources: Resources, shapes: str
) -> None:
    """With "two statements" the second item of each batch has another log shape, so each batch
    is two statements in one transaction, the first locking one org and the second the
    other: without the batch's up-front lock this deadlocks every time. With "one statement",
    without `locked`, the order came from the UPDATE's plan, which two pooled connections
    do not always share (about one run in seven deadlocked)."""
    a = await make_org(resources.sessions, funded_micros=10 * CREDIT)
    b = await make_org(resources.sessions, funded_micros=10 * CREDIT)
    second = {"error_code": "partial"} if shapes == "two statements" else {}
    one = [_item(a, await _hold(resources, a)), _item(b, await _hold(resources, b), **second)]
    two = [_item(b, await _hold(resources, b)), _item(a, await _hold(resources, a), **second)]
    direct = resources.relay.direct
    async with resources.sessions() as blocker:
        await blocker.execute(
            text("SELECT org_id FROM credit_accounts WHERE org_id IN (:a, :b) FOR UPDATE"),
            {"a": a, "b": b},
        )
        batches = [
            asyncio.create_task(relay_repo.settle_and_log_many(direct, batch))
            for batch in (one, two)
        ]
        await eventually(
            lambda: lock_waiters(resources.sessions, 2), within=10, what="both batches queued"
        )
        await blocker.rollback()
        results = await asyncio.gather(*batches, return_exceptions=True)
    assert results == [[True, True], [True, True]]
    for org in (a, b):
        books = await assert_books_balance(resources.sessions, org)
        assert (books.balance, books.available, books.pending_count) == (
            8 * CREDIT, 8 * CREDIT, 0,
        )  # fmt: skip
