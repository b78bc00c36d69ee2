"""Operator drill-downs: everything 0xinf knows about one request or task, in one place.

The timeline is assembled here rather than in SQL because its parts live in different
stores (PostgreSQL rows and Temporal's workflow history); each entry names its source so a
support engineer can tell which system said what. Temporal being down must not hide the
database half, so its part degrades to a marker instead of failing the page.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client

from domain.callbacks import repository as callbacks_repo
from domain.errors import NotFound
from domain.ops import repository as repo
from domain.results import repository as results_repo
from domain.tasks import repository as tasks_repo
from domain.usage import repository as usage_repo
from schema.ledger import Hold, LedgerEntry
from schema.requests import RequestAttempt, RequestLog
from schema.results import TaskResult
from schema.tasks import CallbackAttempt, Task, TaskOrphanJob, TaskSubmission

log = logging.getLogger("oxinf.ops")

TemporalGetter = Callable[[], Awaitable[Client]]
HISTORY_TIMEOUT_S = 5.0


def row(obj: Any) -> dict[str, Any]:
    """A table row as a JSON-ready dict of every column (operators see all of it)."""
    return {name: getattr(obj, name) for name in type(obj).model_fields}


def temporal_link(ui_base: str, namespace: str, workflow_id: str) -> str:
    return f"{ui_base.rstrip('/')}/namespaces/{quote(namespace)}/workflows/{quote(workflow_id)}"


@dataclass(frozen=True)
class _RequestRecords:
    log: RequestLog
    attempts: list[RequestAttempt]
    hold_ids: list[uuid.UUID]  # the hold the log names, if any
    holds: list[Hold]  # every hold the request took (a fallback may take another)


async def _request_records(session: AsyncSession, request_id: str) -> _RequestRecords:
    found = await repo.get_log(session, request_id)
    if found is None:
        raise NotFound("no such request")
    attempts = await usage_repo.attempts_of(session, request_id)
    hold_ids = [found.hold_id] if found.hold_id else []
    holds = await repo.holds_for(session, found.org_id, request_id, hold_ids)
    return _RequestRecords(found, attempts, hold_ids, holds)


async def request_view(session: AsyncSession, request_id: str) -> dict[str, Any]:
    records = await _request_records(session, request_id)
    all_holds = sorted({h.id for h in records.holds} | set(records.hold_ids))
    entries = await repo.entries_for(session, request_id, all_holds)
    detail = await repo.get_detail(session, request_id)
    return {
        "log": row(records.log),
        "attempts": [row(a) for a in records.attempts],
        "holds": [row(h) for h in records.holds],
        "ledger_entries": [row(e) for e in entries],
        "detail": row(detail) if detail else None,
    }


async def task_view(session: AsyncSession, task_id: uuid.UUID) -> dict[str, Any]:
    task = await tasks_repo.get(session, task_id)
    if task is None:
        raise NotFound("no such task")
    reference = f"task:{task.id}"
    hold_ids = [task.hold_id] if task.hold_id else []
    holds = await repo.holds_for(session, task.org_id, reference, hold_ids)
    entries = await repo.entries_for(session, reference, sorted({h.id for h in holds}))
    callbacks = await callbacks_repo.list_attempts(session, task.org_id, task.id)
    attempts = await tasks_repo.submissions(session, task.id)
    orphans = await tasks_repo.orphans(session, task.id)
    stored = await results_repo.for_task(session, task.id)
    return {
        "task": row(task),
        "holds": [row(h) for h in holds],
        "ledger_entries": [row(e) for e in entries],
        "callback_attempts": [row(c) for c in callbacks],
        # A synchronous result can run to megabytes; the task row holds it once settled.
        "upstream_submissions": [row(a) | {"outcome": None} for a in attempts],
        "orphan_jobs": [row(o) for o in orphans],
        "stored_results": [row(r) for r in stored],
    }


def _at(value: datetime | None) -> datetime:
    return value or datetime.min.replace(tzinfo=UTC)


def _log_entries(found: RequestLog) -> list[dict[str, Any]]:
    return [
        {
            "at": found.created_at,
            "source": "request_log",
            "event": f"request.{found.status}",
            "data": {
                "model": found.model, "http_status": found.http_status,
                "error_code": found.error_code, "cost_micros": found.cost_micros,
                "latency_ms": found.latency_ms, "channel_id": found.channel_id,
            },
        }
    ]  # fmt: skip


def _attempt_entry(a: RequestAttempt) -> dict[str, Any]:
    return {
        "at": a.created_at, "source": "attempt", "event": f"attempt.{a.outcome}",
        "data": {
            "channel_id": a.channel_id, "provider": a.provider, "http_status": a.http_status,
            "latency_ms": a.latency_ms, "error": a.error,
            "upstream_request_id": a.upstream_request_id, "diagnostics": a.diagnostics,
        },
    }  # fmt: skip


def _hold_entries(h: Hold) -> list[dict[str, Any]]:
    out = [
        {
            "at": h.created_at, "source": "hold", "event": "hold.reserved",
            "data": {"hold_id": h.id, "amount_micros": h.amount_micros},
        }
    ]  # fmt: skip
    if h.resolved_at is not None:
        out.append(
            {
                "at": h.resolved_at, "source": "hold", "event": f"hold.{h.status}",
                "data": {"hold_id": h.id, "settled_micros": h.settled_micros,
                         "uncollected_micros": h.uncollected_micros},
            }
        )  # fmt: skip
    return out


def _entry(e: LedgerEntry) -> dict[str, Any]:
    return {
        "at": e.created_at, "source": "ledger", "event": f"ledger.{e.kind}",
        "data": {"entry_id": e.id, "amount_micros": e.amount_micros,
                 "balance_after_micros": e.balance_after_micros, "hold_id": e.hold_id},
    }  # fmt: skip


def _callback_entry(c: CallbackAttempt) -> dict[str, Any]:
    return {
        "at": c.created_at, "source": "callback", "event": f"callback.{c.outcome}",
        "data": {"event": c.event, "attempt": c.attempt, "http_status": c.http_status,
                 "latency_ms": c.latency_ms, "error": c.error, "url": c.url},
    }  # fmt: skip


def _submission_entries(s: TaskSubmission) -> list[dict[str, Any]]:
    """When each attempt went upstream (with the key it carried) and how it ended."""
    sent = {"attempt": s.attempt, "idempotency_key": s.idempotency_key,
            "channel_id": s.channel_id, "provider": s.provider}  # fmt: skip
    out = [{"at": s.created_at, "source": "upstream", "event": "upstream.submitting", "data": sent}]
    if s.resolved_at is not None:
        out.append(
            {"at": s.resolved_at, "source": "upstream", "event": f"upstream.{s.state}",
             "data": sent | {"upstream_job_id": s.upstream_job_id, "sends": s.sends,
                             "adopted": s.adopted, "error": s.error}}
        )  # fmt: skip
    return out


def _orphan_entries(o: TaskOrphanJob) -> list[dict[str, Any]]:
    found = {"upstream_job_id": o.upstream_job_id, "reason": o.reason, "attempt": o.attempt,
             "idempotency_key": o.idempotency_key, "channel_id": o.channel_id,
             "provider": o.provider}  # fmt: skip
    out = [{"at": o.created_at, "source": "upstream", "event": "upstream.orphan_found",
            "data": found}]  # fmt: skip
    if o.resolved_at is not None:
        out.append(
            {"at": o.resolved_at, "source": "upstream", "event": f"upstream.orphan_{o.state}",
             "data": {"upstream_job_id": o.upstream_job_id, "error": o.error}}
        )  # fmt: skip
    return out


def _result_entries(r: TaskResult) -> list[dict[str, Any]]:
    """A result copied into the result store (and deleted by retention), or a copy that
    gave up (the task then kept the provider's URLs)."""
    where = {"index": r.idx, "object_key": r.object_key}
    if r.state == "failed":
        return [{"at": r.created_at, "source": "results", "event": "result.copy_failed",
                 "data": where | {"error": r.error}}]  # fmt: skip
    out = [{"at": r.stored_at, "source": "results", "event": "result.stored",
            "data": where | {"content_type": r.content_type, "bytes": r.size_bytes}}]  # fmt: skip
    if r.deleted_at is not None:
        out.append({"at": r.deleted_at, "source": "results", "event": "result.deleted",
                    "data": where})  # fmt: skip
    return out


def _sorted(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # Stable: same-instant entries keep source order (log before attempts before holds ...).
    return sorted(entries, key=lambda e: _at(e["at"]))


async def request_timeline(session: AsyncSession, request_id: str) -> dict[str, Any]:
    records = await _request_records(session, request_id)
    hold_ids = sorted({h.id for h in records.holds})
    entries = await repo.entries_for(session, request_id, hold_ids)
    timeline = _log_entries(records.log) + [_attempt_entry(a) for a in records.attempts]
    for h in records.holds:
        timeline += _hold_entries(h)
    timeline += [_entry(e) for e in entries]
    return {"kind": "request", "id": request_id, "org_id": records.log.org_id,
            "timeline": _sorted(timeline)}  # fmt: skip


async def workflow_history(
    get_client: TemporalGetter, workflow_id: str
) -> tuple[list[dict[str, Any]], str | None]:
    """(events, None) or ([], why) when Temporal cannot be read right now."""
    try:
        client = await asyncio.wait_for(get_client(), HISTORY_TIMEOUT_S)
        history = await asyncio.wait_for(
            client.get_workflow_handle(workflow_id).fetch_history(), HISTORY_TIMEOUT_S
        )
    except Exception as exc:  # any failure: Temporal down, unknown workflow, timeout
        log.info("workflow history unavailable", extra={"workflow_id": workflow_id})
        return [], f"{type(exc).__name__}: {exc}"[:300] or "unavailable"
    activities: dict[int, str] = {}  # scheduled event id -> activity name
    events = []
    for e in history.events:
        data: dict[str, Any] = {"event_id": e.event_id}
        step = _step_of(e, activities)
        if step:
            data["step"] = step
        events.append(
            {
                "at": e.event_time.ToDatetime(tzinfo=UTC),
                "source": "temporal",
                "event": EventType.Name(e.event_type).removeprefix("EVENT_TYPE_").lower(),
                "data": data,
            }
        )
    return events, None


def _step_of(e: HistoryEvent, activities: dict[int, str]) -> str | None:
    """Which workflow step an event belongs to, so the timeline reads "submit started",
    "poll completed" instead of bare event types. Later activity events name their
    scheduling event, which always comes first in a history."""
    if e.HasField("activity_task_scheduled_event_attributes"):
        name = e.activity_task_scheduled_event_attributes.activity_type.name
        activities[e.event_id] = name
        return name
    for field in ("activity_task_started_event_attributes",
                  "activity_task_completed_event_attributes",
                  "activity_task_failed_event_attributes",
                  "activity_task_timed_out_event_attributes"):  # fmt: skip
        if e.HasField(field):
            return activities.get(getattr(e, field).scheduled_event_id)
    if e.HasField("start_child_workflow_execution_initiated_event_attributes"):
        return e.start_child_workflow_execution_initiated_event_attributes.workflow_type.name
    if e.HasField("workflow_execution_started_event_attributes"):
        return e.workflow_execution_started_event_attributes.workflow_type.name
    if e.HasField("timer_started_event_attributes"):
        return "timer"
    return None


async def task_timeline(
    session: AsyncSession,
    task_id: uuid.UUID,
    get_client: TemporalGetter,
    *,
    ui_base: str,
    namespace: str,
) -> dict[str, Any]:
    task: Task | None = await tasks_repo.get(session, task_id)
    if task is None:
        raise NotFound("no such task")
    view = await task_view(session, task_id)
    timeline: list[dict[str, Any]] = [
        {"at": task.created_at, "source": "task", "event": "task.created",
         "data": {"type": task.type, "model": task.model, "request_id": task.request_id}},
    ]  # fmt: skip
    if task.finished_at is not None:
        timeline.append(
            {"at": task.finished_at, "source": "task", "event": f"task.{task.status}",
             "data": {"error": task.error, "charged_micros": task.charged_micros}}
        )  # fmt: skip
    if task.request_id:
        found = await repo.get_log(session, task.request_id)
        if found is not None:
            timeline += _log_entries(found)
    for h in await repo.holds_for(session, task.org_id, f"task:{task.id}", []):
        timeline += _hold_entries(h)
    timeline += [_entry(e) for e in await repo.entries_for(session, f"task:{task.id}", [])]
    timeline += [_callback_entry(c) for c in await callbacks_repo.list_attempts(
        session, task.org_id, task.id)]  # fmt: skip
    for attempt in await tasks_repo.submissions(session, task.id):
        timeline += _submission_entries(attempt)
    for orphan in await tasks_repo.orphans(session, task.id):
        timeline += _orphan_entries(orphan)
    for stored in await results_repo.for_task(session, task.id):
        timeline += _result_entries(stored)
    workflow_id = task.workflow_id or f"task-{task.id}"
    link = temporal_link(ui_base, namespace, workflow_id)
    events, unavailable = await workflow_history(get_client, workflow_id)
    timeline = _sorted(timeline + events)
    for entry in timeline:
        entry["temporal_url"] = link
    return {
        "kind": "task", "id": str(task.id), "org_id": task.org_id,
        "workflow_id": workflow_id, "temporal_url": link,
        "temporal": {"available": unavailable is None, "error": unavailable},
        "task": view["task"], "timeline": timeline,
    }  # fmt: skip
