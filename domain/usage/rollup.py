"""Monthly usage rollups: `request_logs` summed into `usage_monthly` buckets.

A bucket is (org, api key, model, UTC month). Every run *recomputes* the buckets it covers
from the raw logs and writes them only where a value differs, so running it twice, or over a
month that was already rolled, can never count a request twice, and a run that changes
nothing writes nothing. Request logs are never deleted, so a bucket can always be rebuilt;
the rollup is what lets usage pages stay cheap and lets retention delete content details
safely.

Runs per batch of org ids so each statement reads the logs through the (org_id, created_at)
index instead of scanning the table for a time range.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

_ROLLUP = text(
    """
    WITH buckets AS (
        SELECT l.org_id, l.api_key_id, l.model,
               date_trunc('month', l.created_at, 'UTC') AS month,
               count(*) AS requests,
               count(*) FILTER (WHERE l.status = 'failed') AS failed_requests,
               coalesce(sum(l.prompt_tokens), 0) AS prompt_tokens,
               coalesce(sum(l.completion_tokens), 0) AS completion_tokens,
               coalesce(sum(l.cost_micros), 0) AS cost_micros,
               count(*) FILTER (WHERE l.billing = 'byok') AS byok_requests
        FROM request_logs l
        WHERE l.org_id = ANY(:org_ids) AND l.created_at >= :start AND l.created_at < :end
        GROUP BY 1, 2, 3, 4
    ), written AS (
        INSERT INTO usage_monthly AS u (
            id, org_id, api_key_id, model, month, requests, failed_requests,
            prompt_tokens, completion_tokens, cost_micros, byok_requests, updated_at
        )
        SELECT gen_random_uuid(), org_id, api_key_id, model, month, requests, failed_requests,
               prompt_tokens, completion_tokens, cost_micros, byok_requests, now()
        FROM buckets
        ON CONFLICT (org_id, api_key_id, model, month) DO UPDATE SET
            requests = EXCLUDED.requests,
            failed_requests = EXCLUDED.failed_requests,
            prompt_tokens = EXCLUDED.prompt_tokens,
            completion_tokens = EXCLUDED.completion_tokens,
            cost_micros = EXCLUDED.cost_micros,
            byok_requests = EXCLUDED.byok_requests,
            updated_at = now()
        WHERE (u.requests, u.failed_requests, u.prompt_tokens, u.completion_tokens,
               u.cost_micros, u.byok_requests)
              IS DISTINCT FROM
              (EXCLUDED.requests, EXCLUDED.failed_requests, EXCLUDED.prompt_tokens,
               EXCLUDED.completion_tokens, EXCLUDED.cost_micros, EXCLUDED.byok_requests)
        RETURNING 1
    )
    SELECT count(*) FROM written
    """
)


async def rollup_orgs(
    session: AsyncSession, org_ids: Sequence[uuid.UUID], *, start: datetime, end: datetime
) -> int:
    """Recompute every bucket of these orgs in [start, end); returns buckets written."""
    if not org_ids or start >= end:
        return 0
    params = {"org_ids": list(org_ids), "start": start, "end": end}
    return int((await session.execute(_ROLLUP, params)).scalar_one())
