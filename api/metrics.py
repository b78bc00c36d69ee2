"""`GET /metrics`: Prometheus text exposition by prometheus-client, from this process's
registry (`api.metrics_registry.REGISTRY`).

Two kinds of series:
- In-process counters and a latency histogram (`api.metrics_registry.HTTP`), fed by the
  edge middleware that already times every request. They are per replica, as Prometheus
  expects; labels are method, route *template* and status code, so cardinality stays
  bounded whatever paths clients send.
- Gauges read from PostgreSQL (`DatabaseGauges`, a collector): the model a request used is
  only known to the relay, so requests by model/status come from `request_logs` over the
  last 5 minutes. Every query is an aggregate over an index or a small table (see
  `domain.ops.repository`). A collector's `collect` cannot await, so the handler refreshes
  the collector's snapshot first (at most once per `GAUGE_TTL_S`, so several scrapers
  cost one round of queries) and the registry then reads it.

No per-org or per-channel labels: this endpoint is meant for the internal network and
still should not list tenants. Scrapers authenticate with `OXINF_METRICS_TOKEN`.
"""

from __future__ import annotations

import asyncio
import hmac
import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from starlette.responses import Response

from api.auth import bearer_token
from api.metrics_registry import REGISTRY
from config.runtime import Resources
from domain.errors import NotFound, Unauthenticated
from domain.ops import repository as ops_repo
from domain.results import repository as results_repo
from edge.deps import ResourcesDep
from schema.db import SessionFactory
from schema.unit_of_work import unit_of_work

router = APIRouter(tags=["health"])

GAUGE_TTL_S = 10.0
REQUEST_WINDOW = timedelta(minutes=5)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


@dataclass(frozen=True)
class _Snapshot:
    holds: int = 0
    held: int = 0
    accounts: int = 0
    balance: int = 0
    available: int = 0
    callback_failures: int = 0
    tasks: tuple[tuple[str, int], ...] = ()
    ledger: tuple[tuple[str, int, int], ...] = ()  # kind, entries, amount
    orphans_found: int = 0
    orphans_canceled: int = 0
    copy_failures: int = 0
    by_model: tuple[tuple[str, str, int, int], ...] = ()  # model, status, code, requests


async def _read(sessions: SessionFactory) -> _Snapshot:
    now = datetime.now(UTC)
    async with unit_of_work(sessions) as s:
        holds, held = await ops_repo.pending_holds(s)
        accounts, balance, available = await ops_repo.account_totals(s)
        callbacks = await ops_repo.callback_failures(s, now - HOUR)
        tasks = await ops_repo.tasks_by_status(s, now - DAY)
        ledger = await ops_repo.ledger_by_kind(s, now - HOUR)
        by_model = await ops_repo.requests_by_model(s, now - REQUEST_WINDOW)
        found, canceled = await ops_repo.orphan_jobs(s)
        copy_failures = await results_repo.copy_failures(s)
    return _Snapshot(
        holds=holds, held=held, accounts=accounts, balance=balance, available=available,
        callback_failures=callbacks, tasks=tuple(sorted(tasks.items())),
        ledger=tuple((k, n, total) for k, (n, total) in sorted(ledger.items())),
        orphans_found=found, orphans_canceled=canceled, copy_failures=copy_failures,
        by_model=tuple(sorted(by_model)),
    )  # fmt: skip


Samples = Iterable[tuple[list[str], int]]


def _family(
    kind: type[GaugeMetricFamily | CounterMetricFamily],
    name: str,
    help_text: str,
    labels: list[str],
    samples: Samples,
) -> Metric:
    family = kind(name, help_text, labels=labels)
    for values, value in samples:
        family.add_metric(values, value)
    return family


def _families(snap: _Snapshot | None) -> Iterator[Metric]:
    """Every database family, with the snapshot's samples (none without one)."""

    def one(value: int) -> Samples:
        return [([], value)] if snap is not None else []

    s = snap or _Snapshot()
    g = GaugeMetricFamily
    yield _family(g, "oxinf_pending_holds", "Holds not yet settled or voided.", [], one(s.holds))
    yield _family(
        g, "oxinf_pending_holds_micros", "Credits reserved by pending holds.", [], one(s.held)
    )
    yield _family(g, "oxinf_credit_accounts", "Orgs with a credit account.", [], one(s.accounts))
    yield _family(g, "oxinf_credit_balance_micros", "Sum of all balances.", [], one(s.balance))
    yield _family(
        g, "oxinf_credit_available_micros", "Sum of available credit.", [], one(s.available)
    )
    yield _family(
        g, "oxinf_callback_failures_1h", "Callback attempts not delivered in the last hour.",
        [], one(s.callback_failures),
    )  # fmt: skip
    yield _family(
        g, "oxinf_tasks_24h", "Tasks created in the last 24 hours, by current status.",
        ["status"], [([status], n) for status, n in s.tasks],
    )  # fmt: skip
    yield _family(
        g, "oxinf_ledger_entries_1h", "Ledger entries posted in the last hour, by kind.",
        ["kind"], [([kind], n) for kind, n, _ in s.ledger],
    )  # fmt: skip
    yield _family(
        g, "oxinf_ledger_amount_micros_1h",
        "Sum of ledger amounts posted in the last hour, by kind.",
        ["kind"], [([kind], total) for kind, _, total in s.ledger],
    )  # fmt: skip
    orphans = [(["found"], s.orphans_found), (["canceled"], s.orphans_canceled)]
    yield _family(
        CounterMetricFamily,  # exposed as oxinf_task_upstream_orphans_total
        "oxinf_task_upstream_orphans",
        "Upstream media jobs made for tasks that did not use them: found, and cancelled.",
        ["event"], orphans if snap is not None else [],
    )  # fmt: skip
    yield _family(
        CounterMetricFamily,  # exposed as oxinf_task_result_copy_failures_total
        "oxinf_task_result_copy_failures",
        "Task results that could not be copied into the result store (the task kept the "
        "provider's URLs).",
        [], one(s.copy_failures),
    )  # fmt: skip
    yield _family(
        g, "oxinf_relay_requests_5m",
        "Relay requests logged in the last 5 minutes, by model, status and HTTP code.",
        ["model", "status", "code"],
        [([model, status, str(code)], n) for model, status, code, n in s.by_model],
    )  # fmt: skip


class DatabaseGauges:
    """A prometheus-client collector over the last snapshot of the database's gauges."""

    def __init__(self) -> None:
        self._snapshot: _Snapshot | None = None
        self._at = -math.inf
        self._lock = asyncio.Lock()

    async def refresh(self, sessions: SessionFactory) -> None:
        async with self._lock:
            if time.monotonic() - self._at >= GAUGE_TTL_S:
                self._snapshot = await _read(sessions)
                self._at = time.monotonic()

    def expire(self) -> None:
        self._at = -math.inf

    def describe(self) -> Iterable[Metric]:
        """The families without samples, so the registry can refuse a clashing name."""
        return list(_families(None))

    def collect(self) -> Iterable[Metric]:
        return list(_families(self._snapshot))


GAUGES = DatabaseGauges()
REGISTRY.register(GAUGES)


def _check_scraper(request: Request, resources: Resources) -> None:
    """A configured token is required (compared in constant time); without one, only
    non-production deployments serve metrics, so a forgotten setting does not publish
    them."""
    token = resources.settings.metrics_token
    if token is None or not token.get_secret_value():  # an empty token is no token
        if resources.settings.env == "production":
            raise NotFound("not found")
        return
    given = bearer_token(request) or ""
    if not hmac.compare_digest(given.encode(), token.get_secret_value().encode()):
        raise Unauthenticated("a valid metrics bearer token is required")


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request, resources: ResourcesDep) -> Response:
    _check_scraper(request, resources)
    await GAUGES.refresh(resources.sessions)
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_PLAIN_0_0_4)
