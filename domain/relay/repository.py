"""The relay's usual reserve and settle, each as one autocommit statement (run on the
direct asyncpg pool, `schema.direct`).

Every billed call takes the org's credit-account row lock twice: to reserve and to settle.
Inside an explicit transaction that lock is held across client round trips (the next
statement, then COMMIT), and while this process is busy serving other calls those round
trips wait their turn in the event loop, so one hot org's requests queue behind each other.
As single statements the lock lives only inside PostgreSQL for the statement's own run,
and BEGIN and COMMIT stop costing round trips.

They cover the common case only, and do nothing otherwise (no row comes back, nothing is
written), so the caller falls back to `domain.ledger.service`, which handles every case.
The effects are the same as the general path's, checked by the same ledger tests and
invariants:
- reserve: a key without a credit budget and no budget policies; for a key with a rate
  limit, together with the window's hit (`hit_and_reserve`). An idempotency key that
  is already taken makes the statement fail whole (unique violation), never half-apply.
  It runs on the pool that does not wait for the WAL flush (waiting would hold the org's
  account row lock through an fsync on every call), and that is safe:
  - the commit is visible to every other transaction at once, so concurrent reserves
    still see it and cannot overspend;
  - PostgreSQL flushes WAL in order, so the settle's durable commit makes the reserve
    durable too;
  - a database crash in between can roll the reserve back while the upstream call goes
    on. The settle then finds no hold, `ledger.restore_lost_hold` records it as expired,
    and the call is billed from available credit as any hold that outlived itself is
    (`HoldTracker.restore_if_lost`; tested by deleting the hold mid-call).
- settle: a pending, non-empty hold with no key budget and no budget policies, and a cost
  that fits it; the request log and its single attempt are written in the same statement,
  for a batch of concurrent calls at once (`settle_and_log_many`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NamedTuple

import asyncpg
import orjson
from sqlalchemy import (
    CTE,
    JSON,
    BigInteger,
    ColumnElement,
    DateTime,
    Insert,
    Integer,
    Interval,
    bindparam,
    column,
    exists,
    func,
    insert,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.sql.elements import TextClause

from domain.ledger.repository import accounts, entries, holds
from domain.ratelimit import repository as ratelimit_repo
from domain.ratelimit import service as ratelimit
from domain.ratelimit.service import RateDecision
from domain.usage.repository import ATTEMPT_DEFAULTS, ATTEMPTS, LOG_DEFAULTS, LOGS
from schema.direct import DirectPool
from schema.requests import CHARGED_CLIENT_REQUEST_INDEX

_ORG = bindparam("b_org", type_=accounts.c.org_id.type)
_AMOUNT = bindparam("b_amount", type_=BigInteger())


def _taken(*gate: ColumnElement[bool]) -> CTE:
    return (
        update(accounts)
        .where(accounts.c.org_id == _ORG, accounts.c.available_micros >= _AMOUNT, *gate)
        .values(
            available_micros=accounts.c.available_micros - _AMOUNT,
            version=accounts.c.version + 1,
            updated_at=func.now(),
        )
        .returning(accounts.c.org_id)
        .cte("taken")
    )


def _hold_from(taken: CTE) -> Insert:
    # (Columns are listed in full: `from_select` would add the model's Python-side
    # defaults as extra binds, and those arrive as NULL here.)
    return insert(holds).from_select(
        ["id", "org_id", "amount_micros", "status", "idempotency_key", "reference", "expires_at"],
        select(
            bindparam("b_id", type_=holds.c.id.type),
            taken.c.org_id,
            _AMOUNT,
            literal("pending"),
            bindparam("b_key", type_=holds.c.idempotency_key.type),
            bindparam("b_reference", type_=holds.c.reference.type),
            func.now() + bindparam("b_expires_in", type_=Interval()),
        ),
    )


_RESERVE = _hold_from(_taken()).returning(holds.c.id)

# The key's rate-limit hit and the reserve in one round trip: the reserve happens only if
# the hit was counted, and a refused hit reserves nothing.
_HIT = ratelimit_repo.HIT.columns(
    column("count", Integer), column("window_start", DateTime(timezone=True))
).cte("hit")
_HELD_AFTER_HIT = _hold_from(_taken(exists(select(_HIT.c.count)))).returning(holds.c.id).cte("held")
_HIT_AND_RESERVE = select(
    select(_HIT.c.count).scalar_subquery(),
    select(_HIT.c.window_start).scalar_subquery(),
    select(_HELD_AFTER_HIT.c.id).scalar_subquery(),
    func.date_trunc("minute", func.now()),
)


def _reserve_params(
    org_id: uuid.UUID, amount: int, key: str, reference: str | None, expires_in: timedelta
) -> dict[str, Any]:
    return {
        "b_org": org_id,
        "b_amount": amount,
        "b_id": uuid.uuid4(),
        "b_key": key,
        "b_reference": reference,
        "b_expires_in": expires_in,
    }


async def reserve(
    direct: DirectPool,
    org_id: uuid.UUID,
    amount: int,
    *,
    key: str,
    reference: str | None,
    expires_in: timedelta,
) -> uuid.UUID | None:
    """The new hold's id, or None when the general path must decide (not enough credit,
    no account, or the idempotency key is taken: then nothing was written)."""
    params = _reserve_params(org_id, amount, key, reference, expires_in)
    try:
        row = await direct.fetchrow(_RESERVE, params)
    except asyncpg.UniqueViolationError:
        return None
    return uuid.UUID(str(row[0])) if row else None


class HitAndHold(NamedTuple):
    """The call counted in its window, and the hold reserved with it (None: not reserved,
    the general path decides). A named tuple: callers (and tests) may still unpack it."""

    rate: RateDecision
    hold_id: uuid.UUID | None


async def hit_and_reserve(
    direct: DirectPool,
    key_id: uuid.UUID,
    limit: int,
    org_id: uuid.UUID,
    amount: int,
    *,
    key: str,
    reference: str | None,
    expires_in: timedelta,
) -> HitAndHold | None:
    """Count the call against the key's window and, if counted, reserve as `reserve` does.

    Raises `rate_limit_exceeded` (nothing reserved) when the window is full. Otherwise the
    decision and the hold's id, or None for the hold when the general path must decide.
    None overall when the idempotency key was taken: nothing was written, not even the hit.
    """
    params = _reserve_params(org_id, amount, key, reference, expires_in)
    params.update({"key": key_id, "limit": limit})
    try:
        row = await direct.fetchrow(_HIT_AND_RESERVE, params)
    except asyncpg.UniqueViolationError:
        return None
    assert row is not None  # a SELECT of scalars always answers one row
    count, window_start, hold_id, window_now = row
    if count is None:
        ratelimit.refused(limit, window_now)
    decision = ratelimit.counted(limit, int(count), window_start)
    return HitAndHold(decision, uuid.UUID(str(hold_id)) if hold_id is not None else None)


# --- settle with its request log, for many calls at once -------------------------------------
#
# Concurrent calls settle together (`domain.relay.group_commit`): one statement and one WAL
# flush for a batch, instead of one each. The items travel as one JSONB array and each
# log and attempt row is read back with the table's own row type (`jsonb_populate_record`),
# so a batch costs one round trip whatever its size. Within an org, each debit's
# `balance_after_micros` is the balance after the debits before it in the batch, exactly
# as if they had run one by one in `ord` order.
#
# Lock order (the ledger's, `domain.ledger.repository`): holds, then credit accounts in
# org id order. A batch's holds are its callers' own (a hold is settled by one call, and
# the sweeper skips locked holds), but its accounts are shared with every other replica's
# batches and with the sweeper, so `locked` takes them sorted before `charged` may write
# one: the UPDATE only reaches a row that `locked` has already returned, and `locked`
# returns them in order as it locks them. FOR NO KEY UPDATE is the lock the UPDATE itself
# takes, so the row's second lock by this transaction is free (a stronger FOR UPDATE would
# make PostgreSQL record both in a MultiXact).

_TABLES = {"holds": holds.name, "accounts": accounts.name, "entries": entries.name}
_SETTLE_MANY: dict[tuple[tuple[str, ...], tuple[str, ...]], TextClause] = {}


def _columns(table: Any, keys: tuple[str, ...]) -> str:
    unknown = [k for k in keys if k not in table.c]
    if unknown:  # names are spliced into SQL: only the table's own columns may be
        raise KeyError(f"{table.name} has no column(s) {unknown}")
    return ", ".join(f'"{k}"' for k in keys)


def _rows_from(name: str, table: Any, keys: tuple[str, ...], field: str) -> str:
    """A CTE that inserts each settled item's `field` object as a row of `table`."""
    columns = _columns(table, keys)  # validates the names first
    # JSON columns straight from the item, so None stays JSON null as SQLAlchemy writes it
    # on the general path (the row type would make it SQL NULL).
    picked = ", ".join(
        f"i.{field}->'{k}'" if isinstance(table.c[k].type, JSON) else f'r."{k}"' for k in keys
    )
    return f"""{name} AS (
    INSERT INTO {table.name} ({columns})
    SELECT {picked}
    FROM settled AS s JOIN input AS i ON i.ord = s.ord,
        jsonb_populate_record(NULL::{table.name}, i.{field}) AS r
    ORDER BY s.ord
)"""  # noqa: S608 - identifiers are our own table and column names


def _settle_many(log_keys: tuple[str, ...], attempt_keys: tuple[str, ...]) -> TextClause:
    """Built once per set of log and attempt columns (a handful exist) and reused."""
    cached = _SETTLE_MANY.get((log_keys, attempt_keys))
    if cached is not None:
        return cached
    sql = f"""
WITH input AS (
    SELECT * FROM jsonb_to_recordset(CAST(:items AS jsonb))
        AS i(ord int, hold_id uuid, cost bigint, log jsonb, attempt jsonb)
), settled AS (
    UPDATE {_TABLES["holds"]} AS h
    SET status = 'settled', settled_micros = i.cost, resolved_at = now()
    FROM input AS i
    WHERE h.id = i.hold_id AND h.status = 'pending' AND h.amount_micros > 0
      AND h.amount_micros >= i.cost AND h.key_budget_micros = 0
      AND (h.budget_reservations IS NULL OR jsonb_typeof(h.budget_reservations) = 'null')
    RETURNING h.id, h.org_id, h.amount_micros, h.api_key_id, h.reference, i.cost, i.ord
), locked AS (
    SELECT a.org_id FROM {_TABLES["accounts"]} AS a
    WHERE a.org_id IN (SELECT org_id FROM settled)
    ORDER BY a.org_id FOR NO KEY UPDATE OF a
), per_org AS (
    SELECT org_id, sum(cost) AS cost, sum(amount_micros) AS amount
    FROM settled GROUP BY org_id
), charged AS (
    UPDATE {_TABLES["accounts"]} AS a
    SET balance_micros = a.balance_micros - p.cost,
        available_micros = a.available_micros + p.amount - p.cost,
        version = a.version + 1, updated_at = now()
    FROM per_org AS p JOIN locked AS l ON l.org_id = p.org_id
    WHERE a.org_id = p.org_id
    RETURNING a.org_id, a.balance_micros
), debit AS (
    INSERT INTO {_TABLES["entries"]} (org_id, kind, amount_micros, balance_after_micros,
        idempotency_key, actor, api_key_id, hold_id, reference)
    SELECT s.org_id, 'debit', -s.cost,
        c.balance_micros + coalesce(sum(s.cost) OVER (PARTITION BY s.org_id ORDER BY s.ord
            ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING), 0),
        'hold:' || s.id || '\\:settle', 'system', s.api_key_id, s.id, s.reference
    FROM settled AS s JOIN charged AS c ON c.org_id = s.org_id
    WHERE s.cost > 0
    ORDER BY s.ord
), {_rows_from("logged", LOGS, log_keys, "log")},
{_rows_from("tried", ATTEMPTS, attempt_keys, "attempt")}
SELECT s.ord FROM settled AS s JOIN charged AS c ON c.org_id = s.org_id
"""  # noqa: S608 - identifiers are our own table and column names, values are bound
    stmt = text(sql)
    if len(_SETTLE_MANY) < 64:
        _SETTLE_MANY[(log_keys, attempt_keys)] = stmt
    return stmt


# Items with other log columns go in statements of their own, in one transaction. Each
# statement takes its own accounts in order, but a batch whose first statement holds org B
# and whose second wants org A would deadlock with one holding A and wanting B; so such a
# batch first locks all its holds, then all its accounts, each in id order.
_LOCK_BATCH = text(
    f"""
WITH held AS (
    SELECT h.id, h.org_id FROM {_TABLES["holds"]} AS h
    WHERE h.id = ANY(CAST(:holds AS uuid[]))
    ORDER BY h.id FOR NO KEY UPDATE OF h
)
SELECT a.org_id FROM {_TABLES["accounts"]} AS a
WHERE a.org_id IN (SELECT org_id FROM held)
ORDER BY a.org_id FOR NO KEY UPDATE OF a
"""  # noqa: S608 - identifiers are our own table names, values are bound
)


@dataclass(frozen=True)
class SettleItem:
    """One call's settle: its hold, what it costs, and its request log and single attempt."""

    hold_id: uuid.UUID
    cost: int
    log: dict[str, Any]
    attempt: dict[str, Any]


def _uuid_text(value: Any) -> str:
    """UUID subclasses (asyncpg returns its own) that orjson does not take as UUIDs."""
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"cannot send {type(value).__name__} in a settle batch")


async def settle_and_log_many(direct: DirectPool, items: Sequence[SettleItem]) -> list[bool]:
    """For each item, True when its hold was settled at its cost and its log written; False
    when nothing was (not the common shape, or not pending): use the general path.

    The batch applies whole or not at all (one statement, or one transaction when items
    differ in their log columns); the caller (`GroupCommit`) retries the items one by one
    if it fails."""
    if LOG_DEFAULTS is None or ATTEMPT_DEFAULTS is None:  # pragma: no cover - schema guard
        return [False] * len(items)
    done = [False] * len(items)
    groups: dict[tuple[tuple[str, ...], tuple[str, ...]], list[dict[str, Any]]] = {}
    for ord_, item in enumerate(items):
        log = {**LOG_DEFAULTS, **item.log}
        attempt = {**ATTEMPT_DEFAULTS, **item.attempt}
        groups.setdefault((tuple(log), tuple(attempt)), []).append(
            {"ord": ord_, "hold_id": item.hold_id, "cost": item.cost, "log": log,
             "attempt": attempt}
        )  # fmt: skip
    statements: list[tuple[TextClause, dict[str, Any]]] = [
        (
            _settle_many(log_keys, attempt_keys),
            # UUIDs and datetimes as text; a naive datetime is UTC (timestamptz columns).
            {"items": orjson.dumps(rows, default=_uuid_text, option=orjson.OPT_NAIVE_UTC).decode()},
        )
        for (log_keys, attempt_keys), rows in groups.items()
    ]
    # Items with other log columns need their own statement; they then share a transaction,
    # so the batch still applies whole or not at all, with its rows locked first (above).
    if len(statements) > 1:
        statements.insert(0, (_LOCK_BATCH, {"holds": [item.hold_id for item in items]}))
    results = await direct.fetch_together(statements)
    for records in results[len(results) - len(groups) :]:
        for record in records:
            done[record[0]] = True
    return done


# --- a client's retry under the same request id --------------------------------------------

_CHARGED_FOR_CLIENT_ID = (
    select(LOGS.c.id)
    .where(
        LOGS.c.org_id == bindparam("org", type_=LOGS.c.org_id.type),
        LOGS.c.client_request_id == bindparam("client", type_=LOGS.c.client_request_id.type),
        LOGS.c.status == "succeeded",
        LOGS.c.cost_micros > 0,
    )
    .limit(1)
)


async def charged_for_client_id(
    direct: DirectPool, org_id: uuid.UUID, client_request_id: str
) -> str | None:
    """The request that already charged a complete answer under this client request id
    (found through its unique partial index), or None."""
    params = {"org": org_id, "client": client_request_id}
    row = await direct.fetchrow(_CHARGED_FOR_CLIENT_ID, params)
    return None if row is None else str(row[0])


def is_duplicate_charge(exc: BaseException) -> bool:
    """True when `exc` is the unique index refusing a second charged answer for one client
    request id (raised by the settle statement, directly or wrapped by SQLAlchemy)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if (
            isinstance(current, asyncpg.UniqueViolationError)
            and getattr(current, "constraint_name", None) == CHARGED_CLIENT_REQUEST_INDEX
        ):
            return True
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else current.__cause__
    return False
