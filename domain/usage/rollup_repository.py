"""The one statement both usage rollups run (monthly into `usage_monthly`, daily into
`usage_daily`): recompute each bucket from the raw request logs and write it only where a
value differs, so a rerun never counts a call twice and a run that changes nothing writes
nothing."""

from __future__ import annotations

from typing import Literal

from sqlalchemy import TextClause, text


def rollup_statement(
    *,
    table: Literal["usage_monthly", "usage_daily"],
    bucket: Literal["month", "day"],
    conflict: str,
) -> TextClause:
    """`bucket` is both the `date_trunc` unit and the table's column (`day`, `month`);
    `conflict` the columns of the table's unique bucket index. Both come from code only."""
    # Names from code only (see the Literal types); every value is a bound parameter.
    return text(
        f"""
    WITH buckets AS (
        SELECT l.org_id, l.api_key_id, l.model,
               date_trunc('{bucket}', l.created_at, 'UTC') AS {bucket},
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
        INSERT INTO {table} AS u (
            id, org_id, api_key_id, model, {bucket}, requests, failed_requests,
            prompt_tokens, completion_tokens, cost_micros, byok_requests, updated_at
        )
        SELECT gen_random_uuid(), org_id, api_key_id, model, {bucket}, requests, failed_requests,
               prompt_tokens, completion_tokens, cost_micros, byok_requests, now()
        FROM buckets
        ON CONFLICT ({conflict}) DO UPDATE SET
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
    """  # noqa: S608
    )
