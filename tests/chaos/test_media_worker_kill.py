"""Chaos: the worker is SIGKILLed while media tasks are inside the upstream submit call.

The fake upstream creates each job at once and then holds its answer, so the kill lands in
the window the gateway used to lose: the job exists upstream, the worker never learns its
id. A new worker must finish every task with exactly one live upstream job (the one the task
polls and bills), every hold resolved and the books balanced. Run once with a provider that
honours idempotency keys and once with one that ignores them (only the lookup by client
reference can find the job then).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from config.runtime import Resources
from config.temporal import TemporalHandle
from tests.domain.invariants import assert_books_balance
from tests.fakes.provider import FakeProvider, Fault
from tests.fixtures.conditions import eventually
from tests.fixtures.relay import balance, pending_holds
from tests.fixtures.tasks import UNIT_PRICES, media_tenant

ROOT = Path(__file__).resolve().parents[2]
TASKS = 5
SECONDS = 2  # video length: each task costs SECONDS units
HELD_ANSWER_S = 20.0  # far longer than it takes to see the submits arrive and kill
TERMINAL = ("succeeded", "failed", "canceled")


class Workers:
    """`oxinf worker` child processes on one task queue; logs kept for a failing run."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs, self.procs = env, logs, list[subprocess.Popen[bytes]]()

    def spawn(self) -> subprocess.Popen[bytes]:
        log = (self.logs / f"worker-{len(self.procs)}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli", "worker"],
            env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


@pytest.fixture
def workers(
    resources: Resources, dev_server_env: WorkflowEnvironment, database_url: str, tmp_path: Path
) -> Iterator[Workers]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OXINF_")} | {
        "OXINF_ENV": "test",
        "OXINF_DATA_DIR": str(tmp_path),
        "OXINF_DATABASE_URL": database_url,
        "OXINF_TEMPORAL_ADDRESS": dev_server_env.client.service_client.config.target_host,
        "OXINF_TASK_QUEUE": f"chaos-{uuid.uuid4()}",
        "OXINF_HMAC_PEPPER": resources.identity.pepper,
        "OXINF_ENCRYPTION_KEYS": ",".join(resources.settings.encryption_key_list),
        "OXINF_LOG_LEVEL": "WARNING",
    }
    pool = Workers(env, tmp_path)
    try:
        yield pool
    finally:
        pool.stop_all()


@pytest.fixture
async def api(
    resources: Resources, dev_server_env: WorkflowEnvironment, workers: Workers
) -> AsyncIterator[httpx.AsyncClient]:
    saved = resources.temporal, resources.settings
    resources.settings = resources.settings.model_copy(
        update={"task_queue": workers.env["OXINF_TASK_QUEUE"]}
    )
    resources.temporal = TemporalHandle(resources.settings, dev_server_env.client)
    app = create_app(resources=resources)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as client:
            yield client
    finally:
        resources.temporal, resources.settings = saved


async def _tasks(resources: Resources, ids: list[str]) -> dict[str, tuple[str, str | None]]:
    """Each task's status and the upstream job it polls, straight from the table."""
    async with resources.sessions() as s:
        rows = await s.execute(
            text("SELECT id::text, status, upstream_job_id FROM tasks WHERE id::text = ANY(:i)"),
            {"i": ids},
        )
    return {r[0]: (r[1], r[2]) for r in rows}


@pytest.mark.timeout_sensitive
@pytest.mark.parametrize("keys", ["honoured", "ignored"])
async def test_worker_killed_inside_submit_leaves_one_live_job_per_task(
    api: httpx.AsyncClient,
    workers: Workers,
    resources: Resources,
    chaos_fake: FakeProvider,
    keys: str,
) -> None:
    tenant, start = await media_tenant(
        resources, chaos_fake, "vid-chaos", "video", credits_micros=10_000 * 1_000_000
    )
    chaos_fake.honour_idempotency_keys = keys == "honoured"
    chaos_fake.job_polls_until_done = 1
    chaos_fake.add_fault(
        Fault("slow_answer", path="/jobs", method="POST", times=None, delay_s=HELD_ANSWER_S)
    )
    first = workers.spawn()
    ids = []
    for i in range(TASKS):
        resp = await api.post(
            "/v1/tasks",
            json={"type": "video", "model": "vid-chaos",
                  "input": {"prompt": f"chaos {i}", "seconds": SECONDS}},
            headers=tenant.auth,
        )  # fmt: skip
        assert resp.status_code == 202, resp.text
        ids.append(resp.json()["id"])

    async def all_inside_submit() -> bool:
        return chaos_fake.answers_held >= TASKS

    await eventually(all_inside_submit, within=40, what=f"{TASKS} submits held upstream")
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    before = await _tasks(resources, ids)
    assert all(job is None for _, job in before.values()), before  # killed before recording
    chaos_fake.clear_faults()  # upstream answers promptly from now on
    workers.spawn()

    async def all_terminal() -> dict[str, tuple[str, str | None]] | None:
        now = await _tasks(resources, ids)
        return now if all(status in TERMINAL for status, _ in now.values()) else None

    finals = await eventually(all_terminal, within=50, what="every task terminal")

    assert [status for status, _ in finals.values()] == ["succeeded"] * TASKS, finals
    live = chaos_fake.live_jobs()
    polled = sorted(job for _, job in finals.values() if job is not None)
    assert sorted(j.id for j in live) == polled, "exactly one live upstream job per task"
    assert len(polled) == TASKS
    by_job = {job: task_id for task_id, (_, job) in finals.items()}
    for job in live:  # each made by its own task's first attempt, found again after the kill
        assert job.client_reference == f"task-{by_job[job.id]}-1"
    end, available = await balance(resources, tenant.org_id)
    assert start - end == TASKS * SECONDS * UNIT_PRICES["video"] and available == end
    assert await pending_holds(resources) == 0
    await assert_books_balance(resources.sessions, tenant.org_id)
