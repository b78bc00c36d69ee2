"""SQL for request logs, their attempts and (opt-in) content details."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Insert, Table, bindparam, exists, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.inputs import storable_json
from schema.base import table_of
from schema.db import Executor
from schema.requests import RequestAttempt, RequestDetail, RequestLog

LOGS = table_of(RequestLog)
ATTEMPTS = table_of(RequestAttempt)
DETAILS = table_of(RequestDetail)


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
