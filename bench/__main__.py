"""`make bench`: relay overhead and throughput against DESIGN.md §11, in one run.

Everything runs on this machine as separate processes, shaped like production: PostgreSQL
(pgserver), a near-zero-latency upstream, the API exactly as `oxinf api` starts it, and a
light load generator. Each measurement is taken twice with the same client and body, once
against the upstream directly and once through the relay, so the difference is what the
relay adds. Afterwards the ledger is reconciled against what the client saw.

The bench reports; it does not gate: a missed budget still exits 0. It exits non-zero only
when its own figures cannot be trusted (more than 1% errors, ledger drift, a crashed part).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import sys
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import report as rpt
from bench.ledgercheck import check_ledger
from bench.seed import MODEL, bench_settings, migrate_and_seed
from bench.stack import (
    ROOT,
    CpuSample,
    HarnessError,
    Stack,
    machine_jiffies,
    sigterm_as_interrupt,
)
from bench.upstream import COMPLETION_TOKENS, PROMPT_TOKENS

WORK_DIR = ROOT / ".oxinf" / "bench"
PG_DIR = ROOT / ".oxinf" / "bench-pg"
PROMPT = "Say hello in one short sentence."
# "others" also holds kernel network work and short-lived PostgreSQL workers, so only a
# clearly larger share means something else was running.
OTHERS_NOISY_PCT = 35.0  # % of one core
IDLE_NOISY_PCT = 15.0  # % of the whole machine busy before the bench starts


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--duration", type=float, default=None, help="seconds per 32-connection phase (10)"
    )
    parser.add_argument("--connections", type=int, default=32, help="throughput connections")
    parser.add_argument(
        "--requests", type=int, default=None, help="measured 1-connection requests (2000)"
    )
    parser.add_argument("--quick", action="store_true", help="a ~30 s smoke run")
    parser.add_argument(
        "--keep-db",
        action="store_true",
        help="keep this run's database in .oxinf/bench-pg (until the next bench run)",
    )
    parser.add_argument("--json", type=Path, default=WORK_DIR / "last.json")
    args = parser.parse_args(argv)
    if not 1 <= args.connections <= 512:
        parser.error("--connections must be 1..512")
    if args.duration is not None and not 0.5 <= args.duration <= 120:
        parser.error("--duration must be 0.5..120 seconds")
    if args.requests is not None and not 10 <= args.requests <= 100_000:
        parser.error("--requests must be 10..100000")
    return args


def plan(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Counts and time caps per phase; `--quick` shrinks every one of them."""
    q = args.quick
    return {
        "latency_1c": {
            "warmup_requests": 50 if q else 200,
            "requests": args.requests or (300 if q else 2_000),
            "duration_s": 5.0 if q else 15.0,
        },
        "throughput": {
            "connections": args.connections,
            "warmup_s": 0.5 if q else 1.0,
            "duration_s": args.duration or (3.0 if q else 10.0),
        },
        "stream_1c": {
            "warmup_requests": 20 if q else 50,
            "requests": 100 if q else 500,
            "duration_s": 3.0 if q else 10.0,
        },
    }


def loadgen_spec(port: int, key: str, phase: dict[str, Any], *, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": MODEL,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": 32,
    }
    if stream:
        body["stream"] = True
    spec = {
        "host": "127.0.0.1",
        "port": port,
        "path": "/v1/chat/completions",
        # Sent to the upstream too (it ignores it) so both requests are byte-for-byte alike.
        "headers": {"authorization": f"Bearer {key}"},
        "body": body,
        "expect": "[DONE]" if stream else '"usage"',
        "mode": "concurrent" if "connections" in phase else "sequential",
        **phase,
    }
    return spec


def loadgen_timeout(phase: dict[str, Any]) -> float:
    return float(phase.get("warmup_s", 0)) + 2 * float(phase["duration_s"]) + 60


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
        for name in ("api", "postgres")
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
        if phase.endswith("relay") and cpu.get("others", 0) > OTHERS_NOISY_PCT
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


def say(message: str) -> None:
    print(message, flush=True)


def run(args: argparse.Namespace, stack: Stack, out: dict[str, Any]) -> None:
    phases = plan(args)
    say(f"bench: starting PostgreSQL (pgserver, {PG_DIR.relative_to(ROOT)}) …")
    database_url = stack.start_postgres()
    out["postgres"] = stack.postgres_settings()
    stack.start_upstream()
    upstream_base = f"http://127.0.0.1:{stack.upstream_port}/v1"
    settings = bench_settings(database_url)
    say("bench: migrating and seeding through the domain services …")
    seeded = asyncio.run(
        migrate_and_seed(settings, upstream_base, PROMPT_TOKENS, COMPLETION_TOKENS)
    )
    env = {
        "OXINF_ENV": "test",
        "OXINF_DATABASE_URL": database_url,
        "OXINF_HMAC_PEPPER": settings.hmac_pepper.get_secret_value(),
        "OXINF_ENCRYPTION_KEYS": settings.encryption_keys.get_secret_value(),
        "OXINF_TEMPORAL_ADDRESS": "127.0.0.1:1",  # not on the relay's path
        "OXINF_LOG_LEVEL": "WARNING",
        "OXINF_DATA_DIR": str(WORK_DIR),
    }
    say("bench: starting the API (python -m cli api) …")
    stack.start_api(env)
    targets = {"direct": stack.upstream_port, "relay": stack.api_port}

    results: dict[str, dict[str, Any]] = {}
    relay_200 = 0
    for name, phase in phases.items():
        results[name] = {k: v for k, v in phase.items() if k in ("connections", "duration_s")}
        for target, port in targets.items():
            say(f"bench: {name} → {target} …")
            spec = loadgen_spec(port, seeded.key, phase, stream=name.startswith("stream"))
            before = stack.cpu_sample()
            raw = stack.run_loadgen(spec, loadgen_timeout(phase))
            after = stack.cpu_sample()
            stack.check_alive()
            figures = rpt.stats(raw)
            results[name][target] = figures
            out["cpu"][f"{name}_{target}"] = cpu_pct(before, after, figures["loadgen_cpu_pct"])
            if target == "relay":
                calls = figures["ok_total"] + figures["errors"]
                out["cpu_ms_per_call"][name] = per_call_ms(before, after, calls)
                relay_200 += figures["http_200_total"]
            if figures["error_rate"] > rpt.MAX_ERROR_RATE:
                out["harness"]["problems"].append(
                    f"{name} → {target}: {figures['errors']} errors "
                    f"({figures['error_rate']:.1%}), e.g. {figures['error_samples'][:2]}"
                )
    out["phases"] = results
    out["client_verdict"] = client_verdict(out["cpu"].get("throughput_relay", {}))
    out["shared_machine"] = shared_machine(out)

    say("bench: reconciling the ledger …")
    ledger = asyncio.run(
        check_ledger(
            database_url, seeded.org_id, seeded.seeded_micros, seeded.expected_cost_micros,
            relay_200,
        )
    )  # fmt: skip
    out["ledger"] = asdict(ledger)
    if not ledger.passed:
        failed = [k for k, ok in ledger.checks.items() if not ok]
        out["harness"]["problems"].append(f"ledger drift: {', '.join(failed)}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    out: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": "quick" if args.quick else "normal",
        "machine": {
            "cpus": os.cpu_count(),
            "loadavg_at_start": round(os.getloadavg()[0], 2),
            "busy_before_start_pct": baseline_busy_pct(),
            "python": platform.python_version(),
        },
        "postgres": {},
        "cpu": {},
        "cpu_ms_per_call": {},
        "ledger": None,
        "harness": {"problems": []},
        "json_path": str(args.json),
    }
    crashed = False
    with sigterm_as_interrupt():
        try:
            with Stack(WORK_DIR, PG_DIR, keep_db=args.keep_db) as stack:
                run(args, stack, out)
                say("bench: stopping …")
        except KeyboardInterrupt:
            print("\nbench: interrupted; everything it started has been stopped", file=sys.stderr)
            return 130
        except HarnessError as exc:
            print(f"bench: FAILED: {exc}", file=sys.stderr)
            crashed = True
            out["harness"]["problems"].append(str(exc))
    out["elapsed_s"] = time.monotonic() - started
    if crashed or "phases" not in out:
        _write(args.json, out)
        return 2
    out["budgets"] = [b.as_dict() for b in rpt.budgets(out["phases"], out["ledger"]["passed"])]
    _write(args.json, out)
    print(rpt.render(out))
    return 1 if out["harness"]["problems"] else 0


def _json_safe(value: Any) -> Any:
    """NaN (a phase with no samples) becomes null: strict JSON readers reject NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def _write(path: Path, out: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(_json_safe(out), indent=2, default=str))
    tmp.replace(path)


if __name__ == "__main__":
    sys.exit(main())
