"""CPU accounting and plain-language verdicts for a bench run (see `bench.__main__`)."""

from __future__ import annotations

import math
import os
import time
from typing import Any

from bench import report as rpt
from bench.stack import CpuSample, machine_jiffies

# "others" also holds kernel network work and short-lived PostgreSQL workers, so only a
# clearly larger share means something else was running.
OTHERS_NOISY_PCT = 35.0  # % of one core
IDLE_NOISY_PCT = 15.0  # % of the whole machine busy before the bench starts


def cpu_pct(before: CpuSample, after: CpuSample, loadgen: float) -> dict[str, float]:
    """% of one core per process over a phase, plus whatever else ran on the machine.

    "others" is machine-wide busy time minus ours: a test suite or a build running beside
    the bench shows up there, and figures taken on a shared machine say so.
    """
    wall = after.at - before.at
    out = {
        name: 100 * (after.per_proc[name] - before.per_proc[name]) / wall
        for name in after.per_proc
        if name in before.per_proc
    }
    ours = sum(out.values()) + 100 * (after.harness_s - before.harness_s) / wall
    out["loadgen"] = loadgen
    if before.machine and after.machine:
        busy = after.machine[0] - before.machine[0]
        total = after.machine[1] - before.machine[1]
        if total:
            out["machine_busy"] = 100 * busy / total
            out["others"] = max(0.0, 100 * (os.cpu_count() or 1) * busy / total - ours)
    return out


def per_call_ms(before: CpuSample, after: CpuSample, calls: int) -> dict[str, float]:
    """CPU milliseconds per request: unlike req/s, barely moved by a noisy neighbour."""
    if not calls:
        return {}
    return {
        name: 1000 * (after.per_proc[name] - before.per_proc[name]) / calls
        for name in ("api", "postgres", "temporal")
        if name in after.per_proc and name in before.per_proc
    }


def client_verdict(cpu: dict[str, float]) -> str:
    """Say plainly whether the figures measure the relay or the harness around it."""
    if not cpu:
        return "bottleneck: unknown (no /proc to read CPU from)"
    api, client = cpu.get("api", math.nan), cpu.get("loadgen", math.nan)
    busy = cpu.get("machine_busy", math.nan)
    if client > rpt.CLIENT_HEAVY_PCT:
        return (
            f"verdict: the load generator used {client:.0f}% of a core; it competes with the "
            "API for CPU, so the relay figure is a lower bound"
        )
    if api >= 85:
        return (
            f"verdict: the API process is CPU-bound ({api:.0f}% of its one core); the client "
            f"({client:.0f}%) and upstream are not the limit"
        )
    others = cpu.get("others", 0.0)
    if busy >= 90 and others > OTHERS_NOISY_PCT:
        return (
            f"verdict: the machine is saturated ({busy:.0f}% busy), {others:.0f}% of a core by "
            f"processes outside the bench; the API got only {api:.0f}%, so req/s is understated"
        )
    if busy >= 90:
        return (
            f"verdict: the machine is saturated ({busy:.0f}% busy) with the API at {api:.0f}%; "
            "PostgreSQL and the API share the two cores"
        )
    return (
        f"verdict: neither the API ({api:.0f}%) nor the machine ({busy:.0f}%) is saturated; "
        "the relay is waiting (PostgreSQL round trips or lock waits)"
    )


def shared_machine(out: dict[str, Any]) -> str | None:
    """Name what else competed for CPU: the idle baseline and each phase's "others" share."""
    noisy = [
        f"{phase} {cpu['others']:.0f}%"
        for phase, cpu in out["cpu"].items()
        if not phase.endswith("direct") and cpu.get("others", 0) > OTHERS_NOISY_PCT
    ]
    idle_busy = out["machine"].get("busy_before_start_pct")
    if not noisy and (idle_busy is None or idle_busy < IDLE_NOISY_PCT):
        return None
    before = f"{idle_busy:.0f}%" if idle_busy is not None else "unknown"
    return (
        f"the machine was not quiet: {before} busy before the bench started; "
        f"CPU used outside the bench (% of a core): {', '.join(noisy) or 'small'}. "
        "Latency and req/s are pessimistic; CPU per call is the steadier figure"
    )


def baseline_busy_pct(seconds: float = 1.0) -> float | None:
    """How busy the machine is before the bench adds anything (others' builds, tests)."""
    first = machine_jiffies()
    time.sleep(seconds)
    second = machine_jiffies()
    if not first or not second or second[1] == first[1]:
        return None
    return 100 * (second[0] - first[0]) / (second[1] - first[1])


def scale_verdict(one: dict[str, Any], two: dict[str, Any], cores: int) -> str:
    """Which part limits throughput once a second API process runs: the API, PostgreSQL,
    or simply the machine's cores, which both share here. `one`/`two`: each run's req/s,
    CPU % of a core (cpu) and CPU ms per call (per_call)."""
    rps1, rps2 = one.get("requests_per_s", math.nan), two.get("requests_per_s", math.nan)
    cpu, per = two.get("cpu", {}), two.get("per_call", {})
    api, pg, busy = (
        cpu.get("api", math.nan),
        cpu.get("postgres", math.nan),
        cpu.get("machine_busy", math.nan),
    )
    api_ms, pg_ms = per.get("api", math.nan), per.get("postgres", math.nan)
    gain = f"2 processes serve {rps2 / rps1:.2f}x the calls/s of 1" if rps1 else "no 1-process run"
    bigger = "the API" if api_ms >= pg_ms else "PostgreSQL"
    if busy >= 90:
        return (
            f"{gain}; the machine's {cores} cores are the limit ({busy:.0f}% busy: API "
            f"{api:.0f}%, PostgreSQL {pg:.0f}% of a core). Per call the API spends {api_ms:.2f} ms "
            f"and PostgreSQL {pg_ms:.2f} ms, so {bigger} is the larger share; more API "
            "processes only help where cores sit idle"
        )
    if api >= 85 * int(two.get("workers", 2)):
        return f"{gain}; the API processes are CPU-bound ({api:.0f}% of a core)"
    return (
        f"{gain}; neither the API ({api:.0f}%) nor the machine ({busy:.0f}%) is saturated: "
        "PostgreSQL's write path (commits, WAL flushes, the account row's lock) is the limit"
    )
