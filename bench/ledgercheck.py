"""After the load: do the books agree with what the clients saw?

Throughput means nothing if billing drifts under concurrency, so the bench reconciles three
independent records: the responses the load generator counted, the request log, and the
ledger (account row, entries, holds). Read-only SQL on purpose: the check must not trust the
services it is checking.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text

from schema.db import create_engine

SETTLE_WAIT_S = 10.0

_STATE = text(
    """
    SELECT a.balance_micros, a.available_micros,
      (SELECT coalesce(sum(amount_micros), 0) FROM ledger_entries WHERE org_id = a.org_id),
      (SELECT count(*) FROM ledger_entries WHERE org_id = a.org_id AND kind = 'debit'),
      (SELECT count(*) FROM holds WHERE org_id = a.org_id AND status = 'pending'),
      (SELECT coalesce(sum(amount_micros), 0) FROM holds
        WHERE org_id = a.org_id AND status = 'pending')
    FROM credit_accounts a WHERE a.org_id = :org
    """
)
_LOGS = text(
    """
    SELECT count(*) FILTER (WHERE status = 'succeeded'),
           count(*),
           coalesce(sum(cost_micros), 0),
           coalesce(sum(uncollected_micros), 0),
           count(*) FILTER (WHERE status = 'succeeded' AND cost_micros <> :expected),
           count(*) FILTER (WHERE estimated)
    FROM request_logs WHERE org_id = :org
    """
)


@dataclass
class LedgerCheck:
    passed: bool
    checks: dict[str, bool] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)


async def _state(url: str, org_id: uuid.UUID, expected_cost: int) -> dict[str, int]:
    engine = create_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            bal, avail, entries, debits, pending, held = (
                await conn.execute(_STATE, {"org": org_id})
            ).one()
            succeeded, logs, cost, uncollected, mispriced, estimated = (
                await conn.execute(_LOGS, {"org": org_id, "expected": expected_cost})
            ).one()
    finally:
        await engine.dispose()
    return {
        "balance_micros": int(bal),
        "available_micros": int(avail),
        "ledger_entries_sum_micros": int(entries),
        "debit_entries": int(debits),
        "pending_holds": int(pending),
        "pending_hold_micros": int(held),
        "succeeded_logs": int(succeeded),
        "request_logs": int(logs),
        "logged_cost_micros": int(cost),
        "uncollected_micros": int(uncollected),
        "mispriced_logs": int(mispriced),
        "estimated_usage_logs": int(estimated),
    }


async def check_ledger(
    url: str, org_id: uuid.UUID, seeded_micros: int, expected_cost: int, relay_ok: int
) -> LedgerCheck:
    """`relay_ok`: 200 responses the load generator saw through the relay, warm-ups included."""
    deadline = time.monotonic() + SETTLE_WAIT_S
    while True:  # settlements still in flight finish within moments of the last response
        s = await _state(url, org_id, expected_cost)
        if s["pending_holds"] == 0 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.25)
    charged = seeded_micros - s["balance_micros"]
    checks = {
        "charged = Σ request_logs.cost": charged == s["logged_cost_micros"],
        "succeeded logs = relay 200s": s["succeeded_logs"] == relay_ok,
        "one debit entry per succeeded log": s["debit_entries"] == s["succeeded_logs"],
        "every call priced exactly": s["mispriced_logs"] == 0
        and s["logged_cost_micros"] == s["succeeded_logs"] * expected_cost,
        "no pending holds": s["pending_holds"] == 0,
        "balance = Σ ledger entries": s["balance_micros"] == s["ledger_entries_sum_micros"],
        "available = balance - pending holds": s["available_micros"]
        == s["balance_micros"] - s["pending_hold_micros"],
        "nothing uncollected": s["uncollected_micros"] == 0,
    }
    figures = {
        **s,
        "seeded_micros": seeded_micros,
        "charged_micros": charged,
        "relay_ok_responses": relay_ok,
        "expected_cost_per_call_micros": expected_cost,
    }
    return LedgerCheck(all(checks.values()), checks, figures)


_LOWEST = text(
    """
    SELECT coalesce(min(balance_after_micros), 0), count(*) FILTER (WHERE amount_micros < 0)
    FROM ledger_entries WHERE org_id = :org
    """
)


async def check_hot_account(
    url: str, org_id: uuid.UUID, funds: int, expected_cost: int, relay_ok: int
) -> LedgerCheck:
    """The hot-account burst: the usual reconciliation, plus no overspend. The org's funds
    cover only part of the burst, so every refusal races every reserve on one account row."""
    found = await check_ledger(url, org_id, funds, expected_cost, relay_ok)
    engine = create_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            lowest, debits = (await conn.execute(_LOWEST, {"org": org_id})).one()
    finally:
        await engine.dispose()
    f = found.figures
    found.checks.update(
        {
            "balance never below zero": int(lowest) >= 0 and f["balance_micros"] >= 0,
            "Σ charged ≤ funds": 0 <= f["charged_micros"] <= funds,
        }
    )
    found.figures.update(
        {"lowest_balance_after_micros": int(lowest), "negative_entries": int(debits)}
    )
    found.passed = all(found.checks.values())
    return found


_TASKS = text(
    """
    SELECT (SELECT count(*) FROM tasks WHERE org_id = :org AND status <> 'failed'),
      (SELECT count(*) FROM tasks
        WHERE org_id = :org AND status <> 'failed' AND hold_id IS NULL),
      a.balance_micros, a.available_micros,
      (SELECT count(*) FROM holds WHERE org_id = :org AND status = 'pending'),
      (SELECT coalesce(sum(amount_micros), 0) FROM holds
        WHERE org_id = :org AND status = 'pending')
    FROM credit_accounts a WHERE a.org_id = :org
    """
)


async def check_tasks(
    url: str, org_id: uuid.UUID, seeded_micros: int, task_cost: int, accepted: int
) -> LedgerCheck:
    """Each 202 stands for a task row and its hold, reserved before the answer. No worker runs
    in the bench, so nothing is settled yet: the balance is untouched and every hold pending.
    (A task whose workflow could not start is failed and refunded, and answered 503.)"""
    engine = create_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            rows, unheld, bal, avail, pending, held = (
                await conn.execute(_TASKS, {"org": org_id})
            ).one()
    finally:
        await engine.dispose()
    figures = {
        "accepted_202": accepted,
        "tasks": int(rows),
        "tasks_without_hold": int(unheld),
        "pending_holds": int(pending),
        "pending_hold_micros": int(held),
        "balance_micros": int(bal),
        "available_micros": int(avail),
        "task_cost_micros": task_cost,
    }
    checks = {
        "one live task row per 202": rows == accepted,
        "every task holds its cost": unheld == 0
        and pending == accepted
        and held == accepted * task_cost,
        "nothing charged before the work": bal == seeded_micros,
        "available = balance - pending holds": avail == bal - held,
    }
    return LedgerCheck(all(checks.values()), checks, figures)
