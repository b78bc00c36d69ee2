"""SQL for the ops console. Unscoped by org on purpose (operators see every org), so only
`api/ops` (behind `Operator`), the ops console (operator pages) and `/metrics` may call it.

Global windows ("the last hour") are read org by org through the (org_id, created_at)
indexes, the same trick the rollup uses: request_logs, tasks and ledger_entries have no
index on created_at alone, and a LATERAL probe per org stays cheap where a time-range scan
over the whole table would not.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from schema.base import table_of
from schema.ledger import Hold, LedgerEntry
from schema.requests import RequestDetail, RequestLog
from schema.tasks import Task

LOGS = table_of(RequestLog)
HOLDS = table_of(Hold)
ENTRIES = table_of(LedgerEntry)
DETAILS = table_of(RequestDetail)
TASKS = table_of(Task)


async def get_log(session: AsyncSession, request_id: str) -> RequestLog | None:
    stmt = select(RequestLog).where(LOGS.c.id == request_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def get_detail(session: AsyncSession, request_id: str) -> RequestDetail | None:
    stmt = select(RequestDetail).where(DETAILS.c.request_id == request_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def holds_for(
    session: AsyncSession, org_id: uuid.UUID, reference: str, hold_ids: Sequence[uuid.UUID]
) -> list[Hold]:
    """A request may take several holds (a fallback re-reserves), all carrying its reference."""
    cond = HOLDS.c.reference == reference
    if hold_ids:
        cond = or_(cond, HOLDS.c.id.in_(list(hold_ids)))
    stmt = select(Hold).where(HOLDS.c.org_id == org_id, cond).order_by(HOLDS.c.created_at)
    return list((await session.execute(stmt)).scalars())


async def entries_for(
    session: AsyncSession, reference: str, hold_ids: Sequence[uuid.UUID]
) -> list[LedgerEntry]:
    cond = ENTRIES.c.reference == reference
    if hold_ids:
        cond = or_(cond, ENTRIES.c.hold_id.in_(list(hold_ids)))
    stmt = select(LedgerEntry).where(cond).order_by(ENTRIES.c.id)
    return list((await session.execute(stmt)).scalars())


# --- the support lookup: whatever id a customer or a provider quoted ----------------------

_REQUESTS_MATCHING = text(
    """
    SELECT l.id, l.created_at FROM request_logs l
    WHERE l.id = :needle OR l.upstream_request_id = :needle
    UNION
    SELECT l.id, l.created_at FROM request_attempts a
    JOIN request_logs l ON l.id = a.request_id
    WHERE a.upstream_request_id = :needle OR a.diagnostics ->> 'cf-ray' = :needle
    ORDER BY created_at DESC
    LIMIT :limit
    """
)


async def requests_matching(session: AsyncSession, needle: str, limit: int) -> list[str]:
    """Request ids whose own id, upstream request id or upstream cf-ray is `needle`,
    newest first (a provider may reuse an id across calls, so there can be several)."""
    rows = await session.execute(_REQUESTS_MATCHING, {"needle": needle, "limit": limit})
    return [str(r[0]) for r in rows]


async def tasks_matching(session: AsyncSession, needle: str, limit: int) -> list[Task]:
    """Tasks submitted by the request `needle` names, or whose upstream job id it is."""
    cond = or_(TASKS.c.request_id == needle, TASKS.c.upstream_job_id == needle)
    stmt = select(Task).where(cond).order_by(TASKS.c.created_at.desc()).limit(limit)
    return list((await session.execute(stmt)).scalars())


_PROBLEM_TASKS = text(
    """
    SELECT t.* FROM orgs o
    CROSS JOIN LATERAL (
        SELECT * FROM tasks
        WHERE org_id = o.id AND created_at >= :since
          AND (status = 'failed'
               OR (status IN ('pending', 'processing') AND created_at < :stuck_before))
        ORDER BY created_at DESC
        LIMIT :limit
    ) t
    ORDER BY t.created_at DESC
    LIMIT :limit
    """
)


async def problem_tasks(
    session: AsyncSession, *, since: datetime, stuck_before: datetime, limit: int
) -> list[Task]:
    """Tasks created since `since` that failed, or are still unfinished although created
    before `stuck_before`: newest first."""
    params = {"since": since, "stuck_before": stuck_before, "limit": limit}
    rows = await session.execute(select(Task).from_statement(_PROBLEM_TASKS), params)
    return list(rows.scalars())


_CHANNEL_HEALTH = text(
    """
    WITH recent AS (
        SELECT a.channel_id, a.outcome, a.latency_ms
        FROM orgs o
        CROSS JOIN LATERAL (
            SELECT l.id FROM request_logs l
            WHERE l.org_id = o.id AND l.created_at >= :since
        ) l
        JOIN request_attempts a ON a.request_id = l.id
        WHERE a.channel_id IS NOT NULL
    ), stats AS (
        SELECT channel_id,
               jsonb_object_agg(outcome, n) AS outcomes,
               sum(n)::bigint AS attempts
        FROM (SELECT channel_id, outcome, count(*) AS n FROM recent GROUP BY 1, 2) c
        GROUP BY channel_id
    ), latency AS (
        SELECT channel_id,
               percentile_disc(0.5) WITHIN GROUP (ORDER BY latency_ms) AS p50
        FROM recent GROUP BY channel_id
    )
    SELECT ch.id, ch.name, ch.provider, ch."group", ch.enabled, ch.breaker_state,
           ch.consecutive_failures, ch.breaker_opened_at,
           coalesce(s.attempts, 0) AS attempts, coalesce(s.outcomes, '{}'::jsonb) AS outcomes,
           lat.p50 AS p50_latency_ms
    FROM channels ch
    LEFT JOIN stats s ON s.channel_id = ch.id
    LEFT JOIN latency lat ON lat.channel_id = ch.id
    ORDER BY ch.name
    """
)


async def channel_health(session: AsyncSession, since: datetime) -> list[dict[str, Any]]:
    rows = await session.execute(_CHANNEL_HEALTH, {"since": since})
    return [dict(r) for r in rows.mappings()]


# --- /metrics gauges: each an aggregate over an index or a small table ------------------

_PENDING_HOLDS = text(
    "SELECT count(*), coalesce(sum(amount_micros), 0) FROM holds WHERE status = 'pending'"
)
_ACCOUNTS = text(
    "SELECT count(*), coalesce(sum(balance_micros), 0), coalesce(sum(available_micros), 0)"
    " FROM credit_accounts"
)
_CALLBACK_FAILURES = text(
    "SELECT count(*) FROM callback_attempts WHERE created_at >= :since AND outcome <> 'delivered'"
)
_TASKS_BY_STATUS = text(
    """
    SELECT t.status, count(*) FROM orgs o
    CROSS JOIN LATERAL (
        SELECT status FROM tasks WHERE org_id = o.id AND created_at >= :since
    ) t
    GROUP BY t.status
    """
)
_LEDGER_BY_KIND = text(
    """
    SELECT e.kind, count(*), coalesce(sum(e.amount_micros), 0) FROM orgs o
    CROSS JOIN LATERAL (
        SELECT kind, amount_micros FROM ledger_entries
        WHERE org_id = o.id AND created_at >= :since
    ) e
    GROUP BY e.kind
    """
)
_REQUESTS_BY_MODEL = text(
    """
    SELECT l.model, l.status, l.http_status, count(*) FROM orgs o
    CROSS JOIN LATERAL (
        SELECT model, status, http_status FROM request_logs
        WHERE org_id = o.id AND created_at >= :since
    ) l
    GROUP BY 1, 2, 3
    """
)


_ORPHANS = text("SELECT count(*), count(*) FILTER (WHERE state = 'canceled') FROM task_orphan_jobs")


async def orphan_jobs(session: AsyncSession) -> tuple[int, int]:
    """Upstream jobs tasks did not use, ever: (found, cancelled). The table only grows by
    rare accidents, so counting it whole stays cheap."""
    found, canceled = (await session.execute(_ORPHANS)).one()
    return int(found), int(canceled)


async def pending_holds(session: AsyncSession) -> tuple[int, int]:
    count, micros = (await session.execute(_PENDING_HOLDS)).one()
    return int(count), int(micros)


async def account_totals(session: AsyncSession) -> tuple[int, int, int]:
    count, balance, available = (await session.execute(_ACCOUNTS)).one()
    return int(count), int(balance), int(available)


async def callback_failures(session: AsyncSession, since: datetime) -> int:
    return int((await session.execute(_CALLBACK_FAILURES, {"since": since})).scalar_one())


async def tasks_by_status(session: AsyncSession, since: datetime) -> dict[str, int]:
    rows = await session.execute(_TASKS_BY_STATUS, {"since": since})
    return {str(status): int(n) for status, n in rows}


async def ledger_by_kind(session: AsyncSession, since: datetime) -> dict[str, tuple[int, int]]:
    rows = await session.execute(_LEDGER_BY_KIND, {"since": since})
    return {str(kind): (int(n), int(total)) for kind, n, total in rows}


async def requests_by_model(
    session: AsyncSession, since: datetime
) -> list[tuple[str, str, int, int]]:
    rows = await session.execute(_REQUESTS_BY_MODEL, {"since": since})
    return [(str(m), str(s), int(code), int(n)) for m, s, code, n in rows]
