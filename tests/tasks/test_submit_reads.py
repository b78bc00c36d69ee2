"""A warm task submission reads no catalog, policy or channel row (the relay's memo serves
them), writes the hold and the task in one transaction, and still sees an operator's
channel change at once on this replica."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import event, text
from temporalio.testing import WorkflowEnvironment

from config.runtime import Resources
from domain.relay.cache import TtlCache
from tests.fakes.provider import FakeProvider
from tests.fixtures.relay import balance
from tests.fixtures.tasks import UNIT_PRICES, media_tenant, task_api
from tests.portal.helpers import operator_headers

BODY = {"type": "image", "model": "img-reads", "input": {"prompt": "a quiet harbour"}}


@contextmanager
def statements(resources: Resources) -> Iterator[list[str]]:
    """Every SQL statement the app's engine sends while the block runs."""
    seen: list[str] = []

    def record(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
        seen.append(" ".join(statement.split()))

    engine = resources.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


@pytest.fixture
async def warm_memo(resources: Resources) -> AsyncIterator[None]:
    """The memo as production runs it (tests run with it off)."""
    saved = resources.relay.cache
    resources.relay.cache = TtlCache(60.0)
    try:
        yield
    finally:
        resources.relay.cache = saved


async def test_a_warm_submission_reads_only_what_it_writes(
    resources: Resources,
    time_skipping_env: WorkflowEnvironment,
    media_fake: FakeProvider,
    warm_memo: None,
) -> None:
    tenant, start = await media_tenant(resources, media_fake, "img-reads", "image")
    async with task_api(resources, time_skipping_env) as api:
        first = await api.submit(tenant.auth, **BODY)  # loads the memo
        with statements(resources) as sent:
            second = await api.submit(tenant.auth, **BODY)
        for task_id in (first, second):
            assert (await api.finished(tenant.auth, task_id))["status"] == "succeeded"

    tables_read = {
        table
        for sql in sent
        if sql.startswith("SELECT")
        for table in ("models", "model_prices", "channels", "orgs", "budget_policies")
        if f" {table} " in f"{sql} " or f"{table}." in sql
    }
    assert tables_read == set(), sent
    assert not any(s.startswith("SAVEPOINT") for s in sent), sent  # no Idempotency-Key
    writes = [s.split(" ")[0] + " " + s.split(" ")[2] for s in sent if s.startswith("INSERT")]
    assert sorted(writes) == ["INSERT holds", "INSERT tasks"], sent

    async with resources.sessions() as session:
        row = (
            await session.execute(
                text(
                    "SELECT t.hold_id = h.id AS linked, h.reference FROM tasks t "
                    "JOIN holds h ON h.id = t.hold_id WHERE t.id = :id"
                ),
                {"id": uuid.UUID(second)},
            )
        ).one()
    assert row.linked and row.reference == f"task:{second}"
    end, available = await balance(resources, tenant.org_id)
    assert start - end == 2 * UNIT_PRICES["image"] and available == end


async def test_disabling_the_channel_refuses_the_next_submission_at_once(
    client: httpx.AsyncClient,
    resources: Resources,
    time_skipping_env: WorkflowEnvironment,
    media_fake: FakeProvider,
    warm_memo: None,
) -> None:
    tenant, start = await media_tenant(resources, media_fake, "img-reads", "image")
    async with task_api(resources, time_skipping_env) as api:
        await api.finished(tenant.auth, await api.submit(tenant.auth, **BODY))
        ops = await operator_headers(client, resources)
        channels = (await client.get("/admin/v1/channels", headers=ops)).json()["data"]
        (channel,) = [c for c in channels if "img-reads" in c["models"]]
        off = await client.patch(
            f"/admin/v1/channels/{channel['id']}", json={"enabled": False}, headers=ops
        )
        assert off.status_code == 200, off.text
        refused = await api.client.post("/v1/tasks", json=BODY, headers=tenant.auth)
    assert refused.status_code == 503, refused.text
    assert refused.json()["error"]["code"] == "service_unavailable"
    end, available = await balance(resources, tenant.org_id)
    assert start - end == UNIT_PRICES["image"] and available == end  # the refusal cost nothing
