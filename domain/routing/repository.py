"""SQL for channels and their breakers."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from schema.base import table_of
from schema.channels import Channel
from schema.db import Executor

C = table_of(Channel)


async def insert_channel(session: AsyncSession, values: dict[str, Any]) -> Channel:
    channel_id = uuid.uuid4()
    await session.execute(insert(C).values(id=channel_id, **values))
    found = await get_channel(session, channel_id)
    assert found is not None
    return found


async def get_channel(session: AsyncSession, channel_id: uuid.UUID) -> Channel | None:
    stmt = select(Channel).where(C.c.id == channel_id).execution_options(populate_existing=True)
    return (await session.execute(stmt)).scalar_one_or_none()


async def get_by_name(session: AsyncSession, name: str) -> Channel | None:
    return (await session.execute(select(Channel).where(C.c.name == name))).scalar_one_or_none()


async def list_channels(session: AsyncSession) -> list[Channel]:
    rows = await session.execute(select(Channel).order_by(C.c.priority.desc(), C.c.name))
    return list(rows.scalars())


async def update_channel(
    session: AsyncSession, channel_id: uuid.UUID, values: dict[str, Any]
) -> bool:
    stmt = (
        update(C)
        .where(C.c.id == channel_id)
        .values(**values, updated_at=text("now()"))
        .returning(C.c.id)
    )
    return (await session.execute(stmt)).first() is not None


async def delete_channel(session: AsyncSession, channel_id: uuid.UUID) -> bool:
    stmt = delete(C).where(C.c.id == channel_id).returning(C.c.id)
    return (await session.execute(stmt)).first() is not None


async def serving(session: AsyncSession, model: str, kind: str, group: str) -> list[Channel]:
    """Enabled channels of the group that serve the model for this kind of call."""
    stmt = select(Channel).where(
        C.c.enabled.is_(True),
        C.c.group == group,
        C.c.models.contains([model]),
        C.c.types.contains([kind]),
    )
    return list((await session.execute(stmt)).scalars())


# --- breaker -----------------------------------------------------------------------------

_SUCCESS = text(
    """
    UPDATE channels SET consecutive_failures = 0, breaker_state = 'closed',
           breaker_opened_at = NULL
    WHERE id = :id AND (consecutive_failures <> 0 OR breaker_state <> 'closed')
    """
)
_FAILURE = text(
    """
    UPDATE channels SET
      consecutive_failures = consecutive_failures + 1,
      breaker_state = CASE
        WHEN breaker_state = 'half_open' OR consecutive_failures + 1 >= :threshold THEN 'open'
        ELSE breaker_state END,
      breaker_opened_at = CASE
        WHEN breaker_state = 'half_open' OR consecutive_failures + 1 >= :threshold
          THEN CAST(:now AS timestamptz)
        ELSE breaker_opened_at END
    WHERE id = :id
    RETURNING breaker_state
    """
)
_CLAIM_TRIAL = text(
    """
    UPDATE channels SET breaker_state = 'half_open', breaker_opened_at = CAST(:now AS timestamptz)
    WHERE id = :id AND breaker_state IN ('open', 'half_open')
      AND breaker_opened_at <= CAST(:now AS timestamptz) - make_interval(secs => :cooldown)
    RETURNING id
    """
)


async def record_success(session: Executor, channel_id: uuid.UUID) -> None:
    await session.execute(_SUCCESS, {"id": channel_id})


async def record_failure(
    session: AsyncSession, channel_id: uuid.UUID, threshold: int, now: datetime
) -> str:
    """Count a failure; the breaker opens at `threshold` in a row, stamped `now` (the
    caller's clock, as `claim_trial` compares with it)."""
    params = {"id": channel_id, "threshold": threshold, "now": now}
    row = (await session.execute(_FAILURE, params)).first()
    return str(row[0]) if row else "closed"


async def claim_trial(
    session: AsyncSession, channel_id: uuid.UUID, cooldown_s: float, now: datetime
) -> bool:
    """One caller at a time gets to probe an open channel once its cooldown has passed."""
    params = {"id": channel_id, "cooldown": cooldown_s, "now": now}
    return (await session.execute(_CLAIM_TRIAL, params)).first() is not None


async def ciphertext_batch(
    session: AsyncSession, after: uuid.UUID | None, limit: int
) -> list[tuple[uuid.UUID, str]]:
    stmt = (
        select(C.c.id, C.c.secret_ciphertext)
        .where(C.c.secret_ciphertext.is_not(None))
        .order_by(C.c.id)
        .limit(limit)
    )
    if after is not None:
        stmt = stmt.where(C.c.id > after)
    return [(row[0], row[1]) for row in (await session.execute(stmt)).all()]


async def replace_ciphertext(session: AsyncSession, row_id: uuid.UUID, old: str, new: str) -> bool:
    stmt = (
        update(C)
        .where(C.c.id == row_id, C.c.secret_ciphertext == old)
        .values(secret_ciphertext=new)
        .returning(C.c.id)
    )
    return (await session.execute(stmt)).first() is not None
