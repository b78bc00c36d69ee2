"""The support timeline: find a request or task by any id someone quotes, then show
everything 0xinf and Temporal know about it in time order.

The events themselves come from `domain.ops.service` (the same timeline `/ops/v1` serves);
this module finds what an id names, joins a request with the tasks it submitted, and turns
each event's data into labelled facts a person can read (credits as exact decimals).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from domain.ops import repository as ops_repo
from domain.ops import service as ops
from domain.ops.service import TemporalGetter
from domain.routing import repository as channels_repo
from domain.tasks import repository as tasks_repo
from schema.requests import RequestLog
from schema.tasks import Task
from web.render import credits

LOOKUP_LIMIT = 20
EARLIEST = datetime.min.replace(tzinfo=UTC)
HIDDEN = frozenset({"event_id"})  # shown as its own column for Temporal events


@dataclass(frozen=True)
class Match:
    kind: Literal["request", "task"]
    id: str
    at: datetime | None
    summary: str

    @property
    def href(self) -> str:
        return f"/console/ops/{'requests' if self.kind == 'request' else 'tasks'}/{self.id}"


@dataclass(frozen=True)
class Fact:
    label: str
    value: str
    href: str | None = None


@dataclass(frozen=True)
class Event:
    at: datetime | None
    source: str
    event: str
    facts: list[Fact]
    temporal_url: str | None

    @property
    def stamp(self) -> tuple[str, str]:
        """(date, time to the millisecond), in UTC: what logs elsewhere are stamped in."""
        if self.at is None:
            return "", "—"
        utc = self.at.astimezone(UTC)
        return utc.strftime("%Y-%m-%d"), utc.strftime("%H:%M:%S.%f")[:-3]


@dataclass(frozen=True)
class Workflow:
    workflow_id: str
    url: str
    task_id: str
    available: bool
    error: str | None


@dataclass(frozen=True)
class Timeline:
    kind: Literal["request", "task"]
    id: str
    org_id: uuid.UUID
    log: RequestLog | None
    task: dict[str, Any] | None
    events: list[Event]
    workflows: list[Workflow]


@dataclass(frozen=True)
class TemporalUi:
    get_client: TemporalGetter
    base_url: str
    namespace: str


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _task_match(task: Task) -> Match:
    return Match(
        "task", str(task.id), task.created_at, f"{task.type} task · {task.model} · {task.status}"
    )


async def lookup(session: AsyncSession, needle: str) -> list[Match]:
    """Requests by local id, upstream request id or cf-ray; tasks by id, by the request
    that submitted them or by their upstream job id. Newest first."""
    needle = needle.strip()
    matches: list[Match] = []
    task_id = _uuid(needle)
    if task_id is not None and (task := await tasks_repo.get(session, task_id)) is not None:
        matches.append(_task_match(task))
    for request_id in await ops_repo.requests_matching(session, needle, LOOKUP_LIMIT):
        log = await ops_repo.get_log(session, request_id)
        if log is not None:
            summary = f"{log.kind} · {log.model} · {log.status} ({log.http_status})"
            matches.append(Match("request", log.id, log.created_at, summary))
    matches += [
        _task_match(t) for t in await ops_repo.tasks_matching(session, needle, LOOKUP_LIMIT)
    ]
    unique = {(m.kind, m.id): m for m in matches}
    return sorted(unique.values(), key=lambda m: m.at or EARLIEST, reverse=True)


def _value(key: str, value: Any) -> str:
    if key.endswith("_micros") and isinstance(value, int):
        return f"{credits(value)} credits"
    if key == "latency_ms":
        return f"{value} ms"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in value.items())
    return str(value)


def facts_of(data: dict[str, Any], channels: dict[str, str] | None = None) -> list[Fact]:
    """`channels`: channel names by id, so an attempt names its channel, not a UUID."""
    facts = []
    for key, value in data.items():
        if value is None or value == "" or value == {} or key in HIDDEN:
            continue
        if key == "channel_id":
            name = (channels or {}).get(str(value), str(value))
            facts.append(Fact("channel", name, f"/console/ops/channels/{value}"))
            continue
        label = key.removesuffix("_micros").removesuffix("_ms").replace("_", " ")
        facts.append(Fact(label, _value(key, value)))
    return facts


def _events(entries: list[dict[str, Any]], channels: dict[str, str]) -> list[Event]:
    return [
        Event(
            at=e["at"],
            source=e["source"],
            event=e["event"],
            facts=facts_of(e["data"], channels)
            + ([Fact("event id", str(e["data"]["event_id"]))] if "event_id" in e["data"] else []),
            temporal_url=e.get("temporal_url") if e["source"] == "temporal" else None,
        )
        for e in entries
    ]


async def _channel_names(session: AsyncSession) -> dict[str, str]:
    """Every channel's name by id (a small table, read whole)."""
    return {str(c.id): c.name for c in await channels_repo.list_channels(session)}


def _workflow(found: dict[str, Any]) -> Workflow:
    return Workflow(
        workflow_id=found["workflow_id"],
        url=found["temporal_url"],
        task_id=found["id"],
        available=found["temporal"]["available"],
        error=found["temporal"]["error"],
    )


async def _task_timeline(
    session: AsyncSession, task_id: uuid.UUID, ui: TemporalUi
) -> dict[str, Any]:
    return await ops.task_timeline(
        session, task_id, ui.get_client, ui_base=ui.base_url, namespace=ui.namespace
    )


def _by_time(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stable, so events of one instant keep their sources' order."""
    return sorted(entries, key=lambda e: e["at"] or EARLIEST)


async def request_timeline(session: AsyncSession, request_id: str, ui: TemporalUi) -> Timeline:
    """A request's own events, joined with those of any task it submitted (and their
    workflows' histories)."""
    found = await ops.request_timeline(session, request_id)
    log = await ops_repo.get_log(session, request_id)
    entries = list(found["timeline"])
    workflows = []
    for task in await ops_repo.tasks_matching(session, request_id, LOOKUP_LIMIT):
        if task.request_id != request_id:
            continue
        task_found = await _task_timeline(session, task.id, ui)
        entries += [e for e in task_found["timeline"] if e["source"] != "request_log"]
        workflows.append(_workflow(task_found))
    return Timeline(
        "request",
        request_id,
        found["org_id"],
        log,
        None,
        _events(_by_time(entries), await _channel_names(session)),
        workflows,
    )


async def task_timeline(session: AsyncSession, task_id: uuid.UUID, ui: TemporalUi) -> Timeline:
    found = await _task_timeline(session, task_id, ui)
    log = None
    if found["task"].get("request_id"):
        log = await ops_repo.get_log(session, found["task"]["request_id"])
    return Timeline(
        "task", found["id"], found["org_id"], log, found["task"],
        _events(found["timeline"], await _channel_names(session)), [_workflow(found)],
    )  # fmt: skip
