"""The delivery schedule under Temporal's time-skipping server, against a real receiver.

Days of retries pass in seconds: the server skips ahead whenever the workflow is only
waiting on a timer, while every attempt is a real HTTP request and a real database row.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.callbacks import CallbackActivities, callback_config
from activities.deps import ActivityDeps
from config.runtime import Resources
from config.settings import ConfigError, Settings
from config.workflow_starter import TemporalWorkflowStarter
from domain.callbacks.start import build_payload
from domain.egress.policy import STRICT
from tests.callbacks.conftest import FinishedTask, attempts, task_status
from tests.callbacks.parent_workflow import CallbackParentWorkflow
from tests.callbacks.receiver import Receiver, Reply
from worker import WORKFLOWS, build_activities
from workflows.callbacks import (
    JITTER,
    RETRY_SCHEDULE,
    CallbackDeliveryWorkflow,
    CallbackSummary,
    callback_workflow_id,
    jittered,
    webhook_id_for,
)

TOTAL = sum(RETRY_SCHEDULE, timedelta(0))


@pytest.fixture
async def queue(
    time_skipping_env: WorkflowEnvironment, resources: Resources, loopback_settings: Settings
) -> AsyncIterator[str]:
    deps = ActivityDeps(
        settings=loopback_settings, sessions=resources.sessions, http=resources.http
    )
    activities = CallbackActivities(deps)
    name = f"test-callbacks-{uuid.uuid4()}"
    async with Worker(
        time_skipping_env.client,
        task_queue=name,
        workflows=[CallbackDeliveryWorkflow, CallbackParentWorkflow],
        activities=[activities.deliver],
    ):
        yield name
    await activities.aclose()


async def _run(client: Client, queue: str, task: FinishedTask, url: str) -> CallbackSummary:
    job = task.job(url)
    return await client.execute_workflow(
        CallbackDeliveryWorkflow.run,
        job,
        id=callback_workflow_id(job.task_id, job.event),
        task_queue=queue,
    )


async def _elapsed(
    env: WorkflowEnvironment, task: FinishedTask, before: datetime, event: str = "task.succeeded"
) -> timedelta:
    """Test time the delivery workflow ran, by the server's own start and close stamps.

    The server clock (`get_current_time`) must have moved at least that far; it may have
    moved further, because the idle test server also skips ahead to unrelated timers.
    """
    described = await env.client.get_workflow_handle(
        callback_workflow_id(task.task_id, event)
    ).describe()
    assert described.close_time is not None
    elapsed = described.close_time - described.start_time
    assert await env.get_current_time() - before >= elapsed
    return elapsed


def test_schedule_spans_about_three_days() -> None:
    assert len(RETRY_SCHEDULE) == 11 and RETRY_SCHEDULE[0] == timedelta(0)
    assert timedelta(days=2.9) < TOTAL < timedelta(days=3)
    assert jittered(timedelta(hours=10), 0.0) == timedelta(hours=9)
    assert jittered(timedelta(hours=10), 0.5) == timedelta(hours=10)
    assert jittered(timedelta(hours=10), 0.999999) < timedelta(hours=11)


async def test_delivered_after_the_receiver_recovers(
    time_skipping_env: WorkflowEnvironment,
    resources: Resources,
    queue: str,
    task: FinishedTask,
) -> None:
    before = await time_skipping_env.get_current_time()
    with Receiver([Reply(503), Reply(500), Reply(502), Reply(200)]) as rx:
        summary = await _run(time_skipping_env.client, queue, task, rx.url())
    elapsed = await _elapsed(time_skipping_env, task, before)
    assert summary == CallbackSummary(
        delivered=True, attempts=4, last_status=200, last_outcome="delivered"
    )
    assert len(rx.received) == 4
    assert len({r.headers["webhook-id"] for r in rx.received}) == 1  # same id on every retry
    rows = await attempts(resources.sessions, task)
    assert [(r.attempt, r.http_status) for r in rows] == [(1, 503), (2, 500), (3, 502), (4, 200)]
    waited = sum(RETRY_SCHEDULE[:4], timedelta(0))  # 5 s + 5 min + 30 min
    assert waited * (1 - JITTER) <= elapsed <= waited * (1 + JITTER) + timedelta(minutes=1)


async def test_gives_up_after_about_three_days(
    time_skipping_env: WorkflowEnvironment,
    resources: Resources,
    queue: str,
    task: FinishedTask,
) -> None:
    before = await time_skipping_env.get_current_time()
    with Receiver([Reply(500, b"still down")]) as rx:
        summary = await _run(time_skipping_env.client, queue, task, rx.url())
    elapsed = await _elapsed(time_skipping_env, task, before)
    assert summary == CallbackSummary(
        delivered=False, attempts=11, last_status=500, last_outcome="http_error"
    )
    assert len(rx.received) == 11
    assert len(await attempts(resources.sessions, task)) == 11
    assert TOTAL * (1 - JITTER) <= elapsed <= TOTAL * (1 + JITTER) + timedelta(minutes=1)
    assert elapsed > timedelta(days=2.5)
    assert await task_status(resources.sessions, task) == "succeeded"


async def test_a_410_stops_after_one_attempt(
    time_skipping_env: WorkflowEnvironment,
    resources: Resources,
    queue: str,
    task: FinishedTask,
) -> None:
    with Receiver([Reply(410)]) as rx:
        summary = await _run(time_skipping_env.client, queue, task, rx.url())
    assert summary == CallbackSummary(
        delivered=False, attempts=1, last_status=410, last_outcome="http_error"
    )
    assert len(rx.received) == 1


async def test_the_client_helper_starts_once(
    time_skipping_env: WorkflowEnvironment,
    resources: Resources,
    queue: str,
    task: FinishedTask,
) -> None:
    client = time_skipping_env.client
    starter = TemporalWorkflowStarter.over(client, task_queue=queue)
    with Receiver([Reply(200)]) as rx:
        payload = build_payload(
            "task.failed", {"id": str(task.task_id)}, await time_skipping_env.get_current_time()
        )
        job = dict(
            task_id=task.task_id, org_id=task.org_id, event="task.failed", url=rx.url(),
            payload=payload,
        )  # fmt: skip
        assert await starter.start_callback(**job) is True
        assert await starter.start_callback(**job) is False  # a retried starter
        handle = client.get_workflow_handle(
            callback_workflow_id(task.task_id, "task.failed"), result_type=CallbackSummary
        )
        summary = await handle.result()
        assert await starter.start_callback(**job) is False  # even after it closed
    assert summary.delivered and summary.attempts == 1
    assert len(rx.received) == 1
    assert rx.received[0].headers["webhook-id"] == webhook_id_for(task.task_id, "task.failed")


async def test_a_task_workflow_starts_it_as_an_abandoned_child(
    dev_server_env: WorkflowEnvironment,
    resources: Resources,
    loopback_settings: Settings,
    task: FinishedTask,
) -> None:
    """On the dev server: the time-skipping test server stops skipping time for the rest of
    the session once a workflow has started a child, which stalls other tests' timers."""
    client = dev_server_env.client
    deps = ActivityDeps(
        settings=loopback_settings, sessions=resources.sessions, http=resources.http
    )
    activities = CallbackActivities(deps)
    queue = f"test-callbacks-{uuid.uuid4()}"
    worker = Worker(
        client,
        task_queue=queue,
        workflows=[CallbackDeliveryWorkflow, CallbackParentWorkflow],
        activities=[activities.deliver],
    )
    # The receiver answers only after the parent has finished: with the default
    # parent-close policy (TERMINATE) the delivery would die with its parent.
    with Receiver([Reply(200, delay_s=1.0)]) as rx:
        async with worker:
            job = task.job(rx.url(), event="task.canceled")
            parent = await client.execute_workflow(
                CallbackParentWorkflow.run, job, id=f"parent-{uuid.uuid4()}", task_queue=queue
            )
            assert parent == "started"
            child = client.get_workflow_handle(
                callback_workflow_id(task.task_id, "task.canceled"), result_type=CallbackSummary
            )
            summary = await child.result()
    await activities.aclose()
    assert summary == CallbackSummary(
        delivered=True, attempts=1, last_status=200, last_outcome="delivered"
    )
    assert len(rx.received) == 1  # started twice by the parent, delivered once


def test_registered_with_the_worker(resources: Resources) -> None:
    deps = ActivityDeps(
        settings=resources.settings, sessions=resources.sessions, http=resources.http
    )
    names = {getattr(fn, "__temporal_activity_definition").name for fn in build_activities(deps)}
    assert "callbacks.deliver" in names
    assert CallbackDeliveryWorkflow in WORKFLOWS


def test_the_escape_hatch_is_off_by_default_and_refused_in_production(settings: Settings) -> None:
    assert Settings.model_fields["tenant_egress_allow_private"].default is False
    assert callback_config(settings).egress == STRICT
    prod = settings.model_copy(update={"env": "production", "tenant_egress_allow_private": True})
    with pytest.raises(ConfigError):
        callback_config(prod)
