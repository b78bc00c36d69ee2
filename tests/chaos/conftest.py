"""One deployment for the chaos tests: its own PostgreSQL, a Temporal dev server, two API
processes and two workers, all on loopback, with the fake upstream over HTTP.

Tests kill parts of it and must leave it whole again (`Stack.ensure_up` restarts whatever a
failed test left down). Holds live seconds here (`CHAT_HOLD_TTL_S`), not 15 minutes, so a
test can wait for their expiry and run the sweeper.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import text
from temporalio.client import Client

from config.runtime import Resources, build_resources
from config.settings import Settings
from config.temporal import connect_temporal
from schema.db import create_engine
from schema.migrate import upgrade
from tests.conftest import TEST_FERNET_KEY, TEST_PEPPER
from tests.fakes.provider import FakeProvider
from tests.fixtures.processes import (
    ApiServer,
    Child,
    Postgres,
    TemporalServer,
    WorkerProcess,
    clean_env,
    scratch_dir,
    wait_for,
)
from tests.fixtures.relay import Tenant, add_channel, add_model, make_tenant
from workflows.holds import HoldSweepWorkflow, SweepInput

CHAT_HOLD_TTL_S = 6
KEY_CACHE_TTL_S = 1.0
TASK_QUEUE = "chaos"
MICROS = 1_000_000


@dataclass
class Stack:
    root: Path
    pg: Postgres
    temporal: TemporalServer
    apis: list[ApiServer]
    workers: list[WorkerProcess]
    fake: FakeProvider
    settings: Settings
    resources: Resources  # the test's own view of the database: seeding and checks
    client: Client | None = None
    models: list[str] = field(default_factory=list)

    @property
    def api(self) -> ApiServer:
        return self.apis[0]

    @property
    def children(self) -> list[Child]:
        return [self.temporal, *self.apis, *self.workers]

    async def ensure_up(self) -> None:
        """Start again whatever an earlier test left down."""
        if not self.pg.alive:
            await asyncio.to_thread(self.pg.restart)
        dead = [c for c in self.children if not c.alive]
        for child in dead:
            child.start()
        for child in dead:
            await child.wait_ready()

    async def temporal_client(self) -> Client:
        if self.client is None:
            self.client = await connect_temporal(self.settings)
        return self.client

    async def chat_model(self, prefix: str = "chaos") -> str:
        """A priced chat model on a channel of the fake upstream, named for this test.
        ("long" in the name makes the fake answer 40 words instead of 8.)"""
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        await add_model(self.resources, name)
        await add_channel(self.resources, self.fake, f"ch-{name}", [name])
        return name

    async def tenant(
        self, *, credits: int = 1_000, credits_micros: int | None = None, **key_fields: Any
    ) -> Tenant:
        micros = credits * MICROS if credits_micros is None else credits_micros
        return await make_tenant(self.resources, credits_micros=micros, **key_fields)

    async def sweep(self) -> None:
        """Run the hold sweeper now, through Temporal and a worker, as its schedule would."""
        client = await self.temporal_client()
        await client.execute_workflow(
            HoldSweepWorkflow.run,
            SweepInput(stuck_task_after_s=3600),
            id=f"sweep-{uuid.uuid4().hex[:8]}",
            task_queue=TASK_QUEUE,
        )

    async def resolve_expired_holds(self, org_id: uuid.UUID, timeout: float = 60) -> int:
        """Wait until every pending hold of the org has expired, then sweep; how many there
        were. Each hold resolves by its expiry: none is left pending after the sweep."""
        pending = await self.scalar(
            "SELECT count(*) FROM holds WHERE org_id = :o AND status = 'pending'", o=org_id
        )

        async def all_expired() -> bool:
            left = await self.scalar(
                "SELECT count(*) FROM holds WHERE org_id = :o AND status = 'pending'"
                " AND expires_at >= now()",
                o=org_id,
            )
            return left == 0

        await wait_for(all_expired, timeout=timeout, what="pending holds expire", interval=0.25)
        await self.sweep()
        assert await self.pending_holds(org_id) == 0, "a hold outlived its expiry and the sweep"
        return int(pending)

    async def scalar(self, sql: str, **params: Any) -> Any:
        async with self.resources.sessions() as s:
            return (await s.execute(text(sql), params)).scalar_one()

    async def rows(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        async with self.resources.sessions() as s:
            return [dict(r) for r in (await s.execute(text(sql), params)).mappings()]

    async def pending_holds(self, org_id: uuid.UUID) -> int:
        return int(
            await self.scalar(
                "SELECT count(*) FROM holds WHERE org_id = :o AND status = 'pending'", o=org_id
            )
        )

    async def check_ledger(self, org_id: uuid.UUID) -> tuple[int, int]:
        """balance = Σ entries and available = balance - Σ pending holds; (balance, held)."""
        row = (
            await self.rows(
                "SELECT a.balance_micros AS balance, a.available_micros AS available,"
                " (SELECT coalesce(sum(amount_micros), 0) FROM ledger_entries"
                "   WHERE org_id = a.org_id) AS entries,"
                " (SELECT coalesce(sum(amount_micros), 0) FROM holds"
                "   WHERE org_id = a.org_id AND status = 'pending') AS held"
                " FROM credit_accounts a WHERE a.org_id = :o",
                o=org_id,
            )
        )[0]
        assert row["balance"] == row["entries"], f"ledger drift: {row}"
        assert row["available"] == row["balance"] - row["held"], f"holds drift: {row}"
        assert row["available"] >= 0
        return int(row["balance"]), int(row["held"])

    async def check_charges_match_logs(self, org_id: uuid.UUID) -> int:
        """Every debit belongs to a logged, settled call and the other way round; the total."""
        debits = await self.rows(
            "SELECT e.amount_micros, l.id AS log_id, l.cost_micros FROM ledger_entries e"
            " LEFT JOIN request_logs l ON l.hold_id = e.hold_id"
            " WHERE e.org_id = :o AND e.kind = 'debit'",
            o=org_id,
        )
        assert all(d["log_id"] is not None for d in debits), "a charge without its request log"
        assert all(-d["amount_micros"] == d["cost_micros"] for d in debits), debits
        charged_logs = await self.scalar(
            "SELECT count(*) FROM request_logs WHERE org_id = :o AND cost_micros > 0", o=org_id
        )
        assert charged_logs == len(debits), "a charged request log without its debit"
        return -sum(int(d["amount_micros"]) for d in debits)


@pytest.fixture(scope="package")
def chaos_root() -> Iterator[Path]:
    with scratch_dir("oxinf-chaos-") as root:
        yield root


@pytest.fixture(scope="package")
async def stack(chaos_root: Path) -> AsyncIterator[Stack]:
    log_dir = chaos_root / "logs"
    log_dir.mkdir()
    data_dir = chaos_root / "data"
    data_dir.mkdir()
    pg = Postgres(chaos_root / "pg")
    await asyncio.to_thread(pg.start)
    fake = FakeProvider(api_key="sk-fake-chaos-" + "0" * 24).start()
    env = {
        "OXINF_ENV": "test",
        "OXINF_DATA_DIR": str(data_dir),
        "OXINF_DATABASE_URL": pg.url,
        "OXINF_HMAC_PEPPER": TEST_PEPPER,
        "OXINF_ENCRYPTION_KEYS": TEST_FERNET_KEY,
        "OXINF_TASK_QUEUE": TASK_QUEUE,
        "OXINF_BCRYPT_ROUNDS": "4",
        "OXINF_DB_POOL_SIZE": "5",
        "OXINF_DB_TIMEOUT_S": "2",
        "OXINF_TEMPORAL_TIMEOUT_S": "2",
        "OXINF_CHAT_HOLD_TTL_S": str(CHAT_HOLD_TTL_S),
        "OXINF_KEY_CACHE_TTL_S": str(KEY_CACHE_TTL_S),
        "OXINF_PLAN_CACHE_TTL_S": "0.5",
        "OXINF_TASK_DEADLINE_IMAGE_S": "120",
        "OXINF_LOG_JSON": "true",
    }
    temporal = TemporalServer(clean_env(env), log_dir, data_dir)
    env["OXINF_TEMPORAL_ADDRESS"] = temporal.address
    settings = Settings(
        env="test",
        data_dir=data_dir,
        database_url=pg.url,
        temporal_address=temporal.address,
        task_queue=TASK_QUEUE,
        hmac_pepper=SecretStr(TEST_PEPPER),
        encryption_keys=SecretStr(TEST_FERNET_KEY),
        bcrypt_rounds=4,
        plan_cache_ttl_s=0.0,
    )
    engine = create_engine(pg.url, pool_size=4, timeout_s=5)
    await upgrade(engine)
    resources = build_resources(settings, engine)
    # The API logs warnings only (an outage answers thousands of 503s); the worker says
    # when it is polling, which is how a test knows it is ready.
    api_env = clean_env(env | {"OXINF_LOG_LEVEL": "WARNING"})
    worker_env = clean_env(env | {"OXINF_LOG_LEVEL": "INFO"})
    stack = Stack(
        root=chaos_root,
        pg=pg,
        temporal=temporal,
        apis=[ApiServer(f"api{i}", api_env, log_dir) for i in range(2)],
        workers=[WorkerProcess(f"worker{i}", worker_env, log_dir) for i in range(2)],
        fake=fake,
        settings=settings,
        resources=resources,
    )
    try:
        temporal.start()
        await temporal.wait_ready()
        for child in [*stack.apis, *stack.workers]:
            child.start()
        await asyncio.gather(*(c.wait_ready() for c in [*stack.apis, *stack.workers]))
        yield stack
    finally:
        for child in reversed(stack.children):
            await asyncio.to_thread(child.stop)
        await resources.aclose()
        fake.stop()
        await asyncio.to_thread(pg.cleanup)


@pytest.fixture
async def chaos(stack: Stack) -> AsyncIterator[Stack]:
    """The stack, whole at the start of the test; the fake's faults cleared after it."""
    await stack.ensure_up()
    yield stack
    stack.fake.reset()


@pytest.fixture
def chaos_fake() -> Iterator[FakeProvider]:
    """A fake upstream of the test's own: fault knobs set on it never reach other suites."""
    with FakeProvider(api_key="sk-fake-chaos-" + "0" * 24) as provider:
        yield provider
