"""`make bench`'s judging and its load generator, without running the bench itself.

The budgets are checked on reports built the way the bench builds them (raw load-generator
results through `report.stats`); the load generator runs as its own process against the
bench's own upstream over real HTTP, as in a bench run.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from bench import report as rpt
from bench.render import render
from config.gc_tuning import PauseMeter

ROOT = Path(__file__).resolve().parents[2]


def figures(
    latency_ms: float, rate: float, statuses: dict[str, int] | None = None
) -> dict[str, Any]:
    """A load-generator result with every call at `latency_ms`, `rate` answered per second."""
    n = int(rate)
    statuses = statuses or {"200": n}
    ok = sum(statuses.values())
    raw = {
        "ok": ok, "measured_ok": ok, "errors": 0, "measured_errors": 0, "statuses": statuses,
        "error_samples": [], "latencies_us": [latency_ms * 1000] * max(ok, 1), "window_s": 1.0,
        "cpu_s": 0.1, "reconnects": 0,
    }  # fmt: skip
    return rpt.stats(raw)


def ledger(passed: bool, **figures: int) -> dict[str, Any]:
    return {"passed": passed, "checks": {"balance never below zero": passed}, "figures": figures}


def good_report() -> dict[str, Any]:
    """Every figure inside its DESIGN.md §11 budget."""
    direct = figures(0.1, 20_000)
    cpu = {"api": 50.0, "postgres": 40.0, "machine_busy": 60.0}
    per_call = {"api": 0.5, "postgres": 0.4}
    hot = figures(900.0, 1_000, {"200": 400, "402": 600})
    return {
        "mode": "quick", "elapsed_s": 40.0, "json_path": "last.json",
        "machine": {"cpus": 2, "busy_before_start_pct": 1.0, "loadavg_at_start": 0.1},
        "postgres": {"server_version": "16.2"},
        "phases": {
            "latency_1c": {"direct": direct, "relay": figures(1.2, 800)},
            "throughput": {"connections": 32, "duration_s": 3.0, "direct": direct,
                           "relay": figures(20.0, 1_600)},
            "stream_1c": {"direct": direct, "relay": figures(2.0, 400)},
            "hot_account": {"calls": 1_000, "affordable": 400, "relay": hot,
                            "answered_200_or_402": 1_000, "all_finished": True, "time_s": 2.5,
                            "funds_micros": 400 * 13_800},
            "scale_out": {"connections": 32, "duration_s": 3.0, "relay": figures(15.0, 2_400),
                          "verdict": "the machine's 2 cores are the limit",
                          "runs": {"1": {"workers": 1, "requests_per_s": 1_600.0, "p99_ms": 20.0,
                                         "per_call": per_call, "cpu": cpu},
                                   "2": {"workers": 2, "requests_per_s": 2_400.0, "p99_ms": 15.0,
                                         "per_call": per_call, "cpu": cpu,
                                         "api_worker_cpu_pct": [30.0, 31.0]}}},
            "tasks_1c": {"relay": figures(8.0, 120)},
            "tasks_throughput": {"connections": 32, "duration_s": 3.0, "relay": figures(80.0, 300)},
        },
        "cpu": {"throughput_direct": cpu, "throughput_relay": cpu},
        "cpu_ms_per_call": {"latency_1c": per_call, "throughput": per_call,
                            "tasks_1c": {"api": 3.0}, "tasks_throughput": {"api": 3.0}},
        "client_verdict": "verdict: fine",
        "ledger": ledger(True, succeeded_logs=1, charged_micros=1, logged_cost_micros=1,
                         expected_cost_per_call_micros=1, relay_ok_responses=1),
        "ledger_hot_account": ledger(True, charged_micros=5_520_000, seeded_micros=5_520_000,
                                     succeeded_logs=400, lowest_balance_after_micros=0,
                                     balance_micros=0),
        "ledger_tasks": ledger(True, tasks=120, accepted_202=120, pending_holds=120,
                               task_cost_micros=1_000_000),
        "harness": {"problems": []},
    }  # fmt: skip


def results(report: dict[str, Any]) -> dict[str, str]:
    return {b.name: b.as_dict()["result"] for b in rpt.budgets(report)}


def test_every_design_budget_is_judged_and_a_good_run_meets_them() -> None:
    judged = results(good_report())
    assert judged == {
        "relay overhead p50, 1 connection": "PASS",
        "relay overhead p99, 1 connection": "PASS",
        "billed requests/s, 32 connections": "PASS",
        "CPU per billed call (API+PG), 32 conn": "PASS",
        "scale-out, 2 vs 1 API process": "INFO",
        "hot account, 1,000 calls: no overspend": "PASS",
        "hot account, 1,000 calls: all finish": "PASS",
        "task 202 p50, 1 connection": "PASS",
        "tasks accepted/s, 32 connections": "PASS",
        "ledger drift": "PASS",
    }


def test_budgets_are_design_s_numbers() -> None:
    assert (rpt.OVERHEAD_P50_MS, rpt.OVERHEAD_P99_MS, rpt.BILLED_RPS) == (1.5, 6.0, 1_500)
    assert (rpt.CPU_PER_CALL_MS, rpt.TASK_202_P50_MS, rpt.TASKS_PER_S) == (1.0, 20.0, 100)


def test_a_hot_account_call_answered_otherwise_is_a_miss() -> None:
    report = good_report()
    hot = report["phases"]["hot_account"]
    hot["relay"] = figures(900.0, 1_000, {"200": 400, "402": 598, "503": 2})
    hot["answered_200_or_402"], hot["all_finished"] = 998, False
    judged = results(report)
    assert judged["hot account, 1,000 calls: all finish"] == "MISS"
    assert judged["hot account, 1,000 calls: no overspend"] == "PASS"


def test_an_overspent_hot_account_is_a_miss_and_drift() -> None:
    report = good_report()
    report["ledger_hot_account"]["passed"] = False
    judged = results(report)
    assert judged["hot account, 1,000 calls: no overspend"] == "MISS"
    assert judged["ledger drift"] == "MISS"


def test_slow_tasks_and_costly_calls_miss() -> None:
    report = good_report()
    report["phases"]["tasks_1c"]["relay"] = figures(25.0, 40)
    report["phases"]["tasks_throughput"]["relay"] = figures(300.0, 90)
    report["cpu_ms_per_call"]["throughput"] = {"api": 0.7, "postgres": 0.4}
    judged = results(report)
    assert judged["task 202 p50, 1 connection"] == "MISS"
    assert judged["tasks accepted/s, 32 connections"] == "MISS"
    assert judged["CPU per billed call (API+PG), 32 conn"] == "MISS"


def test_the_printed_report_has_every_phase_and_budget() -> None:
    report = good_report()
    report["budgets"] = [b.as_dict() for b in rpt.budgets(report)]
    text = render(report)
    for needle in (
        "scale-out: the 32-connection relay run", "hot account: 1,000 concurrent calls",
        "task submission: POST /v1/tasks", "300 tasks/s", "2,400", "core): 30 / 31",
        *(b["name"] for b in report["budgets"]),
    ):  # fmt: skip
        assert needle in text, needle


def test_gc_pauses_are_read_from_the_api_s_metrics() -> None:
    registry = CollectorRegistry()
    meter = PauseMeter(registry)
    for generation, seconds in ((0, 0.0004), (0, 0.003), (1, 0.004), (2, 0.15)):
        meter("start", {"generation": generation})
        meter._started -= seconds  # as if the collection had taken that long
        meter("stop", {"generation": generation})
    pauses = rpt.gc_pauses(generate_latest(registry).decode())
    assert pauses["collections"] == {"0": 2, "1": 1, "2": 1} and pauses["total"] == 4
    assert pauses["over_10ms"] == 1 and pauses["longest_at_most_ms"] == 200
    assert 157 <= pauses["paused_ms"] < 160
    report = good_report()
    report["gc_pauses"] = pauses
    report["budgets"] = [b.as_dict() for b in rpt.budgets(report)]
    line = next(x for x in render(report).splitlines() if x.startswith("GC pauses"))
    assert re.search(
        r": 4 collections \(gen0 2, gen1 1, gen2 1\), 15[78] ms stopped in all, 1 over 10 ms, "
        r"longest ≤ 200 ms$",
        line,
    ), line


# --- the load generator against the bench upstream, over real HTTP ----------------------


@pytest.fixture(scope="module")
def upstream_port() -> Iterator[int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.upstream"], cwd=ROOT, stdout=subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        assert line.startswith("READY "), line
        yield int(line.split()[1])
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def loadgen(spec: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.loadgen"], cwd=ROOT, input=json.dumps(spec).encode(),
        capture_output=True, timeout=60, check=True,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def burst(port: int, path: str, **extra: Any) -> dict[str, Any]:
    return loadgen(
        {"host": "127.0.0.1", "port": port, "path": path, "headers": {},
         "body": {"model": "m", "messages": []}, "mode": "burst", "connections": 40, **extra}
    )  # fmt: skip


def test_a_burst_sends_one_call_per_connection_all_at_once(upstream_port: int) -> None:
    result = burst(upstream_port, "/v1/chat/completions")
    assert (result["ok"], result["errors"], result["statuses"]) == (40, 0, {"200": 40})
    assert len(result["latencies_us"]) == 40 and result["window_s"] > 0


def test_only_accepted_statuses_count_as_answered(upstream_port: int) -> None:
    refused = burst(upstream_port, "/nowhere")
    assert (refused["ok"], refused["errors"], refused["statuses"]) == (0, 40, {"404": 40})
    accepted = burst(upstream_port, "/nowhere", accept={"200": "usage", "404": "no such route"})
    assert (accepted["ok"], accepted["errors"]) == (40, 0)
    wrong_body = burst(upstream_port, "/nowhere", accept={"404": "something else"})
    assert wrong_body["ok"] == 0 and "404 without" in wrong_body["error_samples"][0]
