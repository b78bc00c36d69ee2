"""Retention on the time-skipping server: rollups equal the raw logs, only expired content in
rolled months is deleted, and a second run changes nothing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from temporalio.testing import WorkflowEnvironment

from config.runtime import Resources
from tests.billing.conftest import deps_for, rows, scalar
from tests.domain.factories import make_api_key, make_org
from worker import build_worker
from workflows.billing_cycles import RetentionInput, RetentionReport, RetentionWorkflow

NOW = datetime(2031, 3, 15, 12, 0, tzinfo=UTC)
OPEN_MONTH = datetime(2031, 3, 1, tzinfo=UTC)


def at(month: int, day: int, hour: int = 10) -> datetime:
    return datetime(2031, month, day, hour, tzinfo=UTC)


async def _log(
    resources: Resources,
    org: uuid.UUID,
    key: uuid.UUID | None,
    created: datetime,
    *,
    model: str = "gpt-test",
    status: str = "succeeded",
    billing: str = "platform",
    tokens: tuple[int, int] = (100, 20),
    cost: int = 1_234,
    detail: bool = True,
) -> str:
    request_id = f"req_{uuid.uuid4().hex}"
    async with resources.sessions.begin() as s:
        await s.execute(
            text(
                "INSERT INTO request_logs (id, org_id, api_key_id, model, status, http_status,"
                " prompt_tokens, completion_tokens, cost_micros, billing, created_at)"
                " VALUES (:id, :org, :key, :model, :status, 200, :p, :c, :cost, :billing, :at)"
            ),
            {"id": request_id, "org": org, "key": key, "model": model, "status": status,
             "p": tokens[0], "c": tokens[1], "cost": cost, "billing": billing, "at": created},
        )  # fmt: skip
        if detail:
            await _detail(s, request_id, org, created)
    return request_id


async def _detail(s: Any, request_id: str, org: uuid.UUID, created: datetime) -> None:
    await s.execute(
        text(
            "INSERT INTO request_details (request_id, org_id, prompt, response, created_at)"
            " VALUES (:id, :org, '{\"messages\": []}', '{\"choices\": []}', :at)"
        ),
        {"id": request_id, "org": org, "at": created},
    )


async def _callback_attempt(resources: Resources, org: uuid.UUID, created: datetime) -> None:
    task_id = uuid.uuid4()
    async with resources.sessions.begin() as s:
        await s.execute(
            text("INSERT INTO tasks (id, org_id, type, model) VALUES (:id, :org, 'image', 'm')"),
            {"id": task_id, "org": org},
        )
        await s.execute(
            text(
                "INSERT INTO callback_attempts (task_id, org_id, event, webhook_id, attempt, url,"
                " outcome, response_excerpt, created_at) VALUES (:t, :org, 'task.succeeded',"
                " 'msg_1', 1, 'https://example.com/hook', 'delivered', 'ok thanks', :at)"
            ),
            {"t": task_id, "org": org, "at": created},
        )


async def _rate_window(resources: Resources, key: uuid.UUID, start: datetime) -> None:
    async with resources.sessions.begin() as s:
        await s.execute(
            text(
                "INSERT INTO rate_limit_windows (api_key_id, window_start, count)"
                " VALUES (:k, :w, 3)"
            ),
            {"k": key, "w": start},
        )


RAW_BUCKETS = """
    SELECT org_id, api_key_id, model, date_trunc('month', created_at, 'UTC') AS month,
           count(*) AS requests, count(*) FILTER (WHERE status = 'failed') AS failed_requests,
           sum(prompt_tokens) AS prompt_tokens, sum(completion_tokens) AS completion_tokens,
           sum(cost_micros) AS cost_micros, count(*) FILTER (WHERE billing = 'byok') AS byok
    FROM request_logs WHERE created_at < :open GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
"""
ROLLED = """
    SELECT org_id, api_key_id, model, month, requests, failed_requests, prompt_tokens,
           completion_tokens, cost_micros, byok_requests AS byok
    FROM usage_monthly ORDER BY 1, 2, 3, 4
"""


async def _run(env: WorkflowEnvironment, queue: str) -> RetentionReport:
    return await env.client.execute_workflow(
        RetentionWorkflow.run,
        RetentionInput(now=NOW, batch_size=2, org_batch_size=2),
        id=f"retention-test-{uuid.uuid4()}",
        task_queue=queue,
    )


async def test_retention_rolls_up_then_deletes_only_what_expired(
    time_skipping_env: WorkflowEnvironment, resources: Resources
) -> None:
    a = await make_org(resources.sessions, tier="professional")
    b = await make_org(resources.sessions)
    c = await make_org(resources.sessions)
    async with resources.sessions.begin() as s:
        await s.execute(text("UPDATE orgs SET retention_days = 30 WHERE id = :o"), {"o": a})
        await s.execute(text("UPDATE orgs SET retention_days = 1 WHERE id = :o"), {"o": b})
        await s.execute(text("UPDATE orgs SET retention_days = 1 WHERE id = :o"), {"o": c})
    a_key = await make_api_key(resources.sessions, a)
    a_key2 = await make_api_key(resources.sessions, a)
    b_key = await make_api_key(resources.sessions, b)

    # Org a keeps 30 days of content: January and early February have expired.
    expired = [
        await _log(resources, a, a_key, at(1, 10)),
        await _log(resources, a, a_key, at(1, 11), status="failed", tokens=(50, 0), cost=0),
        await _log(resources, a, a_key2, at(1, 31, 23), billing="byok", cost=0, model="other"),
        await _log(resources, a, a_key, at(2, 5)),
        await _log(resources, a, None, at(2, 12)),
    ]
    kept = [
        await _log(resources, a, a_key, at(2, 20)),
        await _log(resources, a, a_key, at(3, 1)),
        await _log(resources, a, a_key, at(3, 10), detail=False),
    ]
    # Org b keeps 1 day: February goes; March 1 has expired too, but March is still open.
    expired.append(await _log(resources, b, b_key, at(2, 25)))
    kept.append(await _log(resources, b, b_key, at(3, 1)))
    kept.append(await _log(resources, b, b_key, at(3, 15, 2)))
    # Org c has January content but no logs, so no rollup: its content is not deleted.
    async with resources.sessions.begin() as s:
        await _detail(s, "req_orphan", c, at(1, 3))
    kept.append("req_orphan")

    await _callback_attempt(resources, a, at(1, 20))  # past a's 30 days: trimmed
    await _callback_attempt(resources, a, at(3, 1))  # inside: kept
    await _rate_window(resources, a_key, NOW - timedelta(hours=2))
    await _rate_window(resources, a_key, NOW - timedelta(minutes=10))

    queue = f"retention-{uuid.uuid4()}"
    async with build_worker(
        time_skipping_env.client, deps_for(resources, resources.settings), queue
    ):
        first = await _run(time_skipping_env, queue)
        rolled_once = await rows(resources, "SELECT * FROM usage_monthly ORDER BY id")
        raw = [dict(r) for r in await rows(resources, RAW_BUCKETS, open=OPEN_MONTH)]
        rolled = [dict(r) for r in await rows(resources, ROLLED)]
        second = await _run(time_skipping_env, queue)
        rolled_twice = await rows(resources, "SELECT * FROM usage_monthly ORDER BY id")
        # A log that lands late in a rolled month: the bucket is recomputed, not added to.
        await _log(resources, a, a_key, at(2, 27), detail=False, cost=1)
        late = await _run(time_skipping_env, queue)

    assert first.rolled_from == datetime(2031, 1, 1, tzinfo=UTC)
    assert first.rolled_to == datetime(2031, 3, 1, tzinfo=UTC)
    assert first.details_deleted == len(expired) == 6
    assert (first.callbacks_trimmed, first.rate_windows_deleted, first.complete) == (1, 1, True)
    remaining = {
        r["request_id"] for r in await rows(resources, "SELECT request_id FROM request_details")
    }
    assert remaining == set(kept) - {kept[2]}  # the one logged without content never had any

    assert rolled == raw
    assert sum(r["requests"] for r in rolled) == 7
    assert {r["month"] for r in rolled} == {
        datetime(2031, 1, 1, tzinfo=UTC),
        datetime(2031, 2, 1, tzinfo=UTC),
    }
    jan_failed = [r for r in rolled if r["failed_requests"]]
    assert len(jan_failed) == 1 and jan_failed[0]["prompt_tokens"] == 150
    assert sum(r["byok"] for r in rolled) == 1

    # The second run finds nothing to do and writes nothing.
    assert (second.buckets_written, second.details_deleted) == (0, 0)
    assert (second.callbacks_trimmed, second.rate_windows_deleted) == (0, 0)
    assert [dict(r) for r in rolled_twice] == [dict(r) for r in rolled_once]
    assert first.buckets_written == 5

    assert late.buckets_written == 1
    raw = [dict(r) for r in await rows(resources, RAW_BUCKETS, open=OPEN_MONTH)]
    assert [dict(r) for r in await rows(resources, ROLLED)] == raw
    assert sum(r["requests"] for r in raw) == 8

    excerpts = await rows(
        resources, "SELECT response_excerpt FROM callback_attempts ORDER BY created_at"
    )
    assert [e["response_excerpt"] for e in excerpts] == [None, "ok thanks"]
    assert await scalar(resources, "SELECT count(*) FROM rate_limit_windows") == 1
    assert await scalar(resources, "SELECT count(*) FROM request_logs") == 12  # never deleted
