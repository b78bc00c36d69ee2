"""`GET /metrics`: Prometheus text exposition, written by hand (prometheus_client is not a
dependency and the format is a few lines).

Two kinds of series:
- In-process counters and a latency histogram, kept by `MetricsMiddleware` (its own pure
  ASGI layer, so neither the edge middleware nor the relay had to change). They are per
  replica, as Prometheus expects; labels are method, route *template* and status code, so
  cardinality stays bounded whatever paths clients send.
- Gauges read from PostgreSQL: the model a request used is only known to the relay, so
  requests by model/status come from `request_logs` over the last 5 minutes. Every query is
  an aggregate over an index or a small table (see `domain.ops.repository`), and the result
  is memoised for `GAUGE_TTL_S` so several scrapers cost one round of queries.

No per-org or per-channel labels: this endpoint is meant for the internal network and
still should not list tenants.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import ResourcesDep
from domain.ops import repository as ops_repo
from schema.db import SessionFactory

router = APIRouter(tags=["health"])

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
GAUGE_TTL_S = 10.0
REQUEST_WINDOW = timedelta(minutes=5)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)

Labels = tuple[tuple[str, str], ...]


class Registry:
    """Counters and one histogram; plain dicts, touched only from the event loop thread."""

    def __init__(self) -> None:
        self.requests: dict[Labels, int] = {}
        self.latency_counts: dict[Labels, list[int]] = {}
        self.latency_sum: dict[Labels, float] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        labels: Labels = (("method", method), ("route", route), ("code", str(status)))
        self.requests[labels] = self.requests.get(labels, 0) + 1
        hist_labels: Labels = (("method", method), ("route", route))
        counts = self.latency_counts.get(hist_labels)
        if counts is None:
            counts = self.latency_counts[hist_labels] = [0] * (len(LATENCY_BUCKETS) + 1)
        for i, bound in enumerate(LATENCY_BUCKETS):
            if seconds <= bound:
                counts[i] += 1
                break
        else:
            counts[-1] += 1
        self.latency_sum[hist_labels] = self.latency_sum.get(hist_labels, 0.0) + seconds

    def lines(self) -> Iterable[str]:
        yield "# HELP oxinf_http_requests_total HTTP responses by method, route and code."
        yield "# TYPE oxinf_http_requests_total counter"
        for labels, n in sorted(self.requests.items()):
            yield sample("oxinf_http_requests_total", labels, n)
        name = "oxinf_http_request_duration_seconds"
        yield f"# HELP {name} Time to the end of the response (streams included)."
        yield f"# TYPE {name} histogram"
        for labels, counts in sorted(self.latency_counts.items()):
            running = 0
            for bound, n in zip((*LATENCY_BUCKETS, math.inf), counts, strict=True):
                running += n
                le = "+Inf" if bound == math.inf else repr(bound)
                yield sample(f"{name}_bucket", (*labels, ("le", le)), running)
            yield sample(f"{name}_sum", labels, self.latency_sum[labels])
            yield sample(f"{name}_count", labels, running)


REGISTRY = Registry()


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def sample(name: str, labels: Labels, value: int | float) -> str:
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
    return f"{name}{{{inner}}} {value}" if inner else f"{name} {value}"


class MetricsMiddleware:
    """Counts every HTTP response; pure ASGI so streamed bodies pass through unbuffered."""

    def __init__(self, app: ASGIApp, registry: Registry = REGISTRY) -> None:
        self.app = app
        self.registry = registry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def record_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.registry.observe(
                scope.get("method", ""), template, status[0], time.perf_counter() - started
            )


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


_GAUGES = GaugeCache()


def _gauge(name: str, help_text: str, samples: Iterable[tuple[Labels, int]]) -> list[str]:
    out = [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
    out += [sample(name, labels, value) for labels, value in samples]
    return out


async def gauge_lines(sessions: SessionFactory) -> list[str]:
    now = datetime.now(UTC)
    async with sessions() as s:
        holds, held = await ops_repo.pending_holds(s)
        accounts, balance, available = await ops_repo.account_totals(s)
        callbacks = await ops_repo.callback_failures(s, now - HOUR)
        tasks = await ops_repo.tasks_by_status(s, now - DAY)
        ledger = await ops_repo.ledger_by_kind(s, now - HOUR)
        by_model = await ops_repo.requests_by_model(s, now - REQUEST_WINDOW)
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
        "oxinf_relay_requests_5m",
        "Relay requests logged in the last 5 minutes, by model, status and HTTP code.",
        [
            ((("model", m), ("status", st), ("code", str(code))), n)
            for m, st, code, n in sorted(by_model)
        ],
    )
    return out


@router.get("/metrics", include_in_schema=False)
async def metrics(resources: ResourcesDep) -> Response:
    lines = [*REGISTRY.lines(), *await _GAUGES.get(resources.sessions)]
    return Response("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")
