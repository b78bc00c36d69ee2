"""SQL for request logs, their attempts and (opt-in) content details, and the monthly usage
rollups read beside them (every read is org-filtered)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Insert,
    String,
    Table,
    and_,
    bindparam,
    cast,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession

from domain.inputs import storable_json
from domain.usage.models import GroupBy, UsageRow
from domain.usage.rollup_repository import rollup_statement
from schema.base import table_of
from schema.db import Executor
from schema.payments import UsageMonthly
from schema.requests import RequestAttempt, RequestDetail, RequestLog

LOGS = table_of(RequestLog)
ATTEMPTS = table_of(RequestAttempt)
DETAILS = table_of(RequestDetail)
MONTHLY = table_of(UsageMonthly)


# Built once and executed with a params dict: SQLAlchemy compiles one INSERT per set of keys
# and caches it, instead of building a statement from `.values(**row)` on every request.
_INSERT_LOG = insert(LOGS)
_INSERT_ATTEMPTS = insert(ATTEMPTS)
_INSERT_DETAIL = insert(DETAILS)


# The usual request (one attempt) writes its log and attempt rows in one statement, a
# data-modifying CTE, saving a round trip; request_attempts has no foreign key to the log.
_LOG_WITH_ATTEMPT: dict[tuple[tuple[str, ...], tuple[str, ...]], Insert] = {}


def _scalar_defaults(table: Table) -> dict[str, Any] | None:
    """Column defaults SQLAlchemy would fill in; None if one is not a plain value."""
    defaults: dict[str, Any] = {}
    for column in table.c:
        if column.default is None:
            continue
        if not column.default.is_scalar:
            return None
        defaults[column.name] = column.default.arg  # type: ignore[attr-defined]
    return defaults


# Two INSERTs in one statement cannot both use SQLAlchemy's automatic default binds (their
# names clash), so the combined form passes those defaults as ordinary parameters.
LOG_DEFAULTS = _scalar_defaults(LOGS)
ATTEMPT_DEFAULTS = _scalar_defaults(ATTEMPTS)


def _log_with_attempt(log_keys: tuple[str, ...], attempt_keys: tuple[str, ...]) -> Insert:
    stmt = _LOG_WITH_ATTEMPT.get((log_keys, attempt_keys))
    if stmt is None:
        log_cte = (
            insert(LOGS)
            .values({k: bindparam(f"l_{k}", type_=LOGS.c[k].type) for k in log_keys})
            .cte("log")
        )
        stmt = (
            insert(ATTEMPTS)
            .values({k: bindparam(f"a_{k}", type_=ATTEMPTS.c[k].type) for k in attempt_keys})
            .add_cte(log_cte)
        )
        if len(_LOG_WITH_ATTEMPT) < 64:  # a handful of key sets exist; never grow unbounded
            _LOG_WITH_ATTEMPT[(log_keys, attempt_keys)] = stmt
    return stmt


async def insert_log(
    session: Executor,
    log: dict[str, Any],
    attempts: list[dict[str, Any]],
    detail: dict[str, Any] | None,
) -> None:
    if len(attempts) == 1 and LOG_DEFAULTS is not None and ATTEMPT_DEFAULTS is not None:
        log = {**LOG_DEFAULTS, **log}
        attempt = {**ATTEMPT_DEFAULTS, **attempts[0]}
        stmt = _log_with_attempt(tuple(log), tuple(attempt))
        params = {f"l_{k}": v for k, v in log.items()}
        params.update({f"a_{k}": v for k, v in attempt.items()})
        await session.execute(stmt, params)
    else:
        await session.execute(_INSERT_LOG, log)
        if attempts:
            await session.execute(_INSERT_ATTEMPTS, attempts)
    if detail is not None:
        # Prompt and answer are what others sent: stored even where JSONB needs U+FFFD.
        row: dict[str, Any] = dict(detail)
        for name in ("prompt", "response"):
            if name in row:
                row[name] = storable_json(row[name])
        await session.execute(_INSERT_DETAIL, row)


async def get_log(session: AsyncSession, org_id: uuid.UUID, request_id: str) -> RequestLog | None:
    stmt = select(RequestLog).where(LOGS.c.id == request_id, LOGS.c.org_id == org_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def attempts_of(session: AsyncSession, request_id: str) -> list[RequestAttempt]:
    stmt = select(RequestAttempt).where(ATTEMPTS.c.request_id == request_id).order_by(ATTEMPTS.c.id)
    return list((await session.execute(stmt)).scalars())


async def org_has_requests(session: AsyncSession, org_id: uuid.UUID) -> bool:
    """Whether any call of the org is logged; one index probe on (org_id, created_at)."""
    stmt = select(exists().where(LOGS.c.org_id == org_id))
    return bool((await session.execute(stmt)).scalar_one())


# --- usage totals, from raw logs and from monthly rollups --------------------------------


async def rolled_months(
    session: AsyncSession, org_id: uuid.UUID, candidates: Sequence[datetime]
) -> list[datetime]:
    if not candidates:
        return []
    stmt = (
        select(MONTHLY.c.month)
        .where(MONTHLY.c.org_id == org_id, MONTHLY.c.month.in_(list(candidates)))
        .distinct()
    )
    return sorted((await session.execute(stmt)).scalars())


def _group_expr(group_by: GroupBy, *, raw: bool) -> ColumnElement[Any]:
    t = LOGS if raw else MONTHLY
    if group_by == "model":
        return t.c.model
    if group_by == "key":
        return cast(t.c.api_key_id, String)
    if group_by == "month":
        col = func.date_trunc("month", LOGS.c.created_at, "UTC") if raw else MONTHLY.c.month
        return func.to_char(func.timezone("UTC", col), "YYYY-MM")
    if group_by == "day":
        return func.to_char(func.timezone("UTC", LOGS.c.created_at), "YYYY-MM-DD")
    return literal(None, String)


def _rows(result: Any) -> list[UsageRow]:
    return [
        UsageRow(
            key=r[0],
            requests=int(r[1]),
            failed_requests=int(r[2]),
            prompt_tokens=int(r[3]),
            completion_tokens=int(r[4]),
            cost_micros=int(r[5]),
            byok_requests=int(r[6]),
        )
        for r in result
    ]


def _in_ranges(ranges: Sequence[tuple[datetime, datetime]]) -> ColumnElement[bool]:
    """created_at in any of these [start, end) ranges: each an index range on (org, time)."""
    conds = [and_(LOGS.c.created_at >= a, LOGS.c.created_at < b) for a, b in ranges]
    return conds[0] if len(conds) == 1 else or_(*conds)


async def totals_from_logs(
    session: AsyncSession,
    org_id: uuid.UUID,
    ranges: Sequence[tuple[datetime, datetime]],
    group_by: GroupBy,
) -> list[UsageRow]:
    """Totals of the raw logs in `ranges` (the parts of the asked range no rollup serves)."""
    if not ranges:
        return []
    key = _group_expr(group_by, raw=True).label("k")
    stmt = (
        select(
            key,
            func.count(),
            func.count().filter(LOGS.c.status == "failed"),
            func.coalesce(func.sum(LOGS.c.prompt_tokens), 0),
            func.coalesce(func.sum(LOGS.c.completion_tokens), 0),
            func.coalesce(func.sum(LOGS.c.cost_micros), 0),
            func.count().filter(LOGS.c.billing == "byok"),
        )
        .where(LOGS.c.org_id == org_id, _in_ranges(ranges))
        .group_by(key)
    )
    return _rows(await session.execute(stmt))


async def totals_from_rollups(
    session: AsyncSession, org_id: uuid.UUID, months: Sequence[datetime], group_by: GroupBy
) -> list[UsageRow]:
    if not months:
        return []
    key = _group_expr(group_by, raw=False).label("k")
    stmt = (
        select(
            key,
            func.coalesce(func.sum(MONTHLY.c.requests), 0),
            func.coalesce(func.sum(MONTHLY.c.failed_requests), 0),
            func.coalesce(func.sum(MONTHLY.c.prompt_tokens), 0),
            func.coalesce(func.sum(MONTHLY.c.completion_tokens), 0),
            func.coalesce(func.sum(MONTHLY.c.cost_micros), 0),
            func.coalesce(func.sum(MONTHLY.c.byok_requests), 0),
        )
        .where(MONTHLY.c.org_id == org_id, MONTHLY.c.month.in_(list(months)))
        .group_by(key)
    )
    return _rows(await session.execute(stmt))


async def list_logs(
    session: AsyncSession,
    org_id: uuid.UUID,
    *,
    before: tuple[datetime, str] | None,
    limit: int,
    status: str | None,
    model: str | None,
    api_key_id: uuid.UUID | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[RequestLog]:
    """Newest first, keyset-paginated on (created_at, id) over the org's index."""
    stmt = select(RequestLog).where(LOGS.c.org_id == org_id)
    if status:
        stmt = stmt.where(LOGS.c.status == status)
    if model:
        stmt = stmt.where(LOGS.c.model == model)
    if api_key_id is not None:
        stmt = stmt.where(LOGS.c.api_key_id == api_key_id)
    if since is not None:
        stmt = stmt.where(LOGS.c.created_at >= since)
    if until is not None:
        stmt = stmt.where(LOGS.c.created_at < until)
    if before is not None:
        created, request_id = before
        stmt = stmt.where(
            or_(
                LOGS.c.created_at < created,
                and_(LOGS.c.created_at == created, LOGS.c.id < request_id),
            )
        )
    stmt = stmt.order_by(LOGS.c.created_at.desc(), LOGS.c.id.desc()).limit(limit)
    return list((await session.execute(stmt)).scalars())


async def daily_cost_by_model(
    session: AsyncSession, org_id: uuid.UUID, ranges: Sequence[tuple[datetime, datetime]]
) -> list[tuple[str, str, int, int]]:
    """(UTC day "YYYY-MM-DD", model, cost micros, requests) for the org's calls in `ranges`."""
    if not ranges:
        return []
    day = func.to_char(func.timezone("UTC", LOGS.c.created_at), "YYYY-MM-DD").label("d")
    stmt = (
        select(day, LOGS.c.model, func.coalesce(func.sum(LOGS.c.cost_micros), 0), func.count())
        .where(LOGS.c.org_id == org_id, _in_ranges(ranges))
        .group_by(day, LOGS.c.model)
    )
    return [(r[0], r[1], int(r[2]), int(r[3])) for r in await session.execute(stmt)]


# --- the monthly rollup (`rollup_orgs`) ------------------------------------------------------

_ROLLUP = rollup_statement(
    table="usage_monthly", bucket="month", conflict="org_id, api_key_id, model, month"
)


async def rollup_orgs(
    session: AsyncSession, org_ids: Sequence[uuid.UUID], *, start: datetime, end: datetime
) -> int:
    """Recompute every bucket of these orgs in [start, end); returns buckets written.

    A bucket is (org, api key, model, UTC month) in `usage_monthly`. Every run *recomputes*
    the buckets it covers from the raw logs and writes them only where a value differs, so
    running it twice, or over a month that was already rolled, can never count a request
    twice, and a run that changes nothing writes nothing. Request logs are never deleted,
    so a bucket can always be rebuilt; the rollup is what lets usage pages stay cheap and
    lets retention delete content details safely. Callers pass a batch of org ids, so the
    statement reads the logs through the (org_id, created_at) index instead of scanning the
    table for a time range.
    """
    if not org_ids or start >= end:
        return 0
    params = {"org_ids": list(org_ids), "start": start, "end": end}
    return int((await session.execute(_ROLLUP, params)).scalar_one())
