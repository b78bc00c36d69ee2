"""Figures from the load generator's raw results, judged against DESIGN.md §11.

The budgets live here (`bench.render` prints them), so a changed budget is one edit
and the JSON in `.oxinf/bench/last.json` always says which targets a run was judged by.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

OVERHEAD_P50_MS = 1.5
OVERHEAD_P99_MS = 6.0
BILLED_RPS = 1_500.0
CPU_PER_CALL_MS = 1.0  # API + PostgreSQL, per billed call at 32 connections
TASK_202_P50_MS = 20.0
TASKS_PER_S = 100.0
MAX_ERROR_RATE = 0.01
CLIENT_HEAVY_PCT = 50.0  # of one core: above this the client competes with the API


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank: a value that was actually observed, never an interpolation."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def stats(raw: dict[str, Any]) -> dict[str, Any]:
    lat = sorted(raw["latencies_us"])
    window = raw["window_s"] or math.nan
    done = raw["ok"] + raw["errors"]
    return {
        "measured_ok": raw["measured_ok"],
        "ok_total": raw["ok"],
        "http_200_total": raw["statuses"].get("200", 0),
        "errors": raw["errors"],
        "error_rate": raw["errors"] / done if done else 0.0,
        "error_samples": raw["error_samples"],
        "statuses": raw["statuses"],
        "window_s": round(raw["window_s"], 3),
        "requests_per_s": raw["measured_ok"] / window,
        "p50_ms": percentile(lat, 50) / 1000,
        "p90_ms": percentile(lat, 90) / 1000,
        "p99_ms": percentile(lat, 99) / 1000,
        "max_ms": (lat[-1] / 1000) if lat else math.nan,
        "mean_ms": (sum(lat) / len(lat) / 1000) if lat else math.nan,
        "loadgen_cpu_pct": 100 * raw["cpu_s"] / window,
        "reconnects": raw["reconnects"],
    }


@dataclass(frozen=True)
class Budget:
    name: str
    target: str
    measured: str
    met: bool | None  # None: reported, no number to meet (scale-out)
    value: float | None = None  # the measured figure, for tools reading last.json
    limit: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "target": self.target,
            "measured": self.measured,
            "value": self.value,
            "limit": self.limit,
            "result": "INFO" if self.met is None else ("PASS" if self.met else "MISS"),
        }


def budgets(out: dict[str, Any]) -> list[Budget]:
    """Every §11 budget the run measured, in the order the report prints them."""
    phases = out["phases"]
    lat, tput = phases["latency_1c"], phases["throughput"]
    p50 = lat["relay"]["p50_ms"] - lat["direct"]["p50_ms"]
    p99 = lat["relay"]["p99_ms"] - lat["direct"]["p99_ms"]
    rps = tput["relay"]["requests_per_s"]
    per = out["cpu_ms_per_call"].get("throughput", {})
    cpu = per.get("api", math.nan) + per.get("postgres", math.nan)
    found = [
        _at_most("relay overhead p50, 1 connection", p50, OVERHEAD_P50_MS),
        _at_most("relay overhead p99, 1 connection", p99, OVERHEAD_P99_MS),
        Budget(
            f"billed requests/s, {tput['connections']} connections",
            f"≥ {BILLED_RPS:,.0f}",
            f"{rps:,.0f}",
            rps >= BILLED_RPS,
            rps,
            BILLED_RPS,
        ),
        _at_most(f"CPU per billed call (API+PG), {tput['connections']} conn", cpu, CPU_PER_CALL_MS),
    ]
    found += _scale_out(phases.get("scale_out"))
    found += _hot_account(phases.get("hot_account"), out.get("ledger_hot_account"))
    found += _tasks(phases.get("tasks_1c"), phases.get("tasks_throughput"))
    ledgers = [out.get(k) for k in ("ledger", "ledger_hot_account", "ledger_tasks")]
    checked = [x for x in ledgers if x]
    ok = bool(checked) and all(x["passed"] for x in checked)
    found.append(
        Budget(
            "ledger drift",
            "none",
            "none" if ok else ("not checked" if not checked else "DRIFT"),
            ok,
        )
    )
    return found


def _at_most(name: str, value: float, limit: float) -> Budget:
    return Budget(name, f"≤ {limit:g} ms", _ms(value), value <= limit, value, limit)


def _scale_out(phase: dict[str, Any] | None) -> list[Budget]:
    if not phase:
        return []
    runs = phase["runs"]
    one, many = runs["1"], runs[max(runs, key=int)]
    ratio = many["requests_per_s"] / one["requests_per_s"] if one["requests_per_s"] else math.nan
    return [
        Budget(
            f"scale-out, {many['workers']} vs 1 API process",
            "measured",
            f"{ratio:.2f}x",
            None,
            ratio,
        )
    ]


def _hot_account(phase: dict[str, Any] | None, ledger: dict[str, Any] | None) -> list[Budget]:
    if not phase:
        return []
    calls = phase["calls"]
    no_overspend = bool(ledger and ledger["passed"])
    return [
        Budget(
            f"hot account, {calls:,} calls: no overspend",
            "none",
            "none" if no_overspend else "OVERSPEND" if ledger else "not checked",
            no_overspend,
        ),
        Budget(
            f"hot account, {calls:,} calls: all finish",
            "200 or 402",
            f"{phase['answered_200_or_402']:,}/{calls:,}, {phase['time_s']:.1f} s",
            bool(phase["all_finished"]),
            phase["answered_200_or_402"],
            calls,
        ),
    ]


def _tasks(one: dict[str, Any] | None, many: dict[str, Any] | None) -> list[Budget]:
    found = []
    if one:
        p50 = one["relay"]["p50_ms"]
        found.append(
            Budget(
                "task 202 p50, 1 connection",
                f"≤ {TASK_202_P50_MS:g} ms",
                _ms(p50),
                p50 <= TASK_202_P50_MS,
                p50,
                TASK_202_P50_MS,
            )
        )
    if many:
        rate = many["relay"]["requests_per_s"]
        found.append(
            Budget(
                f"tasks accepted/s, {many['connections']} connections",
                f"≥ {TASKS_PER_S:,.0f}",
                f"{rate:,.0f}",
                rate >= TASKS_PER_S,
                rate,
                TASKS_PER_S,
            )
        )
    return found


def _ms(value: float) -> str:
    return f"{value:.3f} ms"


def gc_pauses(metrics_text: str) -> dict[str, Any]:
    """`oxinf_gc_pause_seconds` from a `/metrics` body: collections per generation, time
    stopped in all, how many pauses passed 10 ms, and the bucket the longest fell in."""
    from prometheus_client.parser import text_string_to_metric_families

    counts: dict[str, int] = {}
    seconds = 0.0
    at_most_10ms = 0
    buckets: dict[float, int] = {}
    for family in text_string_to_metric_families(metrics_text):
        if family.name != "oxinf_gc_pause_seconds":
            continue
        for sample in family.samples:
            if sample.name.endswith("_count"):
                counts[sample.labels["generation"]] = int(sample.value)
            elif sample.name.endswith("_sum"):
                seconds += sample.value
            elif sample.name.endswith("_bucket"):
                bound = float(sample.labels["le"])
                buckets[bound] = buckets.get(bound, 0) + int(sample.value)
                if bound == 0.01:
                    at_most_10ms += int(sample.value)
    total = sum(counts.values())
    longest = min((b for b, n in buckets.items() if n == total), default=math.inf)
    return {
        "collections": counts,
        "total": total,
        "paused_ms": seconds * 1000,
        "over_10ms": total - at_most_10ms,
        "longest_at_most_ms": longest * 1000 if total else 0.0,
    }
