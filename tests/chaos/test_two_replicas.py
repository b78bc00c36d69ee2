"""Two API processes and two workers on one PostgreSQL and Temporal: money, rate limits and
key revocation are shared, because no replica keeps them to itself."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import httpx
import pytest
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

from tests.chaos.conftest import KEY_CACHE_TTL_S, TASK_QUEUE, Stack
from tests.fixtures.portal import PASSWORD
from tests.fixtures.processes import wait_for

HELLO = {"role": "user", "content": "hello there friend"}
COST = 3 * 150 + 8 * 600  # 3 prompt and 8 answer tokens at the test prices
RPM = 10


async def _pollers(chaos: Stack) -> set[int]:
    """Process ids of the workers polling the task queue (identities are `pid@host`)."""
    client = await chaos.temporal_client()
    described = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=TASK_QUEUE),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
    )
    return {int(p.identity.split("@")[0]) for p in described.pollers}


@pytest.mark.timeout_sensitive
async def test_two_replicas_share_credits_rate_limits_and_revocations(chaos: Stack) -> None:
    assert len(chaos.apis) == 2 and len(chaos.workers) == 2
    assert {w.pid for w in chaos.workers} <= await _pollers(chaos)
    model = await chaos.chat_model()
    body = {"model": model, "messages": [HELLO], "max_tokens": 8}
    clients = [httpx.AsyncClient(base_url=api.base_url, timeout=30) for api in chaos.apis]
    try:
        # Concurrent calls through both replicas never spend more than the org has.
        poor = await chaos.tenant(credits_micros=30 * (COST + 2_000))
        start, _ = await chaos.check_ledger(poor.org_id)
        gate = asyncio.Semaphore(32)

        async def call(i: int) -> int:
            async with gate:
                resp = await clients[i % 2].post(
                    "/v1/chat/completions", json=body, headers=poor.auth
                )
            if resp.status_code == 402:
                assert resp.json()["error"]["code"] == "insufficient_credits"
            return resp.status_code

        statuses = Counter(await asyncio.gather(*(call(i) for i in range(120))))
        assert set(statuses) == {200, 402}, statuses
        upstream = [r for r in chaos.fake.calls("/v1/chat/completions") if r.json["model"] == model]
        assert len(upstream) == statuses[200], "a refused call reached the upstream"
        end, held = await chaos.check_ledger(poor.org_id)
        assert held == 0 and start - end == statuses[200] * COST <= start

        # One key's per-minute limit holds across both replicas.
        limited = await chaos.tenant(rpm_limit=RPM)

        async def early_in_minute() -> bool:  # the window is PostgreSQL's current minute
            second = await chaos.scalar("SELECT extract(second FROM now())")
            return float(second) < 45

        await wait_for(early_in_minute, timeout=20, what="a fresh minute", interval=0.5)
        replies = await asyncio.gather(
            *(
                clients[i % 2].post("/v1/chat/completions", json=body, headers=limited.auth)
                for i in range(RPM + 6)
            )
        )
        rpm = Counter(r.status_code for r in replies)
        assert rpm == {200: RPM, 429: 6}, rpm
        assert all("retry-after" in r.headers for r in replies if r.status_code == 429)

        # A key revoked through one replica stops at once there, and on the other within
        # the key cache's lifetime.
        revoked = await chaos.tenant()
        for c in clients:  # each replica has the key in its cache
            warm = await c.post("/v1/chat/completions", json=body, headers=revoked.auth)
            assert warm.status_code == 200, warm.text
        email = await chaos.scalar("SELECT email FROM users WHERE id = :u", u=revoked.user_id)
        login = await clients[0].post(
            "/portal/v1/auth/login", json={"email": email, "password": PASSWORD}
        )
        assert login.status_code == 200, login.text
        session = {"authorization": f"Bearer {login.json()['token']}"}
        gone = await clients[0].delete(f"/portal/v1/api-keys/{revoked.key_id}", headers=session)
        assert gone.is_success, gone.text
        revoked_at = time.monotonic()
        here = await clients[0].post("/v1/chat/completions", json=body, headers=revoked.auth)
        assert here.status_code == 401

        async def refused_there() -> bool:
            resp = await clients[1].post("/v1/chat/completions", json=body, headers=revoked.auth)
            return resp.status_code == 401

        await wait_for(refused_there, timeout=10, what="the other replica refuses the key")
        stale_s = time.monotonic() - revoked_at
        print(
            f"\ntwo replicas: {dict(statuses)} for 120 calls on credits for "
            f"{start // COST} (none overspent); RPM {RPM}: {dict(rpm)}; revoked key refused "
            f"by the other replica after {stale_s:.2f}s (cache {KEY_CACHE_TTL_S:g}s)"
        )
        assert stale_s <= KEY_CACHE_TTL_S + 1.0
    finally:
        for c in clients:
            await c.aclose()
