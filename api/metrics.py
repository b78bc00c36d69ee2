"""`GET /metrics`: Prometheus text exposition, written by hand (prometheus_client is not a
dependency and the format is a few lines).

Two kinds of series:
- In-process counters and a latency histogram (`api.metrics_registry`), fed by the edge
  middleware that already times every request. They are per replica, as Prometheus
  expects; labels are method, route *template* and status code, so cardinality stays
  bounded whatever paths clients send.
- Gauges read from PostgreSQL: the model a request used is only known to the relay, so
  requests by model/status come from `request_logs` over the last 5 minutes. Every query is
  an aggregate over an index or a small table (see `domain.ops.repository`), and the result
  is memoised for `GAUGE_TTL_S` so several scrapers cost one round of queries.

No per-org or per-channel labels: this endpoint is meant for the internal network and
still should not list tenants. Scrapers authenticate with `OXINF_METRICS_TOKEN`.
"""

from __future__ import annotations

import asyncio
import hmac
import math
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Request
from starlette.responses import Response

from api.auth import bearer_token
from api.metrics_registry import REGISTRY, Labels, sample
from config.runtime import Resources
from domain.errors import NotFound, Unauthenticated
from domain.ops import repository as ops_repo
from edge.deps import ResourcesDep
from schema.db import SessionFactory
from schema.unit_of_work import unit_of_work

router = APIRouter(tags=["health"])

GAUGE_TTL_S = 10.0
REQUEST_WINDOW = timedelta(minutes=5)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


class GaugeCache:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.at = -math.inf
        self.lock = asyncio.Lock()

    async def get(self, sessions: SessionFactory) -> list[str]:
        async with self.lock:
            if time.monotonic() - self.at >= GAUGE_TTL_S:
                self.lines = await gauge_lines(sessions)
                self.at = time.monotonic()
            return self.lines

    def expire(self) -> None:
        self.at = -math.inf


GAUGES = GaugeCache()


def _gauge(
    name: str, help_text: str, samples: Iterable[tuple[Labels, int]], kind: str = "gauge"
) -> list[str]:
    out = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    out += [sample(name, labels, value) for labels, value in samples]
    return out


async def gauge_lines(sessions: SessionFactory) -> list[str]:
    now = datetime.now(UTC)
    async with unit_of_work(sessions) as s:
        holds, held = await ops_repo.pending_holds(s)
        accounts, balance, available = await ops_repo.account_totals(s)
        callbacks = await ops_repo.callback_failures(s, now - HOUR)
        tasks = await ops_repo.tasks_by_status(s, now - DAY)
        ledger = await ops_repo.ledger_by_kind(s, now - HOUR)
        by_model = await ops_repo.requests_by_model(s, now - REQUEST_WINDOW)
        orphans_found, orphans_canceled = await ops_repo.orphan_jobs(s)
    out: list[str] = []
    out += _gauge("oxinf_pending_holds", "Holds not yet settled or voided.", [((), holds)])
    out += _gauge("oxinf_pending_holds_micros", "Credits reserved by pending holds.", [((), held)])
    out += _gauge("oxinf_credit_accounts", "Orgs with a credit account.", [((), accounts)])
    out += _gauge("oxinf_credit_balance_micros", "Sum of all balances.", [((), balance)])
    out += _gauge("oxinf_credit_available_micros", "Sum of available credit.", [((), available)])
    out += _gauge(
        "oxinf_callback_failures_1h",
        "Callback attempts not delivered in the last hour.",
        [((), callbacks)],
    )
    out += _gauge(
        "oxinf_tasks_24h",
        "Tasks created in the last 24 hours, by current status.",
        [((("status", k),), v) for k, v in sorted(tasks.items())],
    )
    out += _gauge(
        "oxinf_ledger_entries_1h",
        "Ledger entries posted in the last hour, by kind.",
        [((("kind", k),), n) for k, (n, _) in sorted(ledger.items())],
    )
    out += _gauge(
        "oxinf_ledger_amount_micros_1h",
        "Sum of ledger amounts posted in the last hour, by kind.",
        [((("kind", k),), total) for k, (_, total) in sorted(ledger.items())],
    )
    out += _gauge(
        "oxinf_task_upstream_orphans_total",
        "Upstream media jobs made for tasks that did not use them: found, and cancelled.",
        [((("event", "found"),), orphans_found), ((("event", "canceled"),), orphans_canceled)],
        kind="counter",
    )
    out += _gauge(
        "oxinf_relay_requests_5m",
        "Relay requests logged in the last 5 minutes, by model, status and HTTP code.",
        [
            ((("model", m), ("status", st), ("code", str(code))), n)
            for m, st, code, n in sorted(by_model)
        ],
    )
    return out


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
    lines = [*REGISTRY.lines(), *await GAUGES.get(resources.sessions)]
    return Response("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")
