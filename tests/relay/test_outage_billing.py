"""The relay's money when PostgreSQL goes away mid-call (a PostgreSQL of this module's own,
stopped by an administrator's fast shutdown and started again; the app is never restarted).

- a reserve that cannot be written dispatches nothing;
- a call whose settle cannot be written after the upstream answered is not charged: JSON
  gets 503, a stream an error event instead of `[DONE]`, and its hold stays pending until
  the sweeper resolves it.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from api.app import create_app
from config.runtime import Resources, build_resources
from config.settings import Settings
from domain.ledger import service as ledger
from schema.db import create_engine
from schema.migrate import upgrade
from tests.fakes.provider import FakeProvider, Fault
from tests.fixtures.processes import Postgres, scratch_dir, wait_for
from tests.fixtures.relay import Tenant, add_channel, add_model, make_tenant

HELLO = {"role": "user", "content": "hello there friend"}


@dataclass
class Outage:
    pg: Postgres
    resources: Resources
    app: FastAPI

    async def stop(self) -> None:
        await asyncio.to_thread(self.pg.stop_fast)

    async def start(self) -> None:
        await asyncio.to_thread(self.pg.restart)

    async def money(self, org_id: uuid.UUID) -> tuple[int, int, int]:
        """(balance, available, pending holds) of the org."""
        async with self.resources.sessions() as s:
            b = await ledger.balance(s, org_id)
        pending = await self.pending(org_id)
        return b.balance_micros, b.available_micros, pending

    async def pending(self, org_id: uuid.UUID) -> int:
        async with self.resources.sessions() as s:
            return int(
                (
                    await s.execute(
                        text("SELECT count(*) FROM holds WHERE org_id = :o AND status = 'pending'"),
                        {"o": org_id},
                    )
                ).scalar_one()
            )

    async def sweep_past_expiry(self) -> None:
        """What the sweeper does once the holds' expiry has passed."""
        async with self.resources.sessions.begin() as s:
            await ledger.expire_stale_holds(s, now=datetime.now(UTC) + timedelta(hours=1))


@pytest.fixture(scope="module")
def outage_root() -> Iterator[Path]:
    with scratch_dir("oxinf-outage-") as root:
        yield root


@pytest.fixture(scope="module")
async def outage(outage_root: Path, settings: Settings) -> AsyncIterator[Outage]:
    pg = Postgres(outage_root / "pg")
    await asyncio.to_thread(pg.start)
    engine = create_engine(pg.url, pool_size=4, timeout_s=2)
    await upgrade(engine)
    # Plans are memoised, so a call can get as far as its reserve with PostgreSQL gone.
    own = settings.model_copy(update={"database_url": pg.url, "plan_cache_ttl_s": 300.0})
    resources = build_resources(own, engine)
    try:
        yield Outage(pg, resources, create_app(resources=resources))
    finally:
        await resources.aclose()
        await asyncio.to_thread(pg.cleanup)


@pytest.fixture
async def up(outage: Outage, fake: FakeProvider) -> AsyncIterator[Outage]:
    if not outage.pg.alive:
        await outage.start()
    yield outage


async def _tenant(outage: Outage, fake: FakeProvider, **key: object) -> tuple[Tenant, str]:
    model = f"gpt-outage-{uuid.uuid4().hex[:6]}"
    await add_model(outage.resources, model)
    await add_channel(outage.resources, fake, f"ch-{model}", [model])
    return await make_tenant(outage.resources, **key), model  # type: ignore[arg-type]


def _client(outage: Outage) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=outage.app), base_url="http://t")


@pytest.mark.parametrize("rpm_limit", [None, 100], ids=["reserve", "hit-and-reserve"])
async def test_a_reserve_that_cannot_be_written_dispatches_nothing(
    up: Outage, fake: FakeProvider, rpm_limit: int | None
) -> None:
    tenant, model = await _tenant(up, fake, rpm_limit=rpm_limit)
    body = {"model": model, "messages": [HELLO], "max_tokens": 8}
    async with _client(up) as client:
        warm = await client.post("/v1/chat/completions", json=body, headers=tenant.auth)
        assert warm.status_code == 200, warm.text  # key and plan now come from memory
        sent = len(fake.calls("/v1/chat/completions"))

        await up.stop()
        down = await client.post("/v1/chat/completions", json=body, headers=tenant.auth)
        assert down.status_code == 503, down.text
        assert down.headers["retry-after"] == "2"
        assert len(fake.calls("/v1/chat/completions")) == sent, "dispatched without a hold"

        await up.start()  # the same app: its pools reconnect by themselves
        again = await client.post("/v1/chat/completions", json=body, headers=tenant.auth)
        assert again.status_code == 200, again.text
    balance, available, pending = await up.money(tenant.org_id)
    assert pending == 0 and balance == available


async def test_json_call_whose_settle_fails_is_answered_503_and_not_charged(
    up: Outage, fake: FakeProvider
) -> None:
    tenant, model = await _tenant(up, fake)
    before = await up.money(tenant.org_id)
    fake.add_fault(Fault(kind="latency", delay_s=2.0, path="/v1/chat/completions"))
    body = {"model": model, "messages": [HELLO], "max_tokens": 8}
    async with _client(up) as client:
        call = asyncio.create_task(
            client.post("/v1/chat/completions", json=body, headers=tenant.auth)
        )
        await wait_for(
            lambda: bool(fake.calls("/v1/chat/completions")), timeout=10, what="dispatched"
        )
        await up.stop()  # while the upstream is still answering
        resp = await call
    assert resp.status_code == 503, resp.text
    assert resp.json()["error"]["code"] == "service_unavailable"
    assert resp.headers["retry-after"] == "2"

    await up.start()
    balance, available, pending = await up.money(tenant.org_id)
    assert balance == before[0], "charged for an answer the client never got"
    assert pending == 1 and available < balance  # left for the sweeper
    await up.sweep_past_expiry()
    assert await up.money(tenant.org_id) == before


async def test_stream_whose_settle_fails_ends_with_an_error_event_and_is_not_charged(
    up: Outage, fake: FakeProvider
) -> None:
    tenant, model = await _tenant(up, fake)
    before = await up.money(tenant.org_id)
    fake.add_fault(Fault(kind="slow_stream", delay_s=0.3, path="/v1/chat/completions"))
    body = {"model": model, "messages": [HELLO], "stream": True}
    async with _client(up) as client:
        call = asyncio.create_task(
            client.post("/v1/chat/completions", json=body, headers=tenant.auth)
        )
        await wait_for(
            lambda: bool(fake.calls("/v1/chat/completions")), timeout=10, what="dispatched"
        )
        await up.stop()  # while the upstream is still streaming
        resp = await call
    await up.resources.relay.drain()
    assert resp.status_code == 200
    events = [ln[6:] for ln in resp.text.splitlines() if ln.startswith("data: ")]
    assert "[DONE]" not in events
    error = json.loads(events[-1])["error"]
    assert (error["code"], error["type"]) == ("service_unavailable", "service_unavailable_error")
    assert "not charged" in error["message"]
    assert any(json.loads(e).get("choices") for e in events[:-1])  # the answer did stream

    await up.start()
    balance, _available, pending = await up.money(tenant.org_id)
    assert balance == before[0] and pending == 1
    await up.sweep_past_expiry()
    assert await up.money(tenant.org_id) == before
