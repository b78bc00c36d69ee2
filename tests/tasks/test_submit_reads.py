"""Task submission with the relay's memo warm, as production runs it (tests run with it
off): a warm submission reads no catalog, policy or channel row and writes the hold and
the task in one transaction; a refused one leaves nothing dead in the memo; a channel
change applies at once on this replica; and concurrent requests under one Idempotency-Key
still get one task, even when the org can pay for only one.

No worker runs here: the workflows started stay queued, so the only statements are the
submissions' own."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import event, text
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from config.runtime import Resources
from config.temporal import TemporalHandle
from domain.relay.cache import TtlCache
from tests.fakes.provider import FakeProvider
from tests.fixtures.relay import add_channel, add_model, balance
from tests.fixtures.tasks import UNIT_PRICES, media_tenant
from tests.portal.helpers import HELLO, operator_headers

BODY = {"type": "image", "model": "img-reads", "input": {"prompt": "a quiet harbour"}}


@pytest.fixture
async def api(
    resources: Resources, time_skipping_env: WorkflowEnvironment
) -> AsyncIterator[httpx.AsyncClient]:
    """The app with the memo on and workflows started on a queue no worker polls."""
    saved = resources.temporal, resources.settings, resources.relay.cache
    resources.settings = resources.settings.model_copy(
        update={"task_queue": f"unpolled-{uuid.uuid4()}"}
    )
    resources.temporal = TemporalHandle(resources.settings, time_skipping_env.client)
    resources.relay.cache = TtlCache(60.0)
    try:
        transport = httpx.ASGITransport(app=create_app(resources=resources))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client
    finally:
        resources.temporal, resources.settings, resources.relay.cache = saved


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


async def submit(api: httpx.AsyncClient, auth: dict[str, str], **headers: str) -> httpx.Response:
    return await api.post("/v1/tasks", json=BODY, headers={**auth, **headers})


async def test_a_warm_submission_reads_only_what_it_writes(
    api: httpx.AsyncClient, resources: Resources, media_fake: FakeProvider
) -> None:
    tenant, start = await media_tenant(resources, media_fake, "img-reads", "image")
    assert (await submit(api, tenant.auth)).status_code == 202  # loads the memo
    with statements(resources) as sent:
        second = await submit(api, tenant.auth)
    assert second.status_code == 202, second.text

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

    task_id = uuid.UUID(second.json()["id"])
    async with resources.sessions() as session:
        row = (
            await session.execute(
                text(
                    "SELECT h.status, h.amount_micros, h.reference FROM tasks t "
                    "JOIN holds h ON h.id = t.hold_id WHERE t.id = :id"
                ),
                {"id": task_id},
            )
        ).one()
    assert tuple(row) == ("pending", UNIT_PRICES["image"], f"task:{task_id}")
    end, available = await balance(resources, tenant.org_id)
    assert end == start and start - available == 2 * UNIT_PRICES["image"]


async def test_a_refused_submission_leaves_the_memo_usable(
    api: httpx.AsyncClient, resources: Resources, media_fake: FakeProvider
) -> None:
    """A 402 rolls its unit of work back; what admission memoised on the way (the org
    above all) must not have been read in it, or every later call for the org would meet
    an expired row."""
    tenant, start = await media_tenant(
        resources, media_fake, "img-reads", "image", credits_micros=UNIT_PRICES["image"] - 1
    )
    for _ in range(2):  # the first fills the memo, the second reads it
        refused = await submit(api, tenant.auth)
        assert refused.status_code == 402, refused.text
        assert refused.json()["error"]["code"] == "insufficient_credits"
    await add_model(resources, "chat-reads")
    await add_channel(resources, media_fake, "chat", ["chat-reads"])
    chat = await api.post(
        "/v1/chat/completions",
        json={"model": "chat-reads", "messages": [HELLO], "max_tokens": 5},
        headers=tenant.auth,
    )
    assert chat.status_code == 200, chat.text  # chat's plan reads the same memoised org
    end, available = await balance(resources, tenant.org_id)
    assert end == available and 0 < start - end < UNIT_PRICES["image"]  # the chat's charge


async def test_one_idempotency_key_is_one_task_even_when_only_one_is_affordable(
    api: httpx.AsyncClient, resources: Resources, media_fake: FakeProvider
) -> None:
    tenant, start = await media_tenant(
        resources, media_fake, "img-reads", "image", credits_micros=UNIT_PRICES["image"]
    )
    replies = await asyncio.gather(
        *(submit(api, tenant.auth, **{"idempotency-key": "only-one"}) for _ in range(6))
    )
    assert [r.status_code for r in replies] == [202] * 6, [r.text for r in replies]
    assert len({r.json()["id"] for r in replies}) == 1
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in replies) == 5
    end, available = await balance(resources, tenant.org_id)
    assert end == start and available == 0  # one hold, for the one task


async def test_disabling_the_channel_refuses_the_next_submission_at_once(
    api: httpx.AsyncClient,
    client: httpx.AsyncClient,
    resources: Resources,
    media_fake: FakeProvider,
) -> None:
    tenant, start = await media_tenant(resources, media_fake, "img-reads", "image")
    assert (await submit(api, tenant.auth)).status_code == 202  # the memo holds the channel
    ops = await operator_headers(client, resources)
    channels = (await client.get("/admin/v1/channels", headers=ops)).json()["data"]
    (channel,) = [c for c in channels if "img-reads" in c["models"]]
    off = await client.patch(
        f"/admin/v1/channels/{channel['id']}", json={"enabled": False}, headers=ops
    )
    assert off.status_code == 200, off.text
    refused = await submit(api, tenant.auth)
    assert refused.status_code == 503, refused.text
    assert refused.json()["error"]["code"] == "service_unavailable"
    end, available = await balance(resources, tenant.org_id)
    assert end == start and start - available == UNIT_PRICES["image"]  # the 503 held nothing
